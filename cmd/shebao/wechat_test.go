package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
	"github.com/shebao/shebao/bot/wechat/wechattest"
)

const (
	wxAppID  = "wx0123456789abcdef"
	wxSecret = "wx-app-secret-0123456789abcdef"
	wxToken  = "wxServerToken42"
)

func TestWeChatConfig(t *testing.T) {
	aes := wechattest.NewAESKey()
	c, err := loadConfig(env(map[string]string{
		"WECHAT_APP_ID": wxAppID, "WECHAT_APP_SECRET": wxSecret, "WECHAT_TOKEN": wxToken, "WECHAT_AES_KEY": aes,
		"WECHAT_REMIND_TEMPLATE": "tmpl-1",
	}), true)
	if err != nil {
		t.Fatalf("WeChat alone: %v", err)
	}
	if !c.WeChat.on() || c.WeChat.Path != "/wechat" || c.WeChat.APIURL != "https://api.weixin.qq.com" || c.WeChat.AESKey != aes {
		t.Errorf("config: %+v", c.WeChat)
	}
	if !c.caps(bot.ChannelWeChat).Push || c.caps(bot.ChannelWeb).Push || !c.caps(bot.ChannelTelegram).Push {
		t.Error("with a template WeChat can push, and nothing else changes")
	}
	c, _ = loadConfig(env(map[string]string{"WECHAT_APP_ID": wxAppID, "WECHAT_APP_SECRET": wxSecret, "WECHAT_TOKEN": wxToken}), true)
	if c.caps(bot.ChannelWeChat).Push {
		t.Error("without a template WeChat cannot push")
	}

	// Every mistake at once, and no secret in the message.
	var out bytes.Buffer
	err = run(context.Background(), []string{"serve"}, env(map[string]string{
		"WECHAT_APP_SECRET": wxSecret, "WECHAT_TOKEN": "bad token!", "WECHAT_AES_KEY": "short-secret-aes",
		"WECHAT_PATH": "/livez", "WECHAT_API_URL": "ftp://x", "LOG_LEVEL": "loud",
	}), strings.NewReader(""), &out, &out)
	if err == nil {
		t.Fatal("bad WeChat config accepted")
	}
	for _, want := range []string{"WECHAT_APP_ID", "WECHAT_TOKEN:", "WECHAT_AES_KEY", "WECHAT_PATH", "WECHAT_API_URL", "LOG_LEVEL", "TELEGRAM_BOT_TOKEN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	for _, secret := range []string{wxSecret, "bad token!", "short-secret-aes"} {
		if strings.Contains(err.Error()+out.String(), secret) {
			t.Errorf("a secret was printed: %q", secret)
		}
	}
	if _, err := loadConfig(env(map[string]string{"WECHAT_REMIND_TEMPLATE": "t"}), false); err == nil || !strings.Contains(err.Error(), "WECHAT_REMIND_TEMPLATE") {
		t.Errorf("a WECHAT_* setting without the account: %v", err)
	}
}

// newWeChatFake is the WeChat side for serve: it POSTs to addr.
func newWeChatFake(t *testing.T, aes string) *wechattest.Fake {
	f := wechattest.New(wechattest.Config{AppID: wxAppID, AppSecret: wxSecret, Token: wxToken, AESKey: aes})
	t.Cleanup(f.Close)
	return f
}

