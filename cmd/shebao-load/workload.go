package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// input is one thing a simulated user writes; Lang is the client's
// language_code, which picks the reply language.
type input struct {
	Lang string
	Text string
}

// builtinInputs are stand-alone questions (none refers to an earlier turn),
// so the answer to each is the same for a fresh user and a busy one.
var builtinInputs = []input{
	{"zh", "医保断缴了可以补缴吗"},
	{"zh", "查社保缴费记录要钱吗"},
	{"zh", "公司拖欠社保要交滞纳金吗"},
	{"zh", "居民医保什么时候交"},
	{"zh", "医保卡这个月没打钱"},
	{"zh", "单位不交社保我可以去哪里投诉"},
	{"zh", "职工医保费用由谁承担"},
	{"zh", "农民工要交社保吗"},
	{"zh", "出国看病医保能报销吗"},
	{"zh", "医保卡里的钱能取出来吗"},
	{"zh", "生育津贴怎么算"},
	{"zh", "看病怎么用医保"},
	{"zh", "/start"},
	{"zh", "/help"},
	{"en", "Can I make up missed medical insurance contributions?"},
	{"en", "When do I pay resident medical insurance?"},
	{"en", "Who pays for employee medical insurance?"},
	{"en", "Do migrant workers get social insurance?"},
	{"en", "What percentage does medical insurance reimburse?"},
	{"en", "Can I withdraw the money in my medical insurance account?"},
	{"en", "How is the maternity allowance calculated?"},
	{"en", "What is not considered a work injury?"},
	{"en", "How do I use medical insurance at the hospital?"},
	{"en", "Where can I complain if my employer doesn't pay social insurance?"},
	{"en", "/start"},
	{"en", "/help"},
}

// chatLang gives each chat a fixed client language: six in ten Chinese.
func chatLang(chatID int64) string {
	if chatID%10 < 6 {
		return "zh"
	}
	return "en"
}

func fingerprint(text string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(text))
	return h.Sum64()
}

// expectation is what one input is answered with, learnt in the warm-up:
// the fingerprints of its messages (a multiset) and its answer class
// (inputs with identical answers share a class).
type expectation struct {
	counts map[uint64]int
	total  int
	class  int
}

// expectations turns the messages each warm-up input got into
// expectations, in input order.
func expectations(replies [][]string) []expectation {
	classes := make(map[string]int)
	out := make([]expectation, len(replies))
	for i, msgs := range replies {
		e := expectation{counts: make(map[uint64]int), total: len(msgs)}
		keys := make([]string, 0, len(msgs))
		for _, m := range msgs {
			fp := fingerprint(m)
			e.counts[fp]++
			keys = append(keys, strconv.FormatUint(fp, 16))
		}
		slices.Sort(keys)
		key := strings.Join(keys, ",")
		c, ok := classes[key]
		if !ok {
			c = len(classes)
			classes[key] = c
		}
		e.class = c
		out[i] = e
	}
	return out
}

// record is one update a simulated user sent and what came back.
type record struct {
	ID      int64
	Chat    int64
	Input   int
	SentAt  time.Time
	FirstAt time.Time // first reply; zero when none came
	DoneAt  time.Time // whole answer; zero when incomplete
	Got     int       // messages attributed to this update
	Dups    int       // messages repeating part of its answer after it was given
	Alt     string    // first reply text not seen in the warm-up ("" when none)

	remaining map[uint64]int // while pending
	left      int
	done      chan struct{}
}

// recentPerChat is how many answered updates per chat are kept to
// recognise late duplicates.
const recentPerChat = 8

type chatLog struct {
	pending []*record // in update order
	recent  []*record // answered, oldest first
}

// tracker attributes every sendMessage to the update it answers. An update
// is answered when all the messages its input got in the warm-up have
// arrived. A message repeating an answer already given is a duplicate; a
// text never seen in the warm-up answers the oldest pending update of its
// chat (an error or "unavailable" reply) and is kept as a sample.
type tracker struct {
	exp []expectation

	mu       sync.Mutex
	chats    map[int64]*chatLog
	all      []*record
	pendingN int
	messages int
	stray    int      // messages to chats with nothing pending and no match
	samples  []string // first unexpected texts, shortened
}

