package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/reminder"
	"github.com/shebao/shebao/bot/storetest"
	"github.com/shebao/shebao/bot/telegram"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// The conformance suite on a real Redis Cluster, every command watched
// for keys of two slots.
func TestClusterConformance(t *testing.T) {
	url := clusterURL(t)
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		_, st := realStore(t, url)
		return st
	})
}

// The guard the cluster tests rely on sees each way a command can span
// slots: otherwise they could not fail.
func TestClusterSlotGuardCatchesCrossSlot(t *testing.T) {
	o, err := redis.ParseClusterURL(clusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClusterClient(o)
	defer rdb.Close()
	g := &slotGuard{}
	rdb.AddHook(g)
	ctx := t.Context()
	p := "test-" + rand.Text()[:12]
	defer deleteUnder(context.Background(), rdb, p)
	// Two tags in slots of different primaries ({a} 15495, {b} 3300 of
	// 16384: the first and last thirds), and keys sharing one tag.
	a, b := p+":{a}", p+":{b}"
	for _, c := range []struct {
		name  string
		cross bool
		run   func()
	}{
		{"MGET in one slot", false, func() { rdb.MGet(ctx, a+":1", a+":2") }},
		{"MGET", true, func() { rdb.MGet(ctx, a, b) }},
		{"DEL", true, func() { rdb.Del(ctx, a, b) }},
		{"MULTI", true, func() {
			rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, a, "1", time.Minute)
				p.Set(ctx, b, "1", time.Minute)
				return nil
			})
		}},
		{"script touching an undeclared key", true, func() {
			rdb.Eval(ctx, "return redis.call('EXISTS', ARGV[1])", []string{a}, b)
		}},
		{"script declaring keys of two slots", true, func() {
			rdb.Eval(ctx, "return redis.call('EXISTS', KEYS[1], KEYS[2])", []string{a, b})
		}},
		{"pipelined EXISTS", true, func() {
			rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Exists(ctx, a, b)
				return nil
			})
		}},
		// A pipeline may span slots: go-redis sends each node its part.
		{"pipeline of one-slot commands", false, func() {
			rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Get(ctx, a)
				p.Get(ctx, b)
				return nil
			})
		}},
	} {
		g.mu.Lock()
		g.errs = nil
		g.mu.Unlock()
		c.run()
		g.mu.Lock()
		caught := len(g.errs) > 0
		g.mu.Unlock()
		if caught != c.cross {
			t.Errorf("%s: guard caught it %v, want %v (%q)", c.name, caught, c.cross, g.errs)
		}
	}
}

// handling is the order in which messages were handled, across every
// replica of a test (they run in one process), and the texts whose
// handler is stuck until its context ends (a replica stopping
// mid-update).
type handling struct {
	mu   sync.Mutex
	seen []bot.Message
	hold map[string]bool
}

func (h *handling) stick(text string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold[text] = on
}

// of lists the texts of chat's messages in the order they were handled.
func (h *handling) of(chat int64) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, m := range h.seen {
		if m.Chat == tg(chat) {
			out = append(out, m.Text)
		}
	}
	return out
}

// recorder is one replica's engine as a telegram.Handler, noting each
// message in the shared handling.
type recorder struct {
	next bot.Handler
	h    *handling
}

