package telegram

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// texts returns the texts sent to chat, in order.
func texts(e *env, chat int64) []string {
	var out []string
	for _, m := range e.fake.Sent() {
		if m.ChatID == chat {
			out = append(out, m.Text)
		}
	}
	return out
}

// A chat with a long backlog holds one worker; the fetch loop goes on, the
// other chats are answered, and the backlog (most of it kept in the
// hand-off by ID alone) is answered later, in order, once each.
func TestPollingBacklogDoesNotStallOtherChats(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h; o.Workers = 4 })
	ctx := testCtx(t)
	release := blockOn(e, "A0")
	const backlog = 300 // far past what one chat keeps in memory, and past the old worker queue of 64
	var want []string
	for i := range backlog {
		e.fake.PushText(1, fmt.Sprintf("A%d", i))
		want = append(want, fmt.Sprintf("echo A%d", i))
	}
	cancel := runPolling(t, e.a)
	b := e.fake.PushText(2, "B")
	if _, err := e.fake.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := texts(e, 2); !slices.Equal(got, []string{"echo B"}) {
		t.Fatalf("while chat 1 is stuck, chat 2 got %q, want its answer", got)
	}
	waitFor(ctx, t, "the offset to pass chat 2's update", func() bool { return e.fake.Confirmed() > b })
	if inMem, total := e.a.pollSched().waiting(); inMem > perChatInMemory || total < backlog-1 {
		t.Errorf("waiting: %d in memory, %d in all; want at most %d in memory", inMem, total, perChatInMemory)
	}
	release()
	if _, err := e.fake.WaitSent(ctx, backlog+1); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the hand-off to empty", func() bool { return len(h.ids()) == 0 })
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	if got := texts(e, 1); !slices.Equal(got, want) {
		t.Errorf("chat 1 answered %d times, out of order or repeated:\n%q", len(got), got)
	}
	if h.reads == 0 {
		t.Error("nothing was read back from the hand-off: the backlog was all in memory")
	}
}

// A backlog still waiting at shutdown stays held and the next run answers
// it, in order.
func TestPollingBacklogSurvivesRestart(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h; o.DrainTimeout = 20 * time.Millisecond })
	ctx := testCtx(t)
	blockOn(e, "A0") // never released in the first run
	const n = 60
	var last int64
	for i := range n {
		last = e.fake.PushText(1, fmt.Sprintf("A%d", i))
	}
	cancel := runPolling(t, e.a)
	waitFor(ctx, t, "the offset to pass the backlog", func() bool { return e.fake.Confirmed() > last })
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	if got := len(h.ids()); got != n {
		t.Fatalf("%d held after the first run, want all %d", got, n)
	}
	e.h.hook = nil
	a2, err := New(e.options)
	if err != nil {
		t.Fatal(err)
	}
	cancel2 := runPolling(t, a2)
	if _, err := e.fake.WaitSent(ctx, n); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the hand-off to empty", func() bool { return len(h.ids()) == 0 })
	if err := cancel2(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("echo A%d", i))
	}
	if got := texts(e, 1); !slices.Equal(got, want) {
		t.Errorf("answered %q, want each update once, in order", got)
	}
}

var testRate = bot.RatePolicy{Burst: 3, Every: time.Hour, Notice: time.Hour}

// One user's flood is cut at the limit before it is queued or held: the
// burst is answered, one notice goes out, the rest is skipped, counted and
// confirmed, and another user is answered as usual.
func TestPollingRateLimitsAFlood(t *testing.T) {
	h := newMemHandoff()
	metrics := &countMetrics{}
	e := newEnv(t, func(o *Options) {
		o.Handoff, o.Metrics = h, metrics
		o.Limit = bot.NewLimit(bot.LimitOptions{Policy: &testRate})
	})
	ctx := testCtx(t)
	var last int64
	for i := range 50 {
		last = e.fake.PushText(7, fmt.Sprintf("q%d", i))
	}
	other := e.fake.PushText(8, "hello")
	cancel := runPolling(t, e.a)
	if _, err := e.fake.WaitSent(ctx, 5); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the offset to pass the last update", func() bool { return e.fake.Confirmed() > other })
	// What the limit skipped was held with its batch and is released.
	waitFor(ctx, t, "the hand-off to empty", func() bool { return len(h.ids()) == 0 })
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	want := []string{"echo q0", "echo q1", "echo q2", "slow down q3"}
	if got := texts(e, 7); !slices.Equal(got, want) {
		t.Errorf("the flooder got %q, want %q", got, want)
	}
	if got := texts(e, 8); !slices.Equal(got, []string{"echo hello"}) {
		t.Errorf("the other user got %q", got)
	}
	if got := metrics.outcome("limited"); got != 46 {
		t.Errorf("counted %d limited, want 46", got)
	}
	if got := e.fake.Confirmed(); got <= last {
		t.Errorf("confirmed %d: the skipped updates must be confirmed too (last %d)", got, last)
	}
}