func newTracker(exp []expectation) *tracker {
	return &tracker{exp: exp, chats: make(map[int64]*chatLog)}
}

func (t *tracker) chat(id int64) *chatLog {
	c := t.chats[id]
	if c == nil {
		c = &chatLog{}
		t.chats[id] = c
	}
	return c
}

// register records an update about to be delivered.
func (t *tracker) register(chatID int64, in int, id int64, at time.Time) *record {
	e := t.exp[in]
	r := &record{ID: id, Chat: chatID, Input: in, SentAt: at, remaining: make(map[uint64]int, len(e.counts)), left: e.total, done: make(chan struct{})}
	for fp, n := range e.counts {
		r.remaining[fp] = n
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.chat(chatID)
	c.pending = append(c.pending, r)
	t.all = append(t.all, r)
	t.pendingN++
	return r
}

// deliver attributes one message the bot sent.
func (t *tracker) deliver(chatID int64, text string, at time.Time) {
	fp := fingerprint(text)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.messages++
	c := t.chat(chatID)
	for _, r := range c.pending {
		if r.remaining[fp] > 0 {
			r.remaining[fp]--
			r.left--
			t.got(c, r, at)
			return
		}
	}
	for _, list := range [][]*record{c.pending, c.recent} {
		for i := len(list) - 1; i >= 0; i-- {
			if r := list[i]; t.exp[r.Input].counts[fp] > 0 {
				r.Dups++
				return
			}
		}
	}
	if len(t.samples) < 5 {
		t.samples = append(t.samples, shorten(text, 80))
	}
	if len(c.pending) == 0 {
		t.stray++
		return
	}
	r := c.pending[0]
	r.Alt = shorten(text, 80)
	r.left = 0
	t.got(c, r, at)
}

func (t *tracker) got(c *chatLog, r *record, at time.Time) {
	if r.Got == 0 {
		r.FirstAt = at
	}
	r.Got++
	if r.left > 0 {
		return
	}
	r.DoneAt = at
	r.remaining = nil
	c.pending = slices.DeleteFunc(c.pending, func(p *record) bool { return p == r })
	c.recent = append(c.recent, r)
	if len(c.recent) > recentPerChat {
		c.recent = c.recent[len(c.recent)-recentPerChat:]
	}
	t.pendingN--
	close(r.done)
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// pending returns how many updates wait for (the rest of) their answer.
func (t *tracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pendingN
}

// pendingIDs lists the updates in flight.
func (t *tracker) pendingIDs() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []int64
	for _, c := range t.chats {
		for _, r := range c.pending {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// recentClasses returns the answer classes of the chat's pending and last
// answered updates, so the next question can be told apart from them.
func (t *tracker) recentClasses(chatID int64, n int) map[int]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[int]bool)
	c := t.chats[chatID]
	if c == nil {
		return out
	}
	for _, r := range c.pending {
		out[t.exp[r.Input].class] = true
	}
	for i := len(c.recent) - 1; i >= 0 && len(out) < n; i-- {
		out[t.exp[c.recent[i].Input].class] = true
	}
	return out
}

// snapshot copies the records for reporting.
func (t *tracker) snapshot() (recs []record, messages, stray int, samples []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	recs = make([]record, len(t.all))
	for i, r := range t.all {
		recs[i] = *r
		recs[i].remaining, recs[i].done = nil, nil
	}
	return recs, t.messages, t.stray, slices.Clone(t.samples)
}

// sink routes the fake's sendMessage calls to whoever listens now (the
// warm-up recorder, then the tracker).
type sink struct {
	fn atomic.Pointer[func(chatID int64, text string, at time.Time)]
}

func (s *sink) set(fn func(chatID int64, text string, at time.Time)) { s.fn.Store(&fn) }

func (s *sink) send(chatID int64, text string, at time.Time) {
	if fn := s.fn.Load(); fn != nil {
		(*fn)(chatID, text, at)
	}
}

// warmUp sends every input once, each from a fresh chat, and collects what
// comes back until no message arrived for settle. It returns the messages
// per input.
func warmUp(ctx context.Context, f *fakeAPI, s *sink, inputs []input, chatBase int64, settle, limit time.Duration) ([][]string, error) {
	var mu sync.Mutex
	got := make(map[int64][]string)
	last := time.Now()
	s.set(func(chatID int64, text string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		got[chatID] = append(got[chatID], text)
		last = at
	})
	defer s.set(nil)
	for i, in := range inputs {
		f.push(chatBase+int64(i), in.Lang, in.Text, nil)
	}
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		mu.Lock()
		answered, quiet := len(got), time.Since(last)
		mu.Unlock()
		if answered == len(inputs) && quiet >= settle {
			break
		}
		if time.Now().After(deadline) {
			var missing []string
			mu.Lock()
			for i, in := range inputs {
				if len(got[chatBase+int64(i)]) == 0 {
					missing = append(missing, strconv.Quote(in.Text))
				}
			}
			mu.Unlock()
			return nil, fmt.Errorf("warm-up: no reply within %s to %s", limit, strings.Join(missing, ", "))
		}
	}
	out := make([][]string, len(inputs))
	mu.Lock()
	defer mu.Unlock()
	for i := range inputs {
		out[i] = got[chatBase+int64(i)]
	}
	return out, nil
}

// loadSpec is one closed-loop run.
type loadSpec struct {
	Users         int
	Distinct      int   // chats taking turns; Users when 0
	Burst         int   // messages sent at once before waiting
	Messages      int64 // total budget; 0: until the context ends
	ChatBase      int64
	AnswerTimeout time.Duration
	Think         time.Duration // pause after an answer
	Seed          uint64
}

// runUsers runs the simulated users until ctx ends or the message budget
// is spent, and returns when every user has stopped. Each user takes a chat,
// sends Burst questions, waits for their answers (at most AnswerTimeout),
// gives the chat back and takes the next.
func runUsers(ctx context.Context, f *fakeAPI, t *tracker, inputs []input, spec loadSpec) {
	distinct := max(spec.Distinct, spec.Users)
	chats := make(chan int64, distinct)
	for i := range distinct {
		chats <- spec.ChatBase + int64(i)
	}
	byLang := map[string][]int{}
	for i, in := range inputs {
		byLang[in.Lang] = append(byLang[in.Lang], i)
	}
	var budget atomic.Int64
	budget.Store(spec.Messages)
	var wg sync.WaitGroup
	for u := range spec.Users {
		rng := rand.New(rand.NewPCG(spec.Seed, uint64(u)))
		wg.Go(func() {
			for ctx.Err() == nil {
				if spec.Messages > 0 && budget.Add(-int64(spec.Burst)) < 0 {
					return
				}
				var chat int64
				select {
				case chat = <-chats:
				case <-ctx.Done():
					return
				}
				recs := make([]*record, 0, spec.Burst)
				avoid := t.recentClasses(chat, 4)
				for range spec.Burst {
					in := pick(rng, byLang[chatLang(chat)], t.exp, avoid)
					avoid[t.exp[in].class] = true
					f.push(chat, inputs[in].Lang, inputs[in].Text, func(id int64) {
						recs = append(recs, t.register(chat, in, id, time.Now()))
					})
				}
				timeout := time.NewTimer(spec.AnswerTimeout)
			wait:
				for _, r := range recs {
					select {
					case <-r.done:
					case <-timeout.C:
						break wait
					case <-ctx.Done():
						break wait
					}
				}
				timeout.Stop()
				if spec.Think > 0 && sleepCtx(ctx, spec.Think) != nil {
					chats <- chat
					return
				}
				chats <- chat
			}
		})
	}
	wg.Wait()
}

// pick chooses an input of the chat's language whose answer differs from
// the classes to avoid, so every reply can be attributed unambiguously.
func pick(rng *rand.Rand, candidates []int, exp []expectation, avoid map[int]bool) int {
	ok := make([]int, 0, len(candidates))
	for _, i := range candidates {
		if !avoid[exp[i].class] {
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		ok = candidates
	}
	return ok[rng.IntN(len(ok))]
}
