package main

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot/sms"
	"github.com/shebao/shebao/bot/web"
	"github.com/shebao/shebao/records"
)

// demoID is a demo person (records.Demo): 王五, phone 13900000033, whose
// employer has not paid the last two months.
const (
	demoID     = "350102198501150037"
	demoPhone  = "13900000033"
	demoMasked = "350102********0037"
)

// smsGateway is a fake SMS gateway for SMS_WEBHOOK_URL: it checks the
// signature as a real one must, and hands over each code.
type smsGateway struct {
	url    string
	secret string
	codes  chan smsCode
}

type smsCode struct{ phone, code string }

func newSMSGateway(t *testing.T) *smsGateway {
	t.Helper()
	g := &smsGateway{secret: strings.Repeat("k", 40), codes: make(chan smsCode, 10)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		want := "sha256=" + sms.Sign([]byte(g.secret), r.Header.Get("X-Shebao-Timestamp"), body)
		if !hmac.Equal([]byte(r.Header.Get("X-Shebao-Signature")), []byte(want)) {
			t.Errorf("SMS request with a bad signature")
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m struct{ Phone, Code string }
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("SMS request: %v", err)
		}
		g.codes <- smsCode{m.Phone, m.Code}
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *smsGateway) next(t *testing.T) smsCode {
	t.Helper()
	select {
	case c := <-g.codes:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no SMS code was sent")
		return smsCode{}
	}
}

// chatClient is a web chat client for these tests.
type chatClient struct {
	t *testing.T
	c *web.Client
}

func dialChat(t *testing.T, base string) *chatClient {
	t.Helper()
	return dialChatWith(t, base, nil)
}

// dialChatWith dials with more handshake headers (X-Forwarded-For).
func dialChatWith(t *testing.T, base string, h http.Header) *chatClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := web.Dial(ctx, base, web.DialOptions{Origin: base, Header: h})
	if err != nil {
		t.Fatalf("dial the web chat: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := c.Hello(ctx, "zh"); err != nil {
		t.Fatal(err)
	}
	cc := &chatClient{t: t, c: c}
	cc.until("") // the welcome and the greeting
	return cc
}

// until reads frames up to the ack of id ("": up to the first reply) and
// returns the replies' texts and the buttons of the last one.
func (cc *chatClient) until(id string) (texts []string, buttons []web.Button) {
	cc.t.Helper()
	ctx, cancel := context.WithTimeout(cc.t.Context(), 30*time.Second)
	defer cancel()
	for {
		f, err := cc.c.Next(ctx)
		if err != nil {
			cc.t.Fatalf("web chat: %v (so far %q)", err, texts)
		}
		if f.Type == "reply" {
			var b strings.Builder
			for _, blk := range f.Blocks {
				for _, s := range blk.Spans {
					b.WriteString(s.Text)
				}
				if blk.Cite != nil {
					b.WriteString("{cite: " + blk.Cite.Label + "}")
				}
				b.WriteString("\n")
			}
			texts = append(texts, b.String())
			buttons = nil
			for _, row := range f.Buttons {
				buttons = append(buttons, row...)
			}
			if id == "" {
				return texts, buttons
			}
		}
		if f.Type == "ack" && f.For == id {
			return texts, buttons
		}
	}
}

func (cc *chatClient) say(text string) ([]string, []web.Button) {
	cc.t.Helper()
	id, err := cc.c.Text(cc.t.Context(), text)
	if err != nil {
		cc.t.Fatal(err)
	}
	return cc.until(id)
}

func (cc *chatClient) press(data string) ([]string, []web.Button) {
	cc.t.Helper()
	id, err := cc.c.Press(cc.t.Context(), data, "")
	if err != nil {
		cc.t.Fatal(err)
	}
	return cc.until(id)
}

// verifyByCode verifies the demo person by an SMS code from codeOf and
// returns what the records look like.
func verifyByCode(t *testing.T, cc *chatClient, codeOf func() smsCode) string {
	t.Helper()
	cc.say("/verify")
	texts, buttons := cc.say(demoID)
	if !strings.Contains(strings.Join(texts, ""), demoMasked) {
		t.Errorf("after the ID number: %q; want it masked", texts)
	}
	if len(buttons) == 0 || buttons[0].Kind != "code" {
		t.Errorf("after the ID number, buttons %+v; want the code button first", buttons)
	}
	code := codeOf()
	if code.phone != "" && code.phone != demoPhone {
		t.Errorf("the code went to %s, not the phone on record", code.phone)
	}
	texts, buttons = cc.say(code.code)
	var records bool
	for _, b := range buttons {
		records = records || b.Data == "records:"
	}
	if !records {
		t.Fatalf("after the code: %q %+v; want verified, with the records buttons", texts, buttons)
	}
	texts, _ = cc.press("records:")
	out := strings.Join(texts, "")
	if !strings.Contains(out, demoMasked) || strings.Contains(out, demoID) || strings.Contains(out, demoPhone) {
		t.Errorf("records: %q; want the ID number masked and no phone", out)
	}
	return out
}

// serve with WEB_CHAT=on and no Telegram token serves the web chat alone;
// a code goes through SMS_WEBHOOK_URL, signed, to the phone on record.
func TestServeWebChatAlone(t *testing.T) {
	gw := newSMSGateway(t)
	logs, stop := startServe(t, map[string]string{
		"WEB_CHAT": "on", "LISTEN_ADDR": "127.0.0.1:0",
		"SMS_WEBHOOK_URL": gw.url, "SMS_WEBHOOK_SECRET": gw.secret,
	})
	base := "http://" + listenAddr(t, logs)
	if !strings.Contains(logs.String(), `"mode":"web"`) {
		t.Errorf("serve did not say it serves the web chat alone:\n%s", logs.String())
	}
	if got := get(t, base+"/livez"); !strings.Contains(got, "ok") {
		t.Errorf("/livez = %q", got)
	}
	if page := get(t, base+"/"); !strings.Contains(page, "社保医保助手") {
		t.Errorf("GET / is not the chat page: %.200s", page)
	}
	cc := dialChat(t, base)
	texts, _ := cc.say("医保断缴了还能补吗")
	if !strings.Contains(strings.Join(texts, ""), "{cite: 《") {
		t.Errorf("the answer carries no citation: %q", texts)
	}
	verifyByCode(t, cc, func() smsCode { return gw.next(t) })
	if err := stop(); err != nil {
		t.Errorf("serve returned %v", err)
	}
	assertNoPersonalData(t, logs.String())
}

// shebao web runs on the embedded defaults and prints the address and the
// demo codes, marked DEMO.
func TestWebCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out, logs := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"web"}, env(map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}), strings.NewReader(""), out, logs)
	}()
	addr := waitFor(t, out, regexp.MustCompile(`open (http://127\.0\.0\.1:\d+/)`))
	cc := dialChat(t, strings.TrimSuffix(addr, "/"))
	demo := regexp.MustCompile(`DEMO SMS \(not sent; demo records only\) to 139\*\*\*\*0033: code (\d{6})`)
	verifyByCode(t, cc, func() smsCode { return smsCode{code: waitFor(t, out, demo)} })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("web returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("web did not return after cancel")
	}
	if strings.Contains(out.String(), demoPhone) {
		t.Errorf("the terminal shows the full phone: %s", out.String())
	}
	assertNoPersonalData(t, logs.String())
}

