package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/wechat/wechattest"
)

const sendPath = "/cgi-bin/message/custom/send"

// longHandler answers "long" with n messages' worth of numbered lines
// and everything else through the engine.
func longHandler(n int) func(bot.Handler) bot.Handler {
	return func(h bot.Handler) bot.Handler {
		return handlerFunc(func(ctx context.Context, m bot.Message) ([]bot.Reply, error) {
			if m.Text != "long" {
				return h.Handle(ctx, m)
			}
			var b strings.Builder
			for i := range n * 21 {
				fmt.Fprintf(&b, "第%03d行：医疗保险缴费记录与补缴办法说明，内容较长需要分条发送。\n", i)
			}
			return []bot.Reply{bot.TextReply(strings.TrimSpace(b.String()))}, nil
		})
	}
}

type handlerFunc func(ctx context.Context, m bot.Message) ([]bot.Reply, error)

func (f handlerFunc) Handle(ctx context.Context, m bot.Message) ([]bot.Reply, error) {
	return f(ctx, m)
}

// A long answer is split by bytes at line ends. The allowance of five
// messages ends before it does: the fifth says so, and "继续" brings the
// rest, in order, nothing lost and nothing twice.
func TestLongAnswerWithinAllowance(t *testing.T) {
	e := newEnv(t, envOpts{handler: longHandler(8)})
	whole := render([]bot.Reply{mustLong(t, 8)}).parts
	if len(whole) < 7 {
		t.Fatalf("test answer is %d messages; want more than the allowance", len(whole))
	}
	got := e.say("oLong", "long", 5)
	e.settle()
	if n := len(e.fake.Texts("oLong")); n != 5 {
		t.Fatalf("%d messages, want the allowance of 5", n)
	}
	for i, g := range got {
		if len(g) > MaxBytes {
			t.Errorf("message %d is %d bytes", i, len(g))
		}
	}
	if !strings.HasSuffix(got[4], notice("zh")) {
		t.Errorf("the last allowed message does not say the rest waits: %q", got[4][max(0, len(got[4])-200):])
	}
	if e.fake.Rejected() != 0 {
		t.Errorf("%d sends refused by WeChat: the allowance was overrun", e.fake.Rejected())
	}
	rest := e.say("oLong", "继续", len(whole)-4)
	all := append(got, rest...)
	joined := strings.ReplaceAll(strings.Join(all, "\n"), "\n"+notice("zh"), "")
	if squeeze(joined) != squeeze(strings.Join(whole, "\n")) {
		t.Error("the answer delivered in two windows is not the answer")
	}
	// A new question after a cut answer drops what was left of it.
	e.say("oLong", "long", 5)
	e.settle()
	before := len(e.fake.Texts("oLong"))
	got = e.say("oLong", "查社保缴费记录要钱吗", 1)
	if strings.Contains(got[0], "第0") {
		t.Errorf("the stale rest came before the new answer: %q", got[0][:80])
	}
	e.settle()
	if n := len(e.fake.Texts("oLong")) - before; n != 1 {
		t.Errorf("%d messages after a new question, want its answer only", n)
	}
}

func mustLong(t *testing.T, n int) bot.Reply {
	r, _ := longHandler(n)(nil).Handle(t.Context(), bot.Message{Text: "long"})
	return r[0]
}

