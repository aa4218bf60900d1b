package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

const testToken = "123456:TEST-token"

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
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

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// startServe runs `shebao serve` in the background and returns a function
// that cancels it and returns its error.
func startServe(t *testing.T, vars map[string]string) (logs *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env(vars), strings.NewReader(""), logs, logs) }()
	return logs, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not return after cancel")
			return nil
		}
	}
}

var addrRE = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)

// listenAddr waits for the "listening" log line and returns the address.
func listenAddr(t *testing.T, logs *syncBuffer) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		time.Sleep(10 * time.Millisecond) // polling a log in a test, not logic
	}
	t.Fatalf("serve never logged its address; logs:\n%s", logs.String())
	return ""
}

func TestServePolling(t *testing.T) {
	fake := telegramtest.New(testToken)
	defer fake.Close()
	logs, stop := startServe(t, map[string]string{
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL, "LISTEN_ADDR": "127.0.0.1:0",
		"LOG_LEVEL": "debug", "DEBUG_ADDR": "127.0.0.1:0",
	})
	addr := listenAddr(t, logs)
	debug := debugAddr(t, logs)

	fake.PushText(10, "/start")
	help := telegramtest.TextUpdate(20, "/help")
	help.Message.From.LanguageCode = "en"
	fake.Push(help)
	fake.PushText(30, "查社保缴费记录要钱吗")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sent, err := fake.WaitSent(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	byChat := map[int64]string{}
	for _, m := range sent {
		byChat[m.ChatID] += m.Text
		if m.ParseMode != "HTML" {
			t.Errorf("chat %d: parse mode %q, want HTML", m.ChatID, m.ParseMode)
		}
	}
	if !strings.Contains(byChat[10], "社保医保小助手") {
		t.Errorf("/start in Chinese: got %q", byChat[10])
	}
	if !strings.Contains(byChat[20], "/verify") || !strings.Contains(byChat[20], "Commands") {
		t.Errorf("/help in English: got %q", byChat[20])
	}
	if !strings.Contains(byChat[30], "免费") || !strings.Contains(byChat[30], "第七十四条") {
		t.Errorf("FAQ answer with citation: got %q", byChat[30])
	}
	// The profile: the menu in private chats only, the descriptions in
	// zh (the default) and en. The last short description is the last
	// call; everything before it has been answered. (The profile is set
	// beside polling, not before it: under load the replies can come
	// first.)
	if _, err := fake.WaitCalls(ctx, "setMyShortDescription", 3); err != nil {
		t.Error(err)
	}
	if n := len(fake.Calls("setMyCommands")); n < 2 {
		t.Errorf("setMyCommands called %d times, want zh and en", n)
	}
	zhDesc, enDesc := bot.Descriptions()
	if fake.Description("") != zhDesc.Text || fake.Description("en") != enDesc.Text || fake.ShortDescription("zh") != zhDesc.Short {
		t.Errorf("descriptions: %q / %q, want zh as the default and en", fake.Description(""), fake.Description("en"))
	}
	if len(fake.BotCommands("all_private_chats", "en")) == 0 || len(fake.BotCommands("default", "")) != 0 {
		t.Errorf("command menus: private %v, default %v; want private chats only",
			fake.BotCommands("all_private_chats", "en"), fake.BotCommands("default", ""))
	}

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", resp.StatusCode)
	}
	body := get(t, "http://"+debug+"/metrics")
	if !strings.Contains(body, `shebao_updates_total{kind="command",outcome="handled"}`) {
		t.Errorf("/metrics lacks handled command updates:\n%.2000s", body)
	}
	for _, want := range []string{`shebao_telegram_api_seconds_count{method="sendMessage"}`, "shebao_telegram_breaker_open 0", "shebao_telegram_update_backlog "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Two users verify as two different people over Telegram; each sees
	// only their own record, and the logs (even at debug) hold no
	// unmasked ID number or phone.
	verify := func(chat int64, id, phone string) {
		fake.PushText(chat, "/verify")
		fake.PushText(chat, id)
		fake.PushContact(chat, phone, chat)
		fake.PushText(chat, "/balance")
		fake.PushText(chat, "/backpay")
	}
	verify(50, "350102198501150037", "+86 139 0000 0033")
	verify(60, "210202199005080040", "13900000044")
	// Chat 70 tries chat 50's ID with its own phone: refused.
	fake.PushText(70, "/verify")
	fake.PushText(70, "350102198501150037")
	fake.PushContact(70, "13900000044", 70)
	before := len(sent)
	byChat = map[int64]string{}
	for !strings.Contains(byChat[70], "不匹配") || !strings.Contains(byChat[50], "怎么补缴") || !strings.Contains(byChat[60], "怎么补缴") {
		if sent, err = fake.WaitSent(ctx, len(sent)+1); err != nil {
			t.Fatalf("%v; got so far: %v", err, byChat)
		}
		byChat = map[int64]string{}
		for _, m := range sent[before:] {
			byChat[m.ChatID] += m.Text + "\n"
		}
	}
	if !strings.Contains(byChat[50], "350102********0037") || !strings.Contains(byChat[50], "¥") {
		t.Errorf("chat 50 did not get its own balance:\n%s", byChat[50])
	}
	if !strings.Contains(byChat[60], "210202********0040") {
		t.Errorf("chat 60 did not get its own record:\n%s", byChat[60])
	}
	for chat, other := range map[int64]string{50: "210202", 60: "350102", 70: "¥"} {
		if strings.Contains(byChat[chat], other) {
			t.Errorf("chat %d saw someone else's data (%s):\n%s", chat, other, byChat[chat])
		}
	}

	if err := stop(); err != nil {
		t.Fatalf("serve returned %v after cancel, want nil", err)
	}
	if got := fake.Confirmed(); got <= 0 || fake.Pending() != 0 {
		t.Errorf("after shutdown: confirmed offset %d, %d updates pending; want all confirmed", got, fake.Pending())
	}
	assertNoPersonalData(t, logs.String())
}

func TestServeWebhook(t *testing.T) {
	fake := telegramtest.New(testToken)
	defer fake.Close()
	const secret = "s3cret-s3cret-s3cret"
	logs, stop := startServe(t, map[string]string{
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL, "LISTEN_ADDR": "127.0.0.1:0",
		"WEBHOOK_URL": "https://bot.example.com/tg/hook", "WEBHOOK_SECRET": secret,
	})
	addr := listenAddr(t, logs)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	calls, err := fake.WaitCalls(ctx, "setWebhook", 1)
	if err != nil {
		t.Fatal(err)
	}
	if calls[0].Params["secret_token"] != secret || calls[0].Params["url"] != "https://bot.example.com/tg/hook" {
		t.Errorf("setWebhook params = %v", calls[0].Params)
	}

	post := func(secretHeader string, u any) int {
		b, _ := json.Marshal(u)
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/tg/hook", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if secretHeader != "" {
			req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secretHeader)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	u := telegramtest.TextUpdate(40, "/start")
	u.ID = 5001
	if code := post("wrong", u); code != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d, want 401", code)
	}
	if code := post(secret, u); code != http.StatusOK {
		t.Fatalf("right secret: %d, want 200", code)
	}
	// The 200 came after the reply was sent.
	if n := len(fake.Sent()); n != 1 {
		t.Fatalf("after the 200, %d messages sent, want 1", n)
	}
	// Telegram redelivers the same update: not answered twice.
	if code := post(secret, u); code != http.StatusOK {
		t.Fatalf("redelivery: %d, want 200", code)
	}
	en := telegramtest.TextUpdate(41, "/start")
	en.Message.From.LanguageCode = "en"
	en.ID = 5002
	post(secret, en)
	sent := fake.Sent()
	if len(sent) != 2 {
		t.Fatalf("sent %d messages, want 2 (one per distinct update): %+v", len(sent), sent)
	}
	if !strings.Contains(sent[0].Text, "您好") || !strings.Contains(sent[1].Text, "Hello") {
		t.Errorf("replies: %q / %q", sent[0].Text, sent[1].Text)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v after cancel, want nil", err)
	}
}

