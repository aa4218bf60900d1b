package redisstore

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
)

// telegramSend is Telegram's budget: 30 a second overall, 1 a second per
// chat after a burst of 3, reminders at most 20 a second.
var telegramSend = bot.SendPolicy{Every: time.Second / 30, ChatEvery: time.Second, ChatBurst: 3, BulkEvery: time.Second / 20}

// groupSend is a group's: 20 a minute with a burst of 3.
var groupSend = bot.SendPolicy{Every: time.Second / 30, ChatEvery: time.Minute / 18, ChatBurst: 3, BulkEvery: time.Second / 20}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// ask is one send waiting for the budget in a simulation on virtual time.
type ask struct {
	at    time.Time
	seq   int // FIFO among equal times
	chat  string
	class bot.SendClass
	store *Store
	since time.Time // when the send was first asked for
	// rest are the chats a sequential sender (a replica's reminder
	// pass) sends to next, each asked for once this one is sent.
	rest []string
}

type asks []*ask

func (q asks) Len() int { return len(q) }
func (q asks) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q asks) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *asks) Push(x any)        { *q = append(*q, x.(*ask)) }
func (q *asks) Pop() any          { old := *q; x := old[len(old)-1]; *q = old[:len(old)-1]; return x }
func (q *asks) add(a *ask, n int) { a.seq = n; heap.Push(q, a) }

// sent is a send the budget let go: when, to which chat, and how long
// after it was asked for.
type sent struct {
	at    time.Time
	chat  string
	class bot.SendClass
	delay time.Duration
}

// simulate runs the asks to completion on virtual time: each is asked of
// its store at its time, and asked again when told to wait. It returns the
// sends in the order of their times.
func simulate(t *testing.T, q *asks, policy func(chat string) bot.SendPolicy) []sent {
	t.Helper()
	var out []sent
	n := q.Len()
	for rounds := 0; q.Len() > 0; rounds++ {
		if rounds > 100000 {
			t.Fatal("simulation does not end")
		}
		a := heap.Pop(q).(*ask)
		wait, taken, err := a.store.TakeSend(context.Background(), a.chat, a.class, a.at, policy(a.chat))
		if err != nil {
			t.Fatalf("TakeSend: %v", err)
		}
		if wait < 0 {
			t.Fatalf("negative wait %s", wait)
		}
		if taken {
			at := a.at.Add(wait)
			out = append(out, sent{at: at, chat: a.chat, class: a.class, delay: at.Sub(a.since)})
			if len(a.rest) > 0 {
				n++
				q.add(&ask{at: at, chat: a.rest[0], class: a.class, store: a.store, since: at, rest: a.rest[1:]}, n)
			}
			continue
		}
		if wait == 0 {
			t.Fatalf("refused with no wait: %+v", a)
		}
		a.at = a.at.Add(wait)
		n++
		q.add(a, n)
	}
	slices.SortStableFunc(out, func(x, y sent) int { return x.at.Compare(y.at) })
	return out
}