// WeChat's failures, each as WeChat means it.
func TestSendFailures(t *testing.T) {
	cases := []struct {
		name  string
		fail  []wechattest.Failure
		texts int // the user sees
		calls int // send calls made
	}{
		// Busy: nothing was done; tried again and delivered once.
		{"busy", []wechattest.Failure{{ErrCode: -1}}, 1, 2},
		// A 5xx after delivery: the user has it; never sent again.
		{"5xx after delivery", []wechattest.Failure{{Status: 502, Delivered: true}}, 1, 1},
		// A 5xx before delivery: it may have gone out, so it is not sent
		// again either; the user misses it rather than see it twice.
		{"5xx", []wechattest.Failure{{Status: 503}}, 0, 1},
		// A timeout: it may have gone out; not sent again.
		{"timeout", []wechattest.Failure{{Hang: true}}, 0, 1},
		// A timeout after delivery: not sent again.
		{"timeout after delivery", []wechattest.Failure{{Hang: true, Delivered: true}}, 1, 1},
		// Outside the 48-hour window, or the allowance spent: dropped,
		// no retry (WeChat would refuse again).
		{"45015", []wechattest.Failure{{ErrCode: 45015}}, 0, 1},
		{"45047", []wechattest.Failure{{ErrCode: 45047}}, 0, 1},
		// An invalid token: dropped, refreshed once, sent again.
		{"40001", []wechattest.Failure{{ErrCode: 40001}}, 1, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{tweak: func(a *Adapter) { a.callTimeout = 300 * time.Millisecond }})
			e.fake.Fail(sendPath, c.fail...)
			if _, err := e.fake.Text(t.Context(), "oF", "查社保缴费记录要钱吗"); err != nil {
				t.Fatal(err)
			}
			e.settle()
			if n := len(e.fake.Texts("oF")); n != c.texts {
				t.Errorf("user got %d messages, want %d", n, c.texts)
			}
			if n := e.fake.Calls(sendPath); n != c.calls {
				t.Errorf("%d send calls, want %d", n, c.calls)
			}
			// The next message goes through as usual.
			e.say("oF", "查社保缴费记录要钱吗", 1)
		})
	}
}

// After 45015 the adapter knows the window is closed: nothing more is
// tried for the chat until the user writes again.
func TestWindowClosedKnown(t *testing.T) {
	e := newEnv(t, envOpts{handler: longHandler(3)})
	e.fake.Fail(sendPath, wechattest.Failure{ErrCode: 45015})
	e.fake.Text(t.Context(), "oW", "long")
	e.settle()
	if n := e.fake.Calls(sendPath); n != 1 {
		t.Errorf("%d sends after 45015, want 1", n)
	}
	if err := e.adapters[0].Send(t.Context(), bot.ID(bot.ChannelWeChat, "oW"), []bot.Reply{bot.TextReply("提醒")}); !errors.Is(err, bot.ErrCannotPush) {
		t.Errorf("reminder with the window closed and no template: %v, want ErrCannotPush", err)
	}
}

// A token invalidated mid-run (a refresh elsewhere) is replaced once and
// the reply sent; with a grace period nothing even fails.
func TestTokenInvalidatedMidRun(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.say("oT", "查社保缴费记录要钱吗", 1)
	if n := e.fake.TokensIssued(); n != 1 {
		t.Fatalf("%d tokens issued, want 1", n)
	}
	e.fake.InvalidateTokens()
	e.say("oT", "医保断缴了还能补吗？", 1)
	if n := e.fake.TokensIssued(); n != 2 {
		t.Errorf("%d tokens issued after the invalidation, want 2", n)
	}
	e.say("oT", "查社保缴费记录要钱吗", 1)
	if n := e.fake.TokensIssued(); n != 2 {
		t.Errorf("%d tokens issued, want the new one kept", n)
	}
}