// waitFor waits for re in what w holds and returns its first group.
func waitFor(t *testing.T, w *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(w.String()); m != nil {
			return m[1]
		}
		time.Sleep(10 * time.Millisecond) // polling output in a test, not logic
	}
	t.Fatalf("no %s in:\n%s", re, w.String())
	return ""
}

func TestWebConfig(t *testing.T) {
	c, err := loadConfig(env(map[string]string{
		"WEB_CHAT": "on", "WEB_ORIGINS": "https://YBJ.example.gov.cn:443, http://localhost:3000",
		"WEB_TRUST_PROXY": "10.0.0.0/8 192.168.1.2", "WEB_COOKIE_SECURE": "on", "WEB_MAX_CONNS": "8000",
	}), true)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if !c.WebChat || !c.WebCookieSecure || c.WebMaxConns != 8000 || len(c.WebTrustProxy) != 2 ||
		strings.Join(c.WebOrigins, " ") != "https://ybj.example.gov.cn http://localhost:3000" {
		t.Errorf("config %+v", c)
	}
	if c.MaxConns != 8000+defaultMaxConns {
		t.Errorf("LISTEN_MAX_CONNS default with the web chat: %d, want room for it and the usual %d", c.MaxConns, defaultMaxConns)
	}
	for _, bad := range []map[string]string{
		{"WEB_CHAT": "maybe"},
		{"WEB_CHAT": "on", "WEB_ORIGINS": "ybj.example.gov.cn"},
		{"WEB_CHAT": "on", "WEB_ORIGINS": "https://*.example.gov.cn"},
		{"WEB_CHAT": "on", "WEB_ORIGINS": "https://example.gov.cn/chat"},
		{"WEB_CHAT": "on", "WEB_TRUST_PROXY": "proxy.internal"},
		{"WEB_CHAT": "on", "WEB_MAX_CONNS": "0"},
		{"WEB_CHAT": "on", "WEB_MAX_CONNS": "5000", "LISTEN_MAX_CONNS": "4000"},
		{"WEB_CHAT": "on", "WEBHOOK_URL": "https://bot.example/hook", "WEBHOOK_SECRET": strings.Repeat("s", 20)},
		{}, // serve needs Telegram or the web chat
	} {
		if _, err := loadConfig(env(bad), true); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// The per-address limit on SMS codes counts the web chat's client address:
// the peer's, or what a trusted proxy (WEB_TRUST_PROXY) says in
// X-Forwarded-For, and never X-Forwarded-For from anyone else. Twenty
// codes a day are free per address; a new session (a cleared cookie) does
// not reset it.
func TestWebSMSLimitPerAddress(t *testing.T) {
	limited := "验证码发送太频繁"
	ids := madeUpIDs(t, 3*22)
	askCode := func(base, xff string) string {
		t.Helper()
		var h http.Header
		if xff != "" {
			h = http.Header{"X-Forwarded-For": {xff}}
		}
		cc := dialChatWith(t, base, h)
		defer cc.c.CloseNow()
		cc.say("/verify")
		id := ids[0]
		ids = ids[1:]
		texts, _ := cc.say(id)
		return strings.Join(texts, "")
	}
	for _, tc := range []struct {
		name, trust string
		// xff for the first 20 sessions, the 21st, and one from elsewhere;
		// elsewhereOK: whether that one gets a code.
		xff, again, elsewhere string
		elsewhereOK           bool
	}{
		{"behind a trusted proxy", "127.0.0.1", "198.51.100.7", "198.51.100.7", "198.51.100.8", true},
		{"a header from an untrusted peer", "10.0.0.0/8", "198.51.100.7", "198.51.100.9", "203.0.113.1", false},
		{"no proxy trusted", "", "", "", "198.51.100.8", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, stop := startServe(t, map[string]string{
				"WEB_CHAT": "on", "LISTEN_ADDR": "127.0.0.1:0", "WEB_TRUST_PROXY": tc.trust,
			})
			base := "http://" + listenAddr(t, logs)
			for i := range 20 {
				xff := tc.xff
				if tc.trust != "127.0.0.1" {
					xff = fmt.Sprintf("198.51.100.%d", 10+i) // believed by no one
				}
				if got := askCode(base, xff); !strings.Contains(got, "验证码已通过短信发到") {
					t.Fatalf("code %d: %q; want it sent", i+1, got)
				}
			}
			if got := askCode(base, tc.again); !strings.Contains(got, limited) {
				t.Errorf("the 21st code from one address: %q; want the limit", got)
			}
			got := askCode(base, tc.elsewhere)
			if sent := strings.Contains(got, "验证码已通过短信发到"); sent != tc.elsewhereOK || sent == strings.Contains(got, limited) {
				t.Errorf("a code asked with X-Forwarded-For %s: %q; want sent %v", tc.elsewhere, got, tc.elsewhereOK)
			}
			if err := stop(); err != nil {
				t.Errorf("serve returned %v", err)
			}
		})
	}
}

// madeUpIDs are valid ID numbers that are on no record.
func madeUpIDs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for i := 0; len(out) < n; i++ {
		base := fmt.Sprintf("110101199001%02d%03d", 1+i%28, 100+i)
		for _, last := range "0123456789X" {
			if id, err := records.CheckID(base + string(last)); err == nil && id != demoID {
				out = append(out, id)
				break
			}
		}
	}
	return out
}