// Serve runs the Official Account alone (no Telegram token), in safe mode,
// against a fake WeChat at WECHAT_API_URL: the console's URL check, a
// follow's welcome, a cited answer, a menu click; the logs hold no message
// text and no secret.
func TestServeWeChatAlone(t *testing.T) {
	aes := wechattest.NewAESKey()
	fake := newWeChatFake(t, aes)
	logs, stop := startServe(t, map[string]string{
		"WECHAT_APP_ID": wxAppID, "WECHAT_APP_SECRET": wxSecret, "WECHAT_TOKEN": wxToken, "WECHAT_AES_KEY": aes,
		"WECHAT_API_URL": fake.URL(), "LISTEN_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug",
	})
	addr := listenAddr(t, logs)
	fake.SetServer("http://" + addr + "/wechat")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // a parked chat is tried again after 30 s
	defer cancel()
	if st, body, err := fake.Verify(ctx, false); err != nil || st != http.StatusOK || body == "" {
		t.Fatalf("URL check: %d %q %v", st, body, err)
	}
	if d, err := fake.Event(ctx, "oServe1", "subscribe", ""); err != nil || d.Body != "success" {
		t.Fatalf("follow: %+v %v", d, err)
	}
	welcome, err := fake.WaitTexts(ctx, "oServe1", 1)
	if err != nil || !strings.Contains(welcome[0], "社保医保小助手") {
		t.Fatalf("welcome: %q %v", welcome, err)
	}
	if d, err := fake.Text(ctx, "oServe1", "医保断缴了还能补吗？"); err != nil || d.Body != "success" {
		t.Fatalf("question: %+v %v", d, err)
	}
	got, err := fake.WaitTexts(ctx, "oServe1", 2)
	if err != nil || !strings.Contains(got[1], "第三十一条") {
		t.Fatalf("answer: %q %v", got, err)
	}
	if _, err := fake.Event(ctx, "oServe1", "CLICK", "cmd:help"); err != nil {
		t.Fatal(err)
	}
	got, err = fake.WaitTexts(ctx, "oServe1", 3)
	if err != nil || !strings.Contains(got[2], "/records") {
		t.Fatalf("menu click 政策问答 (/help): %q %v", got, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	l := logs.String()
	for _, leak := range []string{"医保断缴", "补缴", wxSecret, aes, "<xml>", "CDATA"} {
		if strings.Contains(l, leak) {
			t.Errorf("logs contain %q", leak)
		}
	}
	assertNoPersonalData(t, l)
}

// Telegram and WeChat in one process, on one (embedded) Redis: each
// channel answers its own users.
func TestServeTelegramAndWeChat(t *testing.T) {
	tg := telegramtest.New(testToken)
	defer tg.Close()
	fake := newWeChatFake(t, "")
	logs, stop := startServe(t, map[string]string{
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": tg.URL,
		"WECHAT_APP_ID": wxAppID, "WECHAT_APP_SECRET": wxSecret, "WECHAT_TOKEN": wxToken, "WECHAT_PATH": "/wx/callback",
		"WECHAT_API_URL": fake.URL(), "LISTEN_ADDR": "127.0.0.1:0",
	})
	defer stop()
	fake.SetServer("http://" + listenAddr(t, logs) + "/wx/callback")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // a parked chat is tried again after 30 s
	defer cancel()
	tg.PushText(10, "查社保缴费记录要钱吗")
	if _, err := fake.Text(ctx, "oBoth", "查社保缴费记录要钱吗"); err != nil {
		t.Fatal(err)
	}
	sent, err := tg.WaitSent(ctx, 1)
	if err != nil || !strings.Contains(sent[0].Text, "第七十四条") {
		t.Fatalf("Telegram: %+v %v", sent, err)
	}
	got, err := fake.WaitTexts(ctx, "oBoth", 1)
	if err != nil || !strings.Contains(got[0], "第七十四条") || strings.Contains(got[0], "<b>") {
		t.Fatalf("WeChat: %q %v", got, err)
	}
}

// `shebao wechat menu` sets 政策问答, 我的记录, 提醒设置 as CLICK buttons
// whose keys the adapter maps onto /help, /records and /remind.
func TestWeChatMenuCommand(t *testing.T) {
	fake := newWeChatFake(t, "")
	var out bytes.Buffer
	err := run(context.Background(), []string{"wechat", "menu"}, env(map[string]string{
		"WECHAT_APP_ID": wxAppID, "WECHAT_APP_SECRET": wxSecret, "WECHAT_TOKEN": wxToken, "WECHAT_API_URL": fake.URL(),
	}), strings.NewReader(""), &out, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var menu struct {
		Button []struct{ Type, Name, Key string }
	}
	if err := json.Unmarshal(fake.Menu(), &menu); err != nil {
		t.Fatal(err)
	}
	want := []string{"政策问答 click cmd:help", "我的记录 click cmd:records", "提醒设置 click cmd:remind"}
	if len(menu.Button) != len(want) {
		t.Fatalf("menu %s", fake.Menu())
	}
	for i, b := range menu.Button {
		if got := b.Name + " " + b.Type + " " + b.Key; got != want[i] {
			t.Errorf("button %d: %q, want %q", i, got, want[i])
		}
	}
	if strings.Contains(out.String(), wxSecret) {
		t.Error("the AppSecret was printed")
	}
	if err := run(context.Background(), []string{"wechat", "menu"}, env(nil), strings.NewReader(""), &out, &out); err == nil {
		t.Error("menu without WECHAT_* succeeded")
	}
}

// The web chat and WeChat on one listener: the page's "GET /" and
// WeChat's GET (URL check) and POST on its path share the mux.
func TestServeWebChatAndWeChat(t *testing.T) {
	fake := newWeChatFake(t, "")
	logs, stop := startServe(t, map[string]string{
		"WEB_CHAT":      "on",
		"WECHAT_APP_ID": wxAppID, "WECHAT_APP_SECRET": wxSecret, "WECHAT_TOKEN": wxToken,
		"WECHAT_API_URL": fake.URL(), "LISTEN_ADDR": "127.0.0.1:0",
	})
	defer stop()
	addr := listenAddr(t, logs)
	fake.SetServer("http://" + addr + "/wechat")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // a parked chat is tried again after 30 s
	defer cancel()
	if st, body, err := fake.Verify(ctx, false); err != nil || st != http.StatusOK || body == "" {
		t.Fatalf("WeChat URL check: %d %q %v", st, body, err)
	}
	if _, err := fake.Text(ctx, "oWeb", "查社保缴费记录要钱吗"); err != nil {
		t.Fatal(err)
	}
	if got, err := fake.WaitTexts(ctx, "oWeb", 1); err != nil || !strings.Contains(got[0], "第七十四条") {
		t.Fatalf("WeChat: %q %v", got, err)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "<html") {
		t.Fatalf("web chat page: %d %.200s", resp.StatusCode, page)
	}
}

// The "listening" line names every channel serve runs: an operator reading
// it must not take a WeChat-only replica for a web chat.
func TestServeModeNamesChannels(t *testing.T) {
	wx := wechatConfig{AppID: wxAppID}
	for _, tc := range []struct {
		c    config
		want string
	}{
		{config{WebChat: true}, "web"},
		{config{WeChat: wx}, "wechat"},
		{config{WebChat: true, WeChat: wx}, "web+wechat"},
		{config{Token: "t"}, "polling"},
		{config{Token: "t", WebhookURL: "https://x/"}, "webhook"},
		{config{Token: "t", WebChat: true}, "polling+web"},
		{config{Token: "t", WeChat: wx}, "polling+wechat"},
		{config{Token: "t", WebhookURL: "https://x/", WebChat: true, WeChat: wx}, "webhook+web+wechat"},
	} {
		if got := mode(tc.c); got != tc.want {
			t.Errorf("mode(token %t, webhook %t, web %t, wechat %t) = %q, want %q",
				tc.c.Token != "", tc.c.WebhookURL != "", tc.c.WebChat, tc.c.WeChat.on(), got, tc.want)
		}
	}
}