// In webhook mode a message over the limit is answered 200 at once and
// never reaches the handler; the one notice does.
func TestWebhookRateLimit(t *testing.T) {
	metrics := &countMetrics{}
	coord := &fakeCoord{handled: map[int64]bool{}}
	e := newEnv(t, func(o *Options) {
		o.Metrics, o.Coordinator = metrics, coord
		o.Limit = bot.NewLimit(bot.LimitOptions{Policy: &testRate})
	})
	for i := range 6 {
		u := telegramtest.TextUpdate(7, fmt.Sprintf("q%d", i))
		u.ID = int64(100 + i)
		if rec := postUpdate(t, e, u, e.options.WebhookSecret); rec.Code != http.StatusOK {
			t.Fatalf("update %d: status %d", i, rec.Code)
		}
	}
	coord.mu.Lock()
	for id := int64(100); id < 106; id++ {
		if coord.handled[id] != (id < 104) {
			t.Errorf("update %d marked handled %v; want only the answered ones (0-3) marked", id, coord.handled[id])
		}
	}
	coord.mu.Unlock()
	want := []string{"echo q0", "echo q1", "echo q2", "slow down q3"}
	if got := texts(e, 7); !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
	if n := len(e.h.messages()); n != 4 {
		t.Errorf("handler saw %d messages, want 4", n)
	}
	if got := metrics.outcome("limited"); got != 2 {
		t.Errorf("counted %d limited, want 2", got)
	}
	if got := metrics.get("unread/limited"); got != 2 {
		t.Errorf("%d dropped before decoding, want 2: the user was refused moments before", got)
	}
}

// In a group the engine is told so, and can link to the private chat.
func TestGroupMessagesCarryChatTypeAndLink(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.a.identify(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	u := telegramtest.TextUpdate(-100, "/verify@"+telegramtest.BotUsername)
	u.Message.Chat.Type = "group"
	u.Message.From.ID = 5
	postUpdate(t, e, u, e.options.WebhookSecret)
	seen := e.h.messages()
	if len(seen) != 1 {
		t.Fatalf("handler saw %d messages", len(seen))
	}
	m := seen[0]
	if m.Private() || m.ChatType != bot.ChatGroup || !strings.HasPrefix(m.PrivateChatURL, "https://t.me/"+telegramtest.BotUsername+"?start=") {
		t.Errorf("message %+v: want a group message with a link to the private chat", m)
	}
}

func (a *Adapter) pollSched() *sched {
	for {
		if s := a.lastSched.Load(); s != nil {
			return s
		}
		time.Sleep(time.Millisecond) // test helper: RunPolling has not started yet
	}
}

func TestSenderID(t *testing.T) {
	for raw, want := range map[string]int64{
		`{"update_id":1,"message":{"message_id":2,"from":{"id":12345,"is_bot":false},"chat":{"id":12345},"text":"hi"}}`: 12345,
		`{"update_id":1,"callback_query":{"id":"x","from":{"id":77},"data":"d"}}`:                                       77,
		// A reply quotes another sender: not guessed at.
		`{"update_id":1,"message":{"from":{"id":5},"reply_to_message":{"from":{"id":6}}}}`: 0,
		// Text cannot fake it: its quotes are escaped.
		`{"update_id":1,"message":{"chat":{"id":9},"text":"\"from\":{\"id\":42"}}`: 0,
		`{"update_id":1,"message":{"from":{"id":"x"}}}`:                            0,
	} {
		got, ok := senderID([]byte(raw))
		if want == 0 && ok || want != 0 && (!ok || got != want) {
			t.Errorf("senderID(%s) = %d, %v; want %d", raw, got, ok, want)
		}
	}
}

// skipAll refuses every message without a quiet time, so every update
// goes through the claim.
type skipAll struct{}

func (skipAll) Check(_ context.Context, users []string, _ time.Time) []bot.Verdict {
	out := make([]bot.Verdict, len(users))
	for i := range out {
		out[i] = bot.Skip
	}
	return out
}

func (skipAll) Quiet(string, time.Time) bool { return false }

// A webhook update the limit skips after it was claimed is let go
// unanswered and unmarked: a redelivery is asked about again.
func TestWebhookSkippedAfterClaimIsNotMarkedHandled(t *testing.T) {
	coord := &fakeCoord{handled: map[int64]bool{}}
	e := newEnv(t, func(o *Options) { o.Coordinator, o.Limit = coord, skipAll{} })
	u := telegramtest.TextUpdate(7, "hi")
	u.ID = 300
	if rec := postUpdate(t, e, u, e.options.WebhookSecret); rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if n := len(e.h.messages()); n != 0 {
		t.Errorf("handler saw %d messages", n)
	}
	coord.mu.Lock()
	defer coord.mu.Unlock()
	if coord.handled[300] {
		t.Error("a skipped update was marked handled")
	}
}
