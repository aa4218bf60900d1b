package wechat

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/bot/sms"
	"github.com/shebao/shebao/bot/wechat/wechattest"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

var testNow = time.Date(2026, 11, 27, 10, 0, 0, 0, records.Shanghai)

var testKeys = func() *keyring.Ring {
	r, err := keyring.Parse("k1:" + strings.Repeat("B", 43) + "=")
	if err != nil {
		panic(err)
	}
	return r
}()

// smsBox is the fake SMS gateway: it keeps the codes.
type smsBox struct {
	mu   sync.Mutex
	sent []sms.Message
}

func (b *smsBox) Send(_ context.Context, m sms.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, m)
	return nil
}

func (b *smsBox) last() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.sent) == 0 {
		return ""
	}
	return b.sent[len(b.sent)-1].Code
}

// syncLog is a log buffer safe for concurrent writes.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// env is an Official Account on the fake WeChat, served by replicas that
// share one Redis (REDIS_URL, or a miniredis) behind one URL.
type env struct {
	t        testing.TB
	fake     *wechattest.Fake
	adapters []*Adapter
	stores   []*redisstore.Store
	sms      *smsBox
	logs     *syncLog
	lb       *httptest.Server
	next     atomic.Int64
	handled  atomic.Int64
	now      func() time.Time // the clock of both sides
	skew     atomic.Int64     // added to it (Advance)
}

// advance moves the clock of both sides forward by d.
func (e *env) advance(d time.Duration) { e.skew.Add(int64(d)) }

type envOpts struct {
	replicas int
	aes      bool
	template string
	tweak    func(a *Adapter)
	handler  func(h bot.Handler) bot.Handler
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.replicas == 0 {
		o.replicas = 1
	}
	e := &env{t: t, sms: &smsBox{}, logs: &syncLog{}}
	start := time.Now()
	// One clock for both sides, running from testNow (the demo records'
	// day), so timestamps and windows agree.
	clock := func() time.Time { return testNow.Add(time.Since(start) + time.Duration(e.skew.Load())) }
	e.now = clock
	cfg := wechattest.Config{AppID: "wx0123456789abcdef", AppSecret: "secret-" + rand.Text(), Token: "tok" + rand.Text()[:10], Now: clock}
	if o.aes {
		cfg.AESKey = wechattest.NewAESKey()
	}
	e.fake = wechattest.New(cfg)
	t.Cleanup(e.fake.Close)

	url := os.Getenv("REDIS_URL")
	if url == "" {
		mr := miniredis.RunT(t)
		url = "redis://" + mr.Addr()
	}
	prefix := "wxtest-" + rand.Text()[:10]
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := records.OpenDemo(context.Background(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() && os.Getenv("WECHAT_TEST_LOG") != "" {
			t.Log(e.logs.String())
		}
	})
	for range o.replicas {
		st, err := redisstore.Open(ctx, redisstore.Options{URL: url, Keys: testKeys, KeyPrefix: prefix, OpTimeout: 2 * time.Second, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		e.stores = append(e.stores, st)
		eng := bot.New(bot.Config{
			Sessions: st, Attempts: st, Reminders: st, FAQ: f, Records: db, Keys: st.Keys(), SMS: e.sms,
			Logger: log, Now: clock,
		})
		var h bot.Handler = countHandler{eng, &e.handled}
		if o.handler != nil {
			h = o.handler(h)
		}
		a, err := New(Options{
			AppID: cfg.AppID, AppSecret: cfg.AppSecret, Token: cfg.Token, AESKey: cfg.AESKey,
			APIURL: e.fake.URL(), RemindTemplate: o.template,
			Handler: h, Store: st, Coordinator: st, Blocklist: st, Reminders: st, Logger: log, Now: clock,
		})
		if err != nil {
			t.Fatal(err)
		}
		a.recoverEvery = 50 * time.Millisecond
		a.recoverAfter = 300 * time.Millisecond
		a.callTimeout = 2 * time.Second
		a.gate = newGate(10*time.Millisecond, 100*time.Millisecond)
		a.retryFor = 3 * time.Second
		a.parkFor = 50 * time.Millisecond
		if o.tweak != nil {
			o.tweak(a)
		}
		e.adapters = append(e.adapters, a)
		wg.Go(func() { a.Run(ctx) })
	}
	// Run has stored its state before the first POST.
	for _, a := range e.adapters {
		for a.run.Load() == nil {
			time.Sleep(time.Millisecond) // test setup only: Run starts in a goroutine
		}
	}
	e.lb = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(e.next.Add(1)-1) % len(e.adapters)
		e.adapters[i].Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(e.lb.Close)
	e.fake.SetServer(e.lb.URL + "/wechat")
	return e
}

type countHandler struct {
	h bot.Handler
	n *atomic.Int64
}

func (c countHandler) Handle(ctx context.Context, m bot.Message) ([]bot.Reply, error) {
	c.n.Add(1)
	return c.h.Handle(ctx, m)
}

// say sends text from openid and waits for n more texts to it.
func (e *env) say(openid, text string, n int) []string {
	e.t.Helper()
	before := len(e.fake.Texts(openid))
	d, err := e.fake.Text(e.t.Context(), openid, text)
	if err != nil || d.Status != http.StatusOK || d.Body != "success" {
		e.t.Fatalf("POST %q: %+v, %v", text, d, err)
	}
	got, err := e.fake.WaitTexts(e.t.Context(), openid, before+n)
	if err != nil {
		e.t.Fatalf("after %q: %v; got %q", text, err, got[before:])
	}
	return got[before:]
}

// settle waits until nothing is held, parked or in flight.
func (e *env) settle() {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		held := 0
		e.stores[0].HeldMessages(e.t.Context(), channel, func(string, time.Time, []byte) { held++ })
		busy := false
		for _, a := range e.adapters {
			a.working.Range(func(any, any) bool { busy = true; return false })
		}
		parked, _ := e.stores[0].Parked(e.t.Context(), channel, e.now().Add(time.Hour), 1)
		if held == 0 && !busy && len(parked) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling the system under test, not logic
	}
	e.t.Fatal("messages still held or in flight")
}