// Two replicas share one token: under load one token is fetched, and when
// it is invalidated mid-run exactly one refresh serves both; every
// message is answered once.
func TestTwoReplicasShareOneToken(t *testing.T) {
	e := newEnv(t, envOpts{replicas: 2})
	const users = 24
	load := func(round string) {
		var wg sync.WaitGroup
		for u := range users {
			wg.Go(func() {
				if _, err := e.fake.Text(t.Context(), fmt.Sprintf("oLoad%02d", u), "查社保缴费记录要钱吗"+round); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	answered := func(n int) {
		err := e.fake.Wait(t.Context(), func() bool {
			for u := range users {
				if len(e.fake.Texts(fmt.Sprintf("oLoad%02d", u))) < n {
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	load("")
	answered(1)
	if n := e.fake.TokensIssued(); n != 1 {
		t.Errorf("%d tokens issued for two replicas, want 1", n)
	}
	e.fake.InvalidateTokens()
	load("？")
	answered(2)
	e.settle()
	if n := e.fake.TokensIssued(); n != 2 {
		t.Errorf("%d tokens issued after one invalidation under load, want 2", n)
	}
	for u := range users {
		if n := len(e.fake.Texts(fmt.Sprintf("oLoad%02d", u))); n != 2 {
			t.Errorf("user %d got %d answers to 2 messages", u, n)
		}
	}
}

// An outage of the API longer than a turn's retries loses no reply: the
// chat is parked with its replies and any replica sends them, in order,
// once the probe answers.
func TestOutageLosesNoReply(t *testing.T) {
	e := newEnv(t, envOpts{replicas: 2, handler: longHandler(2), tweak: func(a *Adapter) { a.retryFor = 200 * time.Millisecond }})
	// The first send meets a refused connection's twin (-1: nothing
	// done), then the API (probe included) fails for a while.
	var outage []wechattest.Failure
	for range 12 {
		outage = append(outage, wechattest.Failure{Status: 503})
	}
	e.fake.Fail(sendPath, wechattest.Failure{ErrCode: -1})
	e.fake.Fail("/cgi-bin/get_api_domain_ip", outage...)
	if _, err := e.fake.Text(t.Context(), "oOut", "long"); err != nil {
		t.Fatal(err)
	}
	want := render([]bot.Reply{mustLong(t, 2)}).parts
	got, err := e.fake.WaitTexts(t.Context(), "oOut", len(want))
	if err != nil {
		t.Fatalf("after the outage: %v (%d of %d)", err, len(got), len(want))
	}
	e.settle()
	if strings.Join(e.fake.Texts("oOut"), "\n") != strings.Join(want, "\n") {
		t.Errorf("replies after the outage differ: %d messages, want %d", len(e.fake.Texts("oOut")), len(want))
	}
}

// A replica that dies after acknowledging loses nothing: the held message
// is taken up by another.
func TestHeldMessageTakenUp(t *testing.T) {
	e := newEnv(t, envOpts{replicas: 2})
	e.say("oCrash", "/start", 1) // the user writes: the window opens
	e.handled.Store(0)
	// A message acknowledged a minute ago by a replica that died before
	// handling it (its CreateTime a second after the /start).
	created := e.now().Unix() + 1
	in := inbound{From: "oCrash", Type: "text", Text: "查社保缴费记录要钱吗", MsgID: 99, Created: created}
	raw, _ := json.Marshal(in)
	if ok, err := e.stores[0].HoldMessage(t.Context(), channel, in.key(), e.now().Add(-time.Minute), raw); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := e.fake.WaitTexts(t.Context(), "oCrash", 2); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if n := e.handled.Load(); n != 1 {
		t.Errorf("held message handled %d times", n)
	}
}

// The notice of a spent allowance never costs text: what does not fit
// beside it comes back as the tail, and the message stays within the
// byte limit.
func TestWithNoticeKeepsEverything(t *testing.T) {
	line := "第001行：医疗保险缴费记录与补缴办法说明。"
	for _, text := range []string{"短", strings.Repeat(line+"\n", 21), strings.Repeat(line+"\n", 22), strings.Repeat("长", 700)} {
		text = strings.TrimSpace(text)
		for _, lang := range []string{"zh", "en"} {
			msg, tail := withNotice(text, lang)
			if len(msg) > MaxBytes || !strings.HasSuffix(msg, notice(lang)) {
				t.Errorf("%d bytes: message of %d bytes, notice at the end %v", len(text), len(msg), strings.HasSuffix(msg, notice(lang)))
			}
			head := strings.TrimSuffix(strings.TrimSuffix(msg, notice(lang)), "\n")
			if squeeze(head+tail) != squeeze(text) {
				t.Errorf("%d bytes: head and tail are not the text", len(text))
			}
		}
	}
}
