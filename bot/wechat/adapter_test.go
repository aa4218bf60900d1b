package wechat

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot/wechat/wechattest"
)

// A question within the window gets its cited answer, and the citation's
// button is a numbered choice that shows the article.
func TestQuestionAnswered(t *testing.T) {
	for _, aes := range []bool{false, true} {
		e := newEnv(t, envOpts{aes: aes})
		got := e.say("oUser1", "医保断缴了还能补吗？", 1)
		if len(got) != 1 || !strings.Contains(got[0], "依据") || !strings.Contains(got[0], "《社会保险经办条例》第三十一条") {
			t.Fatalf("safe mode %v: answer %q", aes, got)
		}
		if strings.ContainsAny(got[0], "<>*") {
			t.Errorf("markup in a WeChat text: %q", got[0])
		}
		if !strings.Contains(got[0], "[1] 📖") || !strings.Contains(got[0], "回复数字") {
			t.Errorf("no numbered choices: %q", got[0])
		}
		art := e.say("oUser1", "1", 1)
		if !strings.Contains(art[0], "《社会保险经办条例》第三十一条") || !strings.Contains(art[0], "经办机构") {
			t.Errorf("choice 1 did not show the article: %q", art)
		}
		// A number with no choice to pick is text.
		if got := e.say("oUser1", "9", 1); strings.Contains(got[0], "第三十一条") {
			t.Errorf("9 picked something: %q", got)
		}
	}
}

// WeChat retries a message it got no answer to: the same MsgId is handled
// once, and answered once.
func TestRetrySameMsgIDHandledOnce(t *testing.T) {
	e := newEnv(t, envOpts{replicas: 2})
	m := wechattest.Message{From: "oRetry", Type: "text", Text: "查社保缴费记录要钱吗", MsgID: 777_000_123}
	for range 3 {
		d, err := e.fake.Resend(t.Context(), m, m.MsgID)
		if err != nil || d.Status != http.StatusOK || d.Body != "success" {
			t.Fatalf("POST: %+v, %v", d, err)
		}
	}
	if _, err := e.fake.WaitTexts(t.Context(), "oRetry", 1); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if n := len(e.fake.Texts("oRetry")); n != 1 {
		t.Errorf("%d answers to one message sent three times", n)
	}
	if n := e.handled.Load(); n != 1 {
		t.Errorf("handled %d times", n)
	}
}

// A bad signature or a stale timestamp gets 401 and nothing is handled;
// the console's URL check echoes echostr only when signed.
func TestSignatureChecked(t *testing.T) {
	for _, aes := range []bool{false, true} {
		e := newEnv(t, envOpts{aes: aes})
		ctx := t.Context()
		m := wechattest.Message{From: "oBad", Type: "text", Text: "医保断缴了还能补吗？"}
		for _, o := range []wechattest.PostOpts{{BadSignature: true}, {Timestamp: testNow.Add(-time.Hour).Unix()}} {
			d, err := e.fake.Post(ctx, m, o)
			if err != nil || d.Status != http.StatusUnauthorized {
				t.Errorf("aes %v, %+v: %+v, %v; want 401", aes, o, d, err)
			}
		}
		if st, body, _ := e.fake.Verify(ctx, true); st != http.StatusUnauthorized || strings.Contains(body, "echo") {
			t.Errorf("bad URL check: %d %q", st, body)
		}
		if st, body, _ := e.fake.Verify(ctx, false); st != http.StatusOK || body != "echo-7731" {
			t.Errorf("URL check: %d %q", st, body)
		}
		held := 0
		e.stores[0].HeldMessages(ctx, channel, func(string, time.Time, []byte) { held++ })
		if held != 0 || e.handled.Load() != 0 || len(e.fake.Sent("")) != 0 {
			t.Errorf("something was handled: held %d, handled %d, sent %d", held, e.handled.Load(), len(e.fake.Sent("")))
		}
	}
}