func TestConfigErrorsReportedTogether(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve"}, env(map[string]string{
		"WEBHOOK_URL": "ftp://x", "LOG_LEVEL": "loud", "OPENAI_API_KEY": "sk-secret-value", "OPENAI_MODEL": "m",
	}), strings.NewReader(""), &out, &out)
	if err == nil {
		t.Fatal("serve with bad config returned nil")
	}
	for _, want := range []string{"TELEGRAM_BOT_TOKEN", "WEBHOOK_URL", "LOG_LEVEL", "OPENAI_BASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error()+out.String(), "sk-secret-value") {
		t.Error("a secret was printed")
	}
}

func TestChat(t *testing.T) {
	in := strings.NewReader("/start\n2\n/verify\n350102198501150037\n/contact +86 139 0000 0033\n/balance\n")
	var out, errs syncBuffer
	if err := run(context.Background(), []string{"chat"}, env(nil), in, &out, &errs); err != nil {
		t.Fatalf("chat: %v\n%s", err, errs.String())
	}
	got := out.String()
	for _, want := range []string{
		"[1] 🔐 验证身份", "[2] English", // buttons are numbered
		"Hello! I help with questions", // ... and chosen by number: the welcome again, in English
		"350102********0037",           // masked
		"Verified",
		"Medical personal-account balance",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("chat output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "<b>") || strings.Contains(got, "350102198501150037\n<") {
		t.Errorf("chat output shows HTML or the full ID:\n%s", got)
	}
}

func TestAskJSON(t *testing.T) {
	var out, errs syncBuffer
	if err := run(context.Background(), []string{"ask", "--json", "社会保险法第74条"}, env(nil), nil, &out, &errs); err != nil {
		t.Fatalf("ask: %v\n%s", err, errs.String())
	}
	var got askJSON
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("ask --json printed invalid JSON: %v\n%s", err, out.String())
	}
	if len(got.Citations) != 1 || got.Citations[0].Law != "社会保险法" || got.Citations[0].Article != 74 || got.Abstained {
		t.Errorf("ask --json = %+v", got)
	}
	out = syncBuffer{}
	if err := run(context.Background(), []string{"ask", "--json", "--lang", "en", "Tell me a joke"}, env(nil), nil, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil || !got.Abstained || len(got.Citations) != 0 {
		t.Errorf("out of scope: %+v (err %v)", got, err)
	}
}

var personalRE = regexp.MustCompile(`\d{17}[\dXx]|1[3-9]\d{9}`)

// assertNoPersonalData fails when logs contain an unmasked ID number or
// mobile number.
func assertNoPersonalData(t *testing.T, logs string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		if m := personalRE.FindString(sc.Text()); m != "" {
			t.Errorf("log line contains personal data %q: %s", m, sc.Text())
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// An LLM that invents a citation is overruled: the user sees the
// retrieval answer and its real citations, and the LLM never sees the
// ID number typed into the question.
func TestServeLLMNeverShowsInventedCitation(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": "x", "object": "chat.completion", "model": "m",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]any{
				"role":    "assistant",
				"content": `{"answer": "根据《社会保险法》第九百九十九条，查询要收费100元。", "citations": [{"law": "社会保险法", "article": 999}], "quotes": []}`,
			}}},
		})
	}))
	defer llm.Close()
	fake := telegramtest.New(testToken)
	defer fake.Close()
	_, stop := startServe(t, map[string]string{
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL, "LISTEN_ADDR": "127.0.0.1:0",
		"OPENAI_BASE_URL": llm.URL + "/v1", "OPENAI_MODEL": "m", "OPENAI_API_KEY": "k",
	})
	fake.PushText(10, "我的身份证号110105198803120014，查社保缴费记录要钱吗")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sent, err := fake.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := sent[0].Text
	if strings.Contains(got, "九百九十九") || strings.Contains(got, "100元") {
		t.Errorf("the invented citation reached the user:\n%s", got)
	}
	if !strings.Contains(got, "免费") || !strings.Contains(got, "第七十四条") {
		t.Errorf("want the retrieval answer with its citation, got:\n%s", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) == 0 {
		t.Fatal("the LLM was never asked")
	}
	for _, b := range bodies {
		if strings.Contains(b, "110105198803120014") || strings.Contains(b, "19880312") {
			t.Errorf("the LLM received the ID number: %s", b)
		}
	}
}

