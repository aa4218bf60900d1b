package main

import (
	"context"
	"encoding/json"

	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// TestBrowser drives Debian's chromium, headless, through the web chat of
// `shebao serve` (WEB_CHAT=on, the demo records, codes through a fake SMS
// gateway) as a person would: ask a question and see the cited answer, open
// the article, press a button, verify a demo person with the texted code,
// see the masked records. It saves a screenshot to $SHEBAO_SCREENSHOT (or
// the test's temporary folder). Without a browser it skips;
// SHEBAO_REQUIRE_BROWSER=1 (CI) makes that a failure.
func TestBrowser(t *testing.T) {
	browser := findBrowser()
	if browser == "" {
		msg := "no chromium on PATH: apt-get install chromium fonts-wqy-microhei to run the browser test"
		if os.Getenv("SHEBAO_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (SHEBAO_REQUIRE_BROWSER=1)")
		}
		t.Skip(msg)
	}
	gw := newSMSGateway(t)
	logs, stop := startServe(t, map[string]string{
		"WEB_CHAT": "on", "LISTEN_ADDR": "127.0.0.1:0",
		"SMS_WEBHOOK_URL": gw.url, "SMS_WEBHOOK_SECRET": gw.secret,
	})
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve returned %v", err)
		}
		assertNoPersonalData(t, logs.String())
	}()
	base := "http://" + listenAddr(t, logs)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("lang", "zh-CN"),
		chromedp.Flag("accept-lang", "zh-CN,zh"),
		chromedp.WindowSize(390, 844),
	)...)
	defer cancelAlloc()
	bctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()

	// Everything the page writes to the console: an exception or a CSP
	// refusal is a failure.
	var mu sync.Mutex
	var console []string
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				console = append(console, m.String())
				mu.Unlock()
			}
		}
	}()

	opened := false // the page has loaded: there is something to settle
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		// Wait until no answer is pending (the typing indicator is gone), so
		// that nothing moves under a click.
		settled := chromedp.Poll[bool](`!document.getElementById('typing')?.classList.contains('on')`)
		if opened {
			if _, err := chromedp.Run(bctx, settled); err != nil {
				t.Fatalf("%s: the page never settled: %v", what, err)
			}
		}
		opened = true
		if err := chromedp.Do(bctx, steps...); err != nil {
			shot(t, bctx, "failed")
			t.Fatalf("%s: %v", what, err)
		}
	}
	// botSays waits until a bot message holds all of subs.
	botSays := func(what string, subs ...string) {
		t.Helper()
		var conds []string
		for _, s := range subs {
			conds = append(conds, "li.textContent.includes("+jsString(s)+")")
		}
		expr := "[...document.querySelectorAll('#log li.bot')].some(li => " + strings.Join(conds, " && ") + ")"
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](expr)); err != nil {
			shot(t, bctx, "failed")
			t.Fatalf("%s: no bot message with %q: %v", what, subs, err)
		}
	}
	send := func(text string) {
		t.Helper()
		do("type "+text, chromedp.SendKeys(chromedp.ID("input"), text))
		// Enter as a keyboard sends it: one keydown that makes text, which
		// the page's handler cancels. (SendKeys's "\r" adds a separate
		// char event that no real key press makes.)
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
			p := input.DispatchKeyEventParams{Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
			if typ == input.DispatchKeyEventTypeKeyDown {
				p.Text = "\r"
			}
			if _, err := chromedp.Call(bctx, input.DispatchKeyEvent, p); err != nil {
				t.Fatalf("press Enter: %v", err)
			}
		}
		// Sent: the input is empty again, ready for the next message.
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.getElementById('input').value === ''`)); err != nil {
			t.Fatalf("after Enter the input still holds text: %v", err)
		}
	}

	// Reduced motion: the log jumps to a new message instead of scrolling
	// smoothly, so a click lands where the button is (a person waits for
	// the scroll; a test would click mid-way).
	if _, err := chromedp.Call(bctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}},
	}); err != nil {
		t.Fatal(err)
	}
	do("open the page", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1)), chromedp.Navigate(base+"/"))
	botSays("the greeting", "您好")
	lang, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.documentElement.lang`))
	if err != nil || lang != "zh-CN" {
		t.Errorf("page language %q, %v; want zh-CN", lang, err)
	}

	// Verify a demo person: the greeting's button, the ID number, the code
	// the gateway got, the code button, the code.
	do("press the verify button", chromedp.Click(`//li[contains(@class,"bot")]//button[contains(., "验证身份")]`, chromedp.NodeVisible))
	botSays("the ID number prompt", "18位居民身份证号码")
	send(demoID)
	botSays("the code prompt", demoMasked, "验证码")
	code := gw.next(t)
	if code.phone != demoPhone {
		t.Errorf("the code went to %s, not the phone on record", code.phone)
	}
	do("press the code button", chromedp.Click(`//button[contains(., "输入验证码")]`, chromedp.NodeVisible))
	mode, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[document.getElementById('input').inputMode, document.getElementById('input').placeholder, document.activeElement.id]`))
	if err != nil || strings.Join(mode, "|") != "numeric|6位验证码|input" {
		t.Errorf("after the code button the input is %q, %v; want numeric, the code placeholder, focused", mode, err)
	}
	send(code.code)
	botSays("verified", "缴费记录")
	do("press the records button", chromedp.Click(`(//button[contains(., "缴费记录")])[last()]`, chromedp.NodeVisible))
	botSays("the records", demoMasked, "缴费记录")
	shown, err := chromedp.Run(bctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#log li.bot')].map(li => li.textContent).join('\n')`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(shown, demoID) || strings.Contains(shown, demoPhone) {
		t.Errorf("the bot's messages show the ID number or the phone in full:\n%s", shown)
	}

	// Ask, and see the cited answer; open the article in place.
	send("医保断缴了还能补吗")
	botSays("the cited answer", "依据")
	do("open the article", chromedp.WaitVisible(chromedp.CSS("#log li.bot:last-of-type details.cite summary")),
		chromedp.Click(chromedp.CSS("#log li.bot:last-of-type details.cite summary"), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#log li.bot:last-of-type details.cite[open] .article p")))
	article, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#log li.bot:last-of-type details.cite[open] .article")))
	if err != nil || len([]rune(strings.TrimSpace(article))) < 20 {
		t.Errorf("the opened article reads %q, %v", article, err)
	}
	st, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[document.getElementById('input').placeholder, document.getElementById('input').inputMode]`))
	if err != nil || strings.Join(st, "|") != "请输入您的问题|" {
		t.Errorf("after sending the code the input is %q, %v; want the question placeholder and no numeric mode", st, err)
	}
	// The question and the top of its answer in view, the article open,
	// for the picture.
	do("scroll", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#log li.user')].pop().scrollIntoView({block: 'start'})`))
	path := shot(t, bctx, "web-chat")
	t.Logf("screenshot: %s", path)

	mu.Lock()
	defer mu.Unlock()
	for _, m := range console {
		t.Errorf("console: %s", m)
	}
}

// findBrowser is Debian's chromium, or another Chrome on PATH.
func findBrowser() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// shot saves a screenshot: to $SHEBAO_SCREENSHOT for the one named
// web-chat, else into the test's folder. It returns the path.
func shot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(t.TempDir(), name+".png")
	if p := os.Getenv("SHEBAO_SCREENSHOT"); p != "" && name == "web-chat" {
		path = p
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("save screenshot: %v", err)
	}
	if name == "failed" {
		t.Logf("screenshot of the failure: %s", path)
	}
	return path
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
