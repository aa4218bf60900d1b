package wechat

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/shebao/shebao/bot/wechat/wechattest"
	"github.com/shebao/shebao/records"
)

// ask posts text from openid as WeChat does, then posts it again with the
// same MsgId (WeChat's retry of a message it got no answer to in time,
// landing on the other replica), and returns everything sent to the user
// once all is settled.
func (e *env) ask(openid, text string) string {
	e.t.Helper()
	before := len(e.fake.Texts(openid))
	m := wechattest.Message{From: openid, Type: "text", Text: text}
	d, err := e.fake.Post(e.t.Context(), m, wechattest.PostOpts{})
	if err != nil || d.Status != http.StatusOK || d.Body != "success" {
		e.t.Fatalf("POST %q: %+v, %v", text, d, err)
	}
	if d, err := e.fake.Resend(e.t.Context(), m, d.MsgID); err != nil || d.Status != http.StatusOK {
		e.t.Fatalf("retry of %q: %+v, %v", text, d, err)
	}
	if _, err := e.fake.WaitTexts(e.t.Context(), openid, before+1); err != nil {
		e.t.Fatalf("after %q: %v", text, err)
	}
	e.settle()
	return strings.Join(e.fake.Texts(openid)[before:], "\n")
}

// The conversation the issue asks for, end to end on the fake Official
// Account across two replicas: a follow, a question and its cited answer,
// verification by a texted code, the records and the back-payment plan.
// Every message is also retried by WeChat; each is handled once and
// answered once, and the logs hold no message text, ID number, phone or
// code.
func TestConversationAcrossReplicas(t *testing.T) {
	e := newEnv(t, envOpts{replicas: 2, aes: true})
	p := records.Demo()[2].Person // 王五: the employer has not paid two months
	const user = "oConv_0001"

	if d, err := e.fake.Event(t.Context(), user, "subscribe", ""); err != nil || d.Body != "success" {
		t.Fatalf("follow: %+v %v", d, err)
	}
	welcome, err := e.fake.WaitTexts(t.Context(), user, 1)
	if err != nil || !strings.Contains(welcome[0], "下一步") || !strings.Contains(welcome[0], "/verify") {
		t.Fatalf("welcome with next steps: %q %v", welcome, err)
	}
	e.settle()
	steps := 1

	answer := e.ask(user, "医保断缴了还能补吗？")
	steps++
	if !strings.Contains(answer, "依据：《社会保险经办条例》第三十一条") {
		t.Errorf("cited answer: %s", answer)
	}
	out := e.ask(user, "/verify")
	steps++
	if !strings.Contains(out, "身份证号码") {
		t.Fatalf("/verify: %s", out)
	}
	out = e.ask(user, p.ID)
	steps++
	if !strings.Contains(out, records.MaskID(p.ID)) || strings.Contains(out, p.ID) || !strings.Contains(out, "验证码") {
		t.Fatalf("ID: %s", out)
	}
	code := e.sms.last()
	if len(e.sms.sent) != 1 || e.sms.sent[0].Phone != p.Phone || len(code) != 6 {
		t.Fatalf("codes texted: %+v (one to the phone on record wanted)", e.sms.sent)
	}
	out = e.ask(user, code)
	steps++
	if !strings.Contains(out, "验证成功") {
		t.Fatalf("code: %s", out)
	}
	out = e.ask(user, "/records")
	steps++
	if !strings.Contains(out, "欠缴") || !strings.Contains(out, records.MaskID(p.ID)) || strings.Contains(out, "**医疗") || strings.ContainsAny(out, "<>") {
		t.Errorf("records: %s", out)
	}
	out = e.ask(user, "/backpay")
	steps++
	if !strings.Contains(out, "怎么补缴") || !strings.Contains(out, "第六十三条") {
		t.Errorf("back-payment plan: %s", out)
	}

	if n := e.handled.Load(); n != int64(steps) {
		t.Errorf("%d messages handled for %d sent (each twice)", n, steps)
	}
	texts := e.fake.Texts(user)
	for i := 1; i < len(texts); i++ {
		if texts[i] == texts[i-1] {
			t.Errorf("message %d sent twice: %.80q", i, texts[i])
		}
	}
	if e.fake.Rejected() != 0 {
		t.Errorf("%d sends refused by WeChat", e.fake.Rejected())
	}
	logs := e.logs.String()
	for _, leak := range []string{"医保断缴了还能补吗", p.ID, p.Phone, code, "欠缴", "<xml", "CDATA"} {
		if strings.Contains(logs, leak) {
			t.Errorf("logs contain %q", leak)
		}
	}
}

// The library's root package has an init() that sets its global logger to
// Debug on stdout, which prints every message's XML: it must not be in
// the build of this package (nor of its tests).
func TestLibraryRootPackageNotLinked(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to list the build")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-test", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var lib []string
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/silenceper/wechat/v2" {
			t.Errorf("%s is in the build: its init logs every message at Debug", p)
		}
		if strings.HasPrefix(p, "github.com/silenceper/wechat/v2/") {
			lib = append(lib, p)
		}
		if strings.Contains(p, "sirupsen/logrus") {
			t.Errorf("the library's logger %s is in the build", p)
		}
	}
	if len(lib) == 0 {
		t.Fatal("the library is not in the build at all: the test looks at the wrong thing")
	}
}