// maxIn is the most sends of out (sorted by time) in any window of length
// w, half open, counting only those keep accepts.
func maxIn(out []sent, w time.Duration, keep func(sent) bool) int {
	var ts []time.Time
	for _, s := range out {
		if keep(s) {
			ts = append(ts, s.at)
		}
	}
	most := 0
	j := 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

func replicas(t *testing.T) (*Store, *Store) {
	t.Helper()
	a, _, _ := testStore(t)
	b, err := Open(context.Background(), a.opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// Two replicas sharing one Redis share one budget: 200 chats asking for 5
// sends each at once, half through each replica, never get more than 30
// sends into a second, nor a chat more than 3 at once and 1 a second
// after; and no slot is wasted: the 1000 sends take 1000/30 s.
func TestSendBudgetAcrossReplicas(t *testing.T) {
	a, b := replicas(t)
	q := &asks{}
	n := 0
	for c := range 200 {
		for range 5 {
			st := a
			if n%2 == 1 {
				st = b
			}
			n++
			q.add(&ask{at: t0, chat: fmt.Sprintf("tg:%d", 1000+c), store: st, since: t0}, n)
		}
	}
	out := simulate(t, q, func(string) bot.SendPolicy { return telegramSend })
	if len(out) != 1000 {
		t.Fatalf("%d sends, want 1000", len(out))
	}
	all := func(sent) bool { return true }
	if m := maxIn(out, time.Second, all); m > 30 {
		t.Errorf("%d sends in one second, want at most 30", m)
	}
	for c := range 200 {
		chat := fmt.Sprintf("tg:%d", 1000+c)
		one := func(s sent) bool { return s.chat == chat }
		if m := maxIn(out, time.Second, one); m > 3 {
			t.Errorf("chat %s: %d sends in one second, want at most the burst of 3", chat, m)
		}
		if m := maxIn(out, 3*time.Second, one); m > 5 {
			t.Errorf("chat %s: %d sends in 3 s, want at most 3 + 2", chat, m)
		}
	}
	if span := out[len(out)-1].at.Sub(t0); span > 1000*telegramSend.Every+telegramSend.Every {
		t.Errorf("1000 sends took %s of virtual time, want %s: slots were wasted", span, 1000*telegramSend.Every)
	}
}

// A multi-part answer goes out at once (the burst, one global slot
// apart); the next send to the chat waits a second.
func TestSendBudgetChatBurst(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	for i, want := range []time.Duration{0, time.Second / 30, 2 * time.Second / 30} {
		wait, taken, err := s.TakeSend(ctx, "tg:7", bot.Interactive, t0, telegramSend)
		if err != nil || !taken || wait.Round(time.Millisecond) != want.Round(time.Millisecond) {
			t.Errorf("part %d: wait %s, taken %v, %v; want taken, wait %s", i+1, wait, taken, err, want)
		}
	}
	wait, taken, err := s.TakeSend(ctx, "tg:7", bot.Interactive, t0, telegramSend)
	if err != nil || taken || wait != time.Second {
		t.Errorf("fourth: wait %s, taken %v, %v; want refused, ask again in 1s", wait, taken, err)
	}
	// Another chat is not held up by this one.
	wait, taken, err = s.TakeSend(ctx, "tg:8", bot.Interactive, t0, telegramSend)
	if err != nil || !taken || wait.Round(time.Millisecond) != 100*time.Millisecond {
		t.Errorf("other chat: wait %s, taken %v, %v; want taken after the 3 global slots before it", wait, taken, err)
	}
	wait, taken, err = s.TakeSend(ctx, "tg:7", bot.Interactive, t0.Add(time.Second), telegramSend)
	if err != nil || !taken || wait != 0 {
		t.Errorf("a second later: wait %s, taken %v, %v; want sent at once", wait, taken, err)
	}
}

// A group gets no more than 20 sends a minute, however many are asked
// for.
func TestSendBudgetGroup(t *testing.T) {
	s, _, _ := testStore(t)
	q := &asks{}
	for i := range 60 {
		q.add(&ask{at: t0.Add(time.Duration(i) * time.Second), chat: "tg:-100123", store: s, since: t0}, i)
	}
	out := simulate(t, q, func(string) bot.SendPolicy { return groupSend })
	if m := maxIn(out, time.Minute, func(sent) bool { return true }); m > 20 {
		t.Errorf("%d sends to the group in a minute, want at most 20", m)
	}
	if len(out) != 60 {
		t.Errorf("%d sends, want all 60 in the end", len(out))
	}
}

// Reminders yield to answers: while answers are queued a reminder is not
// taken, and a steady stream of reminders at full speed never makes an
// answer wait more than one global slot.
func TestSendBudgetBulkYields(t *testing.T) {
	a, b := replicas(t)
	ctx := context.Background()
	// 60 answers at once: the global queue is 2 s long.
	for i := range 60 {
		if _, taken, err := a.TakeSend(ctx, fmt.Sprintf("tg:%d", i), bot.Interactive, t0, telegramSend); err != nil || !taken {
			t.Fatalf("answer %d: taken %v, %v", i, taken, err)
		}
	}
	wait, taken, err := b.TakeSend(ctx, "tg:500", bot.Bulk, t0.Add(time.Second), telegramSend)
	if err != nil || taken || wait.Round(time.Millisecond) != time.Second {
		t.Errorf("reminder behind queued answers: wait %s, taken %v, %v; want refused until the queue is gone, 1s", wait, taken, err)
	}
	if _, taken, err := b.TakeSend(ctx, "tg:500", bot.Bulk, t0.Add(time.Second+wait), telegramSend); err != nil || !taken {
		t.Errorf("reminder once the answers are out: taken %v, %v", taken, err)
	}

	// 400 reminders, sent one after the other by each replica's reminder
	// pass, and an answer every 100 ms in new chats.
	start := t0.Add(time.Minute)
	q := &asks{}
	n := 0
	for r, st := range []*Store{a, b} {
		var chats []string
		for i := range 200 {
			chats = append(chats, fmt.Sprintf("tg:%d", 10000+r*1000+i))
		}
		n++
		q.add(&ask{at: start, chat: chats[0], class: bot.Bulk, store: st, since: start, rest: chats[1:]}, n)
	}
	for i := range 100 {
		st := b
		if i%2 == 1 {
			st = a
		}
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		n++
		q.add(&ask{at: at, chat: fmt.Sprintf("tg:%d", 20000+i), store: st, since: at}, n)
	}
	out := simulate(t, q, func(string) bot.SendPolicy { return telegramSend })
	var slowest time.Duration
	bulk := 0
	for _, s := range out {
		if s.class == bot.Interactive {
			slowest = max(slowest, s.delay)
		} else {
			bulk++
		}
	}
	if slowest > telegramSend.Every+time.Microsecond {
		t.Errorf("an answer waited %s behind reminders, want at most one slot (%s)", slowest, telegramSend.Every)
	}
	if bulk != 400 {
		t.Errorf("%d reminders sent, want 400", bulk)
	}
	if m := maxIn(out, time.Second, func(s sent) bool { return s.class == bot.Bulk }); m > 20 {
		t.Errorf("%d reminders in a second, want at most the bulk share of 20", m)
	}
	if m := maxIn(out, time.Second, func(sent) bool { return true }); m > 30 {
		t.Errorf("%d sends in a second, want at most 30", m)
	}
}

// The budget's keys expire by themselves once their time is past.
func TestSendBudgetKeysExpire(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	if _, _, err := s.TakeSend(ctx, "tg:9", bot.Bulk, time.Now(), telegramSend); err != nil {
		t.Fatal(err)
	}
	for _, k := range s.sendKeys("tg:9") {
		ttl, err := s.rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 1100*time.Millisecond {
			t.Errorf("%s: TTL %s, %v; want set, at most the chat's horizon", k, ttl, err)
		}
	}
}

// With the zero time the budget runs by the Redis server's clock, the one
// all replicas share: two replicas asking back to back, whatever their own
// clocks say, get slots one interval apart.
func TestSendBudgetServerClock(t *testing.T) {
	sv := newServer(t)
	a, b := sv.open(t, Options{}), sv.open(t, Options{})
	ctx := context.Background()
	p := bot.SendPolicy{Every: time.Second, ChatEvery: time.Second, ChatBurst: 1, BulkEvery: time.Second}
	w1, ok1, err1 := a.TakeSend(ctx, "tg:1", bot.Interactive, time.Time{}, p)
	w2, ok2, err2 := b.TakeSend(ctx, "tg:2", bot.Interactive, time.Time{}, p)
	if err1 != nil || err2 != nil || !ok1 || !ok2 {
		t.Fatalf("take: %v %v %v %v", ok1, err1, ok2, err2)
	}
	if w1 > 100*time.Millisecond || w2 < 800*time.Millisecond || w2 > time.Second {
		t.Errorf("waits %v and %v; want the first at once and the second about a second later", w1, w2)
	}
}
