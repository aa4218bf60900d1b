package telegram

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

const testToken = "123456:TEST-token"

// echoHandler answers "echo <text>" (or "cb <data>") and records what it saw.
type echoHandler struct {
	mu   sync.Mutex
	seen []bot.Message
	// hook, when set, runs before the echo; it may block.
	hook func(ctx context.Context, m bot.Message) error
}

func (h *echoHandler) Handle(ctx context.Context, m bot.Message) ([]bot.Reply, error) {
	if h.hook != nil {
		if err := h.hook(ctx, m); err != nil {
			return nil, err
		}
	}
	h.mu.Lock()
	h.seen = append(h.seen, m)
	h.mu.Unlock()
	switch {
	case m.Limited:
		return []bot.Reply{bot.TextReply("slow down " + m.Text)}, nil
	case m.Callback != "":
		return []bot.Reply{bot.TextReply("cb " + m.Callback)}, nil
	case m.Contact != nil:
		return []bot.Reply{{Body: bot.TextReply("contact").Body, RemoveKeyboard: true}}, nil
	}
	return []bot.Reply{bot.TextReply("echo " + m.Text)}, nil
}

func (h *echoHandler) messages() []bot.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bot.Message(nil), h.seen...)
}

// fakeCoord dedupes by update ID; it does not order across replicas.
type fakeCoord struct {
	mu      sync.Mutex
	handled map[int64]bool
	err     error
}

func (c *fakeCoord) Begin(_ context.Context, _ string, updateID int64) (func(bool), bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, false, c.err
	}
	if c.handled[updateID] {
		return nil, true, nil
	}
	return func(handled bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if handled {
			c.handled[updateID] = true
		}
	}, false, nil
}

type fakeBlocklist struct {
	mu      sync.Mutex
	blocked map[int64]bool
}

func (b *fakeBlocklist) MarkBlocked(_ context.Context, chat string) error {
	chatID := untg(chat)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.blocked[chatID] = true
	return nil
}

func (b *fakeBlocklist) isBlocked(chatID int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.blocked[chatID]
}

// sleeps records requested waits and returns at once.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// countMetrics counts "kind/outcome" and "method/code".
type countMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *countMetrics) Update(kind, outcome string) { m.add(kind + "/" + outcome) }
func (m *countMetrics) APIError(method string, code int) {
	m.add(method + "/" + strconv.Itoa(code))
}
func (m *countMetrics) APICall(method string, _ time.Duration) { m.add("call/" + method) }

func (m *countMetrics) add(k string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[k]++
}

// outcome sums the counts of an outcome over all kinds.
func (m *countMetrics) outcome(o string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, v := range m.n {
		if strings.HasSuffix(k, "/"+o) {
			n += v
		}
	}
	return n
}

func (m *countMetrics) get(k string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[k]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	fake    *telegramtest.Server
	a       *Adapter
	h       *echoHandler
	sleeps  *sleeps
	logs    *syncBuffer
	options Options
}

func newEnv(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	fake := telegramtest.New(testToken)
	t.Cleanup(fake.Close)
	e := &env{fake: fake, h: &echoHandler{}, sleeps: &sleeps{}, logs: &syncBuffer{}}
	e.options = Options{
		Token:         testToken,
		APIURL:        fake.URL,
		WebhookURL:    "https://bot.example.org/telegram",
		WebhookSecret: "s3cret-token",
		Handler:       e.h,
		Logger:        slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sleep:         e.sleeps.sleep,
		Now:           func() time.Time { return time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC) },
		// The fake has no limits unless a test sets them (budget_test.go).
		SendLimits: SendLimits{Off: true},
	}
	if edit != nil {
		edit(&e.options)
	}
	a, err := New(e.options)
	if err != nil {
		t.Fatal(err)
	}
	a.pinnedInterval = 5 * time.Millisecond
	// Failing calls wait on real timers (the gate); retry tests with
	// real backoffs use virtual time (send_retry_test.go).
	a.firstBackoff, a.maxBackoff = time.Millisecond, 4*time.Millisecond
	e.a = a
	return e
}