func (r *recorder) Handle(ctx context.Context, m bot.Message) ([]bot.Reply, error) {
	r.h.mu.Lock()
	r.h.seen = append(r.h.seen, m)
	stuck := r.h.hold[m.Text]
	r.h.mu.Unlock()
	if stuck {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return r.next.Handle(ctx, m)
}

// replica is one shebao serve over the cluster: its own connections, its
// own engine, and a Telegram adapter that takes webhook requests and can
// poll.
type replica struct {
	store   *Store
	adapter *telegram.Adapter
	hook    *httptest.Server
}

const scenarioSecret = "cluster-scenario-secret"

func newReplica(t *testing.T, sv *server, fake *telegramtest.Server, db *records.DB, f *faq.FAQ, now time.Time, h *handling) *replica {
	t.Helper()
	s := sv.open(t, Options{})
	e := bot.New(bot.Config{Sessions: s, Attempts: s, Reminders: s, FAQ: f, Records: db, Keys: s.Keys(),
		Now: func() time.Time { return now }})
	r := &replica{store: s}
	a, err := telegram.New(telegram.Options{
		Token: testBotToken, APIURL: fake.URL, WebhookURL: "https://bot.example/hook", WebhookSecret: scenarioSecret,
		Handler: &recorder{next: e, h: h}, Coordinator: s, Blocklist: s, Handoff: s, DrainTimeout: 50 * time.Millisecond,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.adapter = a
	r.hook = httptest.NewServer(a.WebhookHandler())
	t.Cleanup(r.hook.Close)
	return r
}

const testBotToken = "123456:CLUSTER-test"

// post delivers u to the replica's webhook as Telegram does and returns
// the status.
func (r *replica) post(t *testing.T, u any) int {
	t.Helper()
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, r.hook.URL, bytes.NewReader(b))
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", scenarioSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// poll runs the replica's polling until the returned stop is called.
func (r *replica) poll(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.adapter.RunPolling(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("polling: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// chatText is everything the fake Bot API got for chat, one message a line.
func chatText(fake *telegramtest.Server, chat int64) string {
	var out []string
	for _, m := range fake.Sent() {
		if m.ChatID == chat {
			out = append(out, m.Text)
		}
	}
	return strings.Join(out, "\n")
}

// waitUntil polls cond (a condition in the test, not logic) for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The end-to-end scenario on a real Redis Cluster: two replicas (each its
// own store, engine and Telegram adapter) behind one webhook URL, then
// polling, then a reminder pass and a key rotation, with every command
// of every store watched for keys of two slots.
func TestClusterScenario(t *testing.T) {
	sv := newServerAt(t, clusterURL(t))
	fake := telegramtest.New(testBotToken)
	defer fake.Close()
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := records.OpenDemo(context.Background(), flowNow)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := &handling{hold: map[string]bool{}}
	a := newReplica(t, sv, fake, db, f, flowNow, h)
	b := newReplica(t, sv, fake, db, f, flowNow, h)
	demo := records.Demo()
	ctx := t.Context()

	update := int64(5000)
	text := func(chat int64, s string) any {
		update++
		u := telegramtest.TextUpdate(chat, s)
		u.ID = update
		return u
	}

	// 1. The verify dialog, each step to the other replica, as a load
	// balancer would spread them: the dialog lives in the cluster.
	const verified = 7
	a.post(t, text(verified, "/verify"))
	b.post(t, text(verified, demo[1].ID))
	contact := telegramtest.ContactUpdate(verified, demo[1].Phone, verified)
	update++
	contact.ID = update
	a.post(t, contact)
	if got := chatText(fake, verified); !strings.Contains(got, "验证成功") {
		t.Fatalf("verification across replicas: %q", got)
	}
	press := telegramtest.CallbackUpdate(verified, "remind:on")
	update++
	press.ID = update
	b.post(t, press)
	if got := chatText(fake, verified); !strings.Contains(got, "已开启") {
		t.Fatalf("reminder opt-in: %q", got)
	}

	// 2. Dedupe: Telegram delivers an update again (to the other replica,
	// and twice at once): it is answered once.
	before := len(fake.Sent())
	again := text(verified, "/help")
	a.post(t, again)
	answered := len(fake.Sent()) - before
	if answered == 0 {
		t.Fatal("/help got no answer")
	}
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b, b} {
		wg.Go(func() {
			if code := r.post(t, again); code != http.StatusOK {
				t.Errorf("redelivery answered %d, want 200", code)
			}
		})
	}
	wg.Wait()
	if n := len(fake.Sent()) - before; n != answered {
		t.Errorf("an update delivered four times was answered with %d messages, want %d (once)", n, answered)
	}

	// 3. Order: a burst of one chat's messages spread over both replicas
	// while an earlier update holds the chat is handled in update order.
	const burst = 11
	done, dup, err := a.store.Begin(ctx, tg(burst), update)
	if err != nil || dup {
		t.Fatalf("hold chat: dup %v, %v", dup, err)
	}
	update++
	var want []string
	for i := range 8 {
		r := []*replica{a, b}[i%2]
		u := text(burst, fmt.Sprintf("第%d个问题：社保怎么查", i))
		want = append(want, fmt.Sprintf("第%d个问题：社保怎么查", i))
		wg.Go(func() { r.post(t, u) })
	}
	waitUntil(t, "the burst to queue behind the held update", func() bool {
		n, err := a.store.Waiting(ctx, tg(burst))
		return err == nil && n == 9
	})
	done(true)
	wg.Wait()
	var replied int
	for _, m := range fake.Sent() {
		if m.ChatID == burst {
			replied++
		}
	}
	if got := h.of(burst); !slices.Equal(got, want) {
		t.Errorf("burst handled in order\n%q\nwant\n%q", got, want)
	}
	if replied < len(want) {
		t.Errorf("burst: %d replies to %d questions", replied, len(want))
	}

	// 4. Hand-off: replica a polls and stops while one update is stuck in
	// its handler; that update was held in the cluster and confirmed to
	// Telegram, and replica b, polling next, answers it once.
	const stuckChat, otherChat = 9, 10
	h.stick("卡住的问题：医保报销", true)
	stuck := fake.PushText(stuckChat, "卡住的问题：医保报销")
	fine := fake.PushText(otherChat, "医保报销比例")
	stopA := a.poll(t)
	waitUntil(t, "the other chat's answer and the offset past the stuck update", func() bool {
		return chatText(fake, otherChat) != "" && fake.Confirmed() > fine
	})
	stopA()
	var held []int64
	if err := b.store.HeldUpdates(ctx, func(id int64, _ time.Time, _ []byte) { held = append(held, id) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(held, []int64{stuck}) {
		t.Fatalf("held after replica a stopped: %v, want [%d]", held, stuck)
	}
	t.Logf("replica a stopped with update %d held in the cluster (Telegram's offset is past it: %d)", stuck, fake.Confirmed())
	if chatText(fake, stuckChat) != "" {
		t.Fatal("the stuck update was answered by the replica that stopped")
	}
	h.stick("卡住的问题：医保报销", false)
	stopB := b.poll(t)
	waitUntil(t, "replica b to answer the held update", func() bool { return chatText(fake, stuckChat) != "" })
	waitUntil(t, "the hand-off to empty", func() bool {
		held = held[:0]
		err := b.store.HeldUpdates(ctx, func(id int64, _ time.Time, _ []byte) { held = append(held, id) })
		return err == nil && len(held) == 0
	})
	stopB()
	// Handled twice in all: stuck in replica a, answered by replica b.
	if got := h.of(stuckChat); len(got) != 2 {
		t.Errorf("the held update was handled %d times, want twice (stuck in a, answered by b)", len(got))
	}

	// 5. A reminder pass from replica b reminds the verified user, once
	// even when replica a runs one too.
	pass := func(s *Store) reminder.Summary {
		sum, err := reminder.New(reminder.Config{Store: s, Records: db, Sender: b.adapter, Keys: s.Keys(),
			Now: func() time.Time { return flowNow }, Sleep: func(context.Context, time.Duration) error { return nil }}).Pass(ctx, false)
		if err != nil {
			t.Fatalf("reminder pass: %v", err)
		}
		return sum
	}
	before = len(fake.Sent())
	first := pass(b.store)
	second := pass(a.store)
	sent := fake.Sent()[before:]
	t.Logf("reminder passes: %+v, then %+v", first, second)
	if len(sent) != 1 || sent[0].ChatID != verified {
		t.Fatalf("two passes sent %+v, want one reminder to chat %d", sent, verified)
	}

	// 6. Key rotation on the cluster: a replica with a new first key
	// re-seals every value and moves the person's marks; then a replica
	// with the new key alone still knows the user and their marks.
	c := sv.open(t, Options{Keys: rotatedKeys, RotateAfter: -1})
	if ok, err := c.rotate(ctx, "scenario"); err != nil || !ok {
		t.Fatalf("rotate: %v, %v", ok, err)
	}
	if n := sv.sealedUnder(t); n["k1"] != 0 || n["k2"] == 0 {
		t.Errorf("sealed after rotation: %v, want all under k2", n)
	}
	d := sv.open(t, Options{Keys: newKeyOnly})
	st, err := d.Load(ctx, tg(verified), tg(verified))
	if err != nil || st.Link.PersonID != demo[1].ID {
		t.Errorf("after rotation the link reads %+v, %v", st.Link, err)
	}
	// The reminded-today mark moved to the person's tag under the new
	// key: a replica with that key alone finds it.
	if ok, err := d.Marked(ctx, demo[1].ID, "day:"+flowNow.Format(time.DateOnly)); err != nil || !ok {
		t.Errorf("after rotation the reminded-today mark reads %v, %v; want set", ok, err)
	}
}