// With DEBUG_ADDR the profiler and /metrics are served there only, so the
// public (webhook) listener exposes neither.
func TestServeDebugListener(t *testing.T) {
	fake := telegramtest.New(testToken)
	defer fake.Close()
	logs, stop := startServe(t, map[string]string{
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL,
		"LISTEN_ADDR": "127.0.0.1:0", "DEBUG_ADDR": "127.0.0.1:0",
	})
	defer stop()
	addr := listenAddr(t, logs)
	var debug string
	for deadline := time.Now().Add(20 * time.Second); debug == "" && time.Now().Before(deadline); {
		if m := regexp.MustCompile(`"msg":"debug listener","addr":"([^"]+)"`).FindStringSubmatch(logs.String()); m != nil {
			debug = m[1]
		}
		time.Sleep(10 * time.Millisecond) // polling a log in a test, not logic
	}
	if debug == "" {
		t.Fatalf("no debug listener logged:\n%s", logs.String())
	}
	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for url, want := range map[string]int{
		"http://" + debug + "/metrics":      http.StatusOK,
		"http://" + debug + "/debug/pprof/": http.StatusOK,
		"http://" + addr + "/metrics":       http.StatusNotFound,
		"http://" + addr + "/debug/pprof/":  http.StatusNotFound,
		"http://" + addr + "/healthz":       http.StatusOK,
	} {
		if got := status(url); got != want {
			t.Errorf("GET %s = %d, want %d", url, got, want)
		}
	}
	if body := get(t, "http://"+debug+"/metrics"); !strings.Contains(body, "shebao_") {
		t.Errorf("debug /metrics has no shebao metrics:\n%.1000s", body)
	}
}
