package telegram

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
)

// memWebhooks is a WebhookState in memory, shared by "replicas".
type memWebhooks struct {
	mu sync.Mutex
	fp string
}

func (m *memWebhooks) WebhookFingerprint(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fp, nil
}

func (m *memWebhooks) SetWebhookFingerprint(_ context.Context, fp string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fp = fp
	return nil
}

// TestRegisterWebhookOnce: the first replica sets the webhook; the next
// ones find it right and leave it; a new secret under the same URL, a
// webhook changed by someone else, or no stored fingerprint sets it again.
func TestRegisterWebhookOnce(t *testing.T) {
	state := &memWebhooks{}
	e := newEnv(t, func(o *Options) { o.Webhooks = state })
	replica := func(edit func(*Options)) *Adapter {
		t.Helper()
		opts := e.options
		if edit != nil {
			edit(&opts)
		}
		a, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.RegisterWebhook(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		return a
	}
	sets := func() int { return len(e.fake.Calls("setWebhook")) }
	for range 3 {
		replica(nil)
	}
	if sets() != 1 {
		t.Fatalf("three replicas made %d setWebhook calls, want 1", sets())
	}
	if url, secret, _ := e.fake.Webhook(); url != e.options.WebhookURL || secret != e.options.WebhookSecret {
		t.Errorf("webhook %q with secret %q", url, secret)
	}
	if got := len(e.fake.Calls("getWebhookInfo")); got != 3 {
		t.Errorf("%d getWebhookInfo calls, want one per start", got)
	}

	replica(func(o *Options) { o.WebhookSecret = "rotated-secret" })
	if _, secret, _ := e.fake.Webhook(); sets() != 2 || secret != "rotated-secret" {
		t.Errorf("a new secret: %d setWebhook calls, secret %q", sets(), secret)
	}
	replica(func(o *Options) { o.WebhookSecret = "rotated-secret" })
	if sets() != 2 {
		t.Errorf("the rotated secret was set again: %d calls", sets())
	}

	e.fake.SetWebhook(e.options.WebhookURL, "rotated-secret", []string{"message"}) // someone else's
	replica(func(o *Options) { o.WebhookSecret = "rotated-secret" })
	if _, _, allowed := e.fake.Webhook(); sets() != 3 || len(allowed) != len(allowedUpdates) {
		t.Errorf("other update kinds: %d setWebhook calls, allowed %v", sets(), allowed)
	}

	replica(func(o *Options) { o.WebhookSecret = "rotated-secret"; o.Webhooks = nil })
	if sets() != 4 {
		t.Errorf("without a WebhookState: %d setWebhook calls, want every start to set", sets())
	}
	if fp := state.fp; fp == "" || strings.Contains(fp, "rotated-secret") || strings.Contains(fp, testToken) {
		t.Errorf("stored fingerprint %q", fp)
	}
}

// TestWebhookInfoLogged: at start the operator sees how many updates wait
// at Telegram and why deliveries fail, in webhook and in polling mode.
func TestWebhookInfoLogged(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.PushText(7, "waiting")
	e.fake.PushText(8, "waiting")
	e.fake.FailDeliveries("Wrong response from the webhook: 502 Bad Gateway", time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC))
	if err := e.a.RegisterWebhook(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	for _, want := range []string{`"pending_update_count":2`, `"last_error_message":"Wrong response from the webhook: 502 Bad Gateway"`, `"last_error_at":"2026-03-01T07:00:00Z"`, `"level":"WARN"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, e.options.WebhookURL) || strings.Contains(logs, e.options.WebhookSecret) {
		t.Errorf("logs show the webhook URL or secret:\n%s", logs)
	}

	// Polling: the webhook set above is deleted, with a warning.
	p := newEnv(t, func(o *Options) { o.WebhookURL, o.WebhookSecret = "", "" })
	p.fake.SetWebhook("https://old.example.org/telegram", "x", nil)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- p.a.RunPolling(ctx) }()
	if _, err := p.fake.WaitCalls(testCtx(t), "getUpdates", 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if url, _, _ := p.fake.Webhook(); url != "" || len(p.fake.Calls("deleteWebhook")) != 1 {
		t.Errorf("webhook %q left set before polling", url)
	}
	if !strings.Contains(p.logs.String(), `"webhook_set":true`) {
		t.Errorf("polling start did not log the webhook info:\n%s", p.logs.String())
	}
	// A second start finds no webhook and does not delete again.
	p2 := newEnv(t, func(o *Options) { o.WebhookURL, o.WebhookSecret = "", "" })
	ctx2, cancel2 := context.WithCancel(testCtx(t))
	go func() { done <- p2.a.RunPolling(ctx2) }()
	if _, err := p2.fake.WaitCalls(testCtx(t), "getUpdates", 1); err != nil {
		t.Fatal(err)
	}
	cancel2()
	<-done
	if n := len(p2.fake.Calls("deleteWebhook")); n != 0 {
		t.Errorf("%d deleteWebhook calls with no webhook set", n)
	}
}

// TestAPICallTimed: every Bot API call but the long poll is timed.
func TestAPICallTimed(t *testing.T) {
	metrics := &countMetrics{}
	e := newEnv(t, func(o *Options) { o.Metrics = metrics })
	e.fake.FailNext("sendMessage", 1, 502, 0)
	if err := e.a.RegisterWebhook(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Send(testCtx(t), tg(7), []bot.Reply{bot.TextReply("hi")}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"getMe", "getWebhookInfo", "setWebhook"} {
		if metrics.get("call/"+m) != 1 {
			t.Errorf("%s timed %d times, want 1", m, metrics.get("call/"+m))
		}
	}
	if got := metrics.get("call/sendMessage"); got != 2 {
		t.Errorf("sendMessage timed %d times, want 2 (the failed attempt too)", got)
	}
}