func testCtx(t *testing.T) context.Context {
	// A safety net against a hang, not a timing assertion.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewReportsAllProblems(t *testing.T) {
	_, err := New(Options{WebhookURL: "https://x"})
	if err == nil {
		t.Fatal("New accepted empty options")
	}
	for _, want := range []string{"token", "handler", "secret"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestSendRetries429WithRetryAfter(t *testing.T) {
	metrics := &countMetrics{}
	e := newEnv(t, func(o *Options) { o.Metrics = metrics })
	e.fake.FailNext("sendMessage", 2, 429, 3)
	if err := e.a.Send(testCtx(t), tg(7), []bot.Reply{bot.TextReply("hi")}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := e.fake.Sent(); len(got) != 1 || got[0].Text != "hi" {
		t.Errorf("sent %+v, want one \"hi\"", got)
	}
	if got, want := e.sleeps.all(), []time.Duration{3 * time.Second, 3 * time.Second}; !equalDurations(got, want) {
		t.Errorf("waited %v, want %v (retry_after)", got, want)
	}
	if got := metrics.get("sendMessage/429"); got != 2 {
		t.Errorf("counted %d sendMessage 429s, want 2", got)
	}
}

func TestSendBlockedMarksAndStops(t *testing.T) {
	bl := &fakeBlocklist{blocked: map[int64]bool{}}
	e := newEnv(t, func(o *Options) { o.Blocklist = bl })
	e.fake.Block(7)
	err := e.a.Send(testCtx(t), tg(7), []bot.Reply{bot.TextReply("one"), bot.TextReply("two")})
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("Send to a blocked chat: %v, want ErrBlocked", err)
	}
	if !bl.isBlocked(7) {
		t.Error("chat not marked blocked")
	}
	if got := len(e.fake.Calls("sendMessage")); got != 1 {
		t.Errorf("%d sendMessage calls, want 1: sending stops at the 403", got)
	}
	// Clearing the mark when the user writes again is the Coordinator's
	// job (bot/storetest checks it).
}

func TestSendLongTextSplitsAtLinesWithKeyboardLast(t *testing.T) {
	e := newEnv(t, nil)
	var body []bot.Block
	var lines []string
	for i := range 300 {
		l := "第" + strings.Repeat("行", i%40)
		body = append(body, bot.Block{Spans: []bot.Span{{Text: l}, {Text: " <粗>", Bold: true}, {Text: " & end"}}})
		lines = append(lines, l+"<b> &lt;粗&gt;</b> &amp; end")
	}
	reply := bot.Reply{Body: body, Buttons: [][]bot.Button{{{Text: "下一步 Next", Data: "next"}}}}
	if err := e.a.Send(testCtx(t), tg(9), []bot.Reply{reply}); err != nil {
		t.Fatal(err)
	}
	sent := e.fake.Sent()
	if len(sent) < 2 {
		t.Fatalf("sent %d parts, want a split", len(sent))
	}
	var texts []string
	for i, m := range sent {
		if n := len([]rune(m.Text)); n > 4096 {
			t.Errorf("part %d has %d characters", i, n)
		}
		if m.ParseMode != "HTML" {
			t.Errorf("part %d parse mode %q", i, m.ParseMode)
		}
		last := i == len(sent)-1
		if hasKeyboard := strings.Contains(m.ReplyMarkup, `"callback_data":"next"`); hasKeyboard != last {
			t.Errorf("part %d of %d: keyboard %v, want only on the last part", i, len(sent), hasKeyboard)
		}
		texts = append(texts, m.Text)
	}
	if got, want := strings.Join(texts, "\n"), strings.Join(lines, "\n"); got != want {
		t.Error("parts joined at newlines differ from the reply")
	}
}

func TestSendKeyboards(t *testing.T) {
	e := newEnv(t, nil)
	replies := []bot.Reply{
		{Body: []bot.Block{{Spans: []bot.Span{{Text: "请分享手机号 "}, {Text: "<Share>", Bold: true}, {Text: " & go"}}}}, AskContact: "分享手机号 Share phone"},
		{Body: bot.TextReply("谢谢").Body, RemoveKeyboard: true},
	}
	if err := e.a.Send(testCtx(t), tg(9), replies); err != nil {
		t.Fatal(err)
	}
	sent := e.fake.Sent()
	if len(sent) != 2 {
		t.Fatalf("sent %d, want 2", len(sent))
	}
	if want := "请分享手机号 <b>&lt;Share&gt;</b> &amp; go"; sent[0].Text != want {
		t.Errorf("text %q, want escaped HTML %q", sent[0].Text, want)
	}
	for _, want := range []string{`"request_contact":true`, `"one_time_keyboard":true`, `"resize_keyboard":true`, `分享手机号 Share phone`} {
		if !strings.Contains(sent[0].ReplyMarkup, want) {
			t.Errorf("contact keyboard %s lacks %s", sent[0].ReplyMarkup, want)
		}
	}
	if !strings.Contains(sent[1].ReplyMarkup, `"remove_keyboard":true`) {
		t.Errorf("remove keyboard markup %s", sent[1].ReplyMarkup)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
