package telegram

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// politeFailure answers like the engine when a store is down: an error
// for the operator and a polite reply for the user.
type politeFailure struct {
	mu   sync.Mutex
	ctxs []context.Context
}

func (h *politeFailure) Handle(ctx context.Context, m bot.Message) ([]bot.Reply, error) {
	h.mu.Lock()
	h.ctxs = append(h.ctxs, ctx)
	h.mu.Unlock()
	return []bot.Reply{bot.TextReply("抱歉，出了点问题，请稍后再试。Sorry, something went wrong; please try again later.")},
		errors.New("load state for chat 5: redis: connection refused")
}

func TestHandlerErrorStillSendsItsReplies(t *testing.T) {
	metrics := &countMetrics{}
	h := &politeFailure{}
	e := newEnv(t, func(o *Options) { o.Handler = h; o.Metrics = metrics })
	if rec := postUpdate(t, e, telegramtest.TextUpdate(5, "我的社保"), e.options.WebhookSecret); rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", rec.Code)
	}
	sent := e.fake.Sent()
	if len(sent) != 1 || sent[0].ChatID != 5 || !strings.Contains(sent[0].Text, "Sorry, something went wrong") {
		t.Errorf("sent %+v, want the polite reply", sent)
	}
	if got := metrics.get("text/error"); got != 1 {
		t.Errorf("counted %d text/error, want 1 (metrics %v)", got, metrics.n)
	}
	if !strings.Contains(e.logs.String(), `"level":"WARN","msg":"handler failed"`) {
		t.Errorf("handler error not logged at Warn: %s", e.logs)
	}
}

func TestHandlerErrorAfterCancelSendsNothing(t *testing.T) {
	metrics := &countMetrics{}
	e := newEnv(t, func(o *Options) { o.Handler = &politeFailure{}; o.Metrics = metrics })
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	u := telegramtest.TextUpdate(5, "hi")
	u.ID = 1
	in, _ := e.a.convert(&u)
	if out := e.a.processMessage(ctx, in, nil); out != outcomeAborted {
		t.Errorf("outcome %s, want aborted: the update must be delivered again", out)
	}
	if n := len(e.fake.Calls("sendMessage")); n != 0 {
		t.Errorf("%d sendMessage calls after the context ended", n)
	}
}

func TestTemporaryAndGone(t *testing.T) {
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}()
	tests := []struct {
		name      string
		setup     func(e *env)
		temporary bool // worth retrying later, and not delivered
		gone      bool // the chat will never take a message
	}{
		{name: "429 on every attempt", setup: func(e *env) { e.fake.FailNext("sendMessage", 100, 429, 2) }, temporary: true},
		{name: "connection refused", setup: func(e *env) {
			e.a.apiURL = refused
		}, temporary: true},
		{name: "chat not found", setup: func(e *env) { e.fake.FailChat(7, 400, "Bad Request: chat not found") }, gone: true},
		{name: "user is deactivated", setup: func(e *env) { e.fake.FailChat(7, 400, "Bad Request: user is deactivated") }, gone: true},
		{name: "can't parse entities", setup: func(e *env) {
			e.fake.FailChat(7, 400, "Bad Request: can't parse entities: unsupported start tag")
		}},
		{name: "blocked", setup: func(e *env) { e.fake.Block(7) }},
		{name: "5xx on every attempt", setup: func(e *env) { e.fake.FailNext("sendMessage", 100, 502, 0) }},
		{name: "timeout after the request was written", setup: func(e *env) {
			e.a.callTimeout = 20 * time.Millisecond
			e.fake.Hold("sendMessage")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.a.maxAttempts = 2
			tt.setup(e)
			err := e.a.Send(testCtx(t), tg(7), []bot.Reply{bot.TextReply("提醒 reminder")})
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := Temporary(err); got != tt.temporary {
				t.Errorf("Temporary(%v) = %v, want %v", err, got, tt.temporary)
			}
			if got := Gone(err); got != tt.gone {
				t.Errorf("Gone(%v) = %v, want %v", err, got, tt.gone)
			}
		})
	}
	for _, err := range []error{nil, context.Canceled, context.DeadlineExceeded, errors.New("other")} {
		if Temporary(err) || Gone(err) {
			t.Errorf("%v: Temporary %v, Gone %v; want neither", err, Temporary(err), Gone(err))
		}
	}
}

// A reply split in two whose second part fails: the first part went out,
// so sending the reply again would repeat it.
func TestTemporaryFalseOncePartSent(t *testing.T) {
	e := newEnv(t, nil)
	e.a.maxAttempts = 1
	long := strings.Repeat("第一部分 part one\n", 400)
	calls := 0
	e.a.http = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls > 1 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	err := e.a.Send(testCtx(t), tg(7), []bot.Reply{bot.TextReply(long)})
	if err == nil || len(e.fake.Sent()) != 1 {
		t.Fatalf("Send = %v with %d parts sent; want the second part to fail", err, len(e.fake.Sent()))
	}
	if Temporary(err) {
		t.Errorf("Temporary(%v) = true after a part was delivered", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A first attempt that timed out may have been delivered: a later attempt
// that cannot connect does not make the failure safe to retry.
func TestTemporaryFalseAfterAttemptTimedOut(t *testing.T) {
	e := newEnv(t, nil)
	e.a.maxAttempts = 3
	calls := 0
	e.a.http = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			return nil, context.DeadlineExceeded
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	})}
	err := e.a.Send(testCtx(t), tg(7), []bot.Reply{bot.TextReply("提醒 reminder")})
	if err == nil || calls != 3 {
		t.Fatalf("Send = %v after %d attempts, want a failure after 3", err, calls)
	}
	if Temporary(err) {
		t.Errorf("Temporary(%v) = true although the first attempt may have been delivered", err)
	}
}
