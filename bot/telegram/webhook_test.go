package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

func postUpdate(t *testing.T, e *env, u models.Update, secret string) *httptest.ResponseRecorder {
	t.Helper()
	if u.ID == 0 {
		u.ID = 1
	}
	body, err := json.Marshal(&u)
	if err != nil {
		t.Fatal(err)
	}
	return postBody(t, e, body, secret)
}

func postBody(t *testing.T, e *env, body []byte, secret string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(testCtx(t), http.MethodPost, "/telegram", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
	}
	rec := httptest.NewRecorder()
	e.a.WebhookHandler().ServeHTTP(rec, req)
	return rec
}

func TestWebhookRejectsWrongSecret(t *testing.T) {
	e := newEnv(t, nil)
	for _, secret := range []string{"", "wrong", e.options.WebhookSecret + "x"} {
		rec := postUpdate(t, e, telegramtest.TextUpdate(5, "hello"), secret)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("secret %q: status %d, want 401", secret, rec.Code)
		}
	}
	if got := e.h.messages(); len(got) != 0 {
		t.Errorf("handler called %d times for unauthenticated requests", len(got))
	}
	if got := e.fake.Calls(""); len(got) != 0 {
		t.Errorf("Bot API called: %+v", got)
	}
}

func TestWebhookBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	big := append([]byte(`{"update_id":1,"message":{"text":"`), bytes.Repeat([]byte("a"), maxUpdateBody)...)
	big = append(big, `"}}`...)
	if rec := postBody(t, e, big[:maxUpdateBody+1], e.options.WebhookSecret); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB + 1 body: status %d, want 413", rec.Code)
	}
	if rec := postBody(t, e, []byte(`{"ok":true}`), e.options.WebhookSecret); rec.Code != http.StatusBadRequest {
		t.Errorf("JSON without update_id: status %d, want 400", rec.Code)
	}
	req := httptest.NewRequest(http.MethodGet, "/telegram", nil)
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", e.options.WebhookSecret)
	rec := httptest.NewRecorder()
	e.a.WebhookHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", rec.Code)
	}
	if got := e.h.messages(); len(got) != 0 {
		t.Errorf("handler called %d times", len(got))
	}
}

func TestWebhookAnswers200OnlyAfterReplySent(t *testing.T) {
	e := newEnv(t, nil)
	ctx := testCtx(t)
	release := e.fake.Hold("sendMessage")
	done := make(chan int)
	go func() {
		done <- postUpdate(t, e, telegramtest.TextUpdate(5, "/start"), e.options.WebhookSecret).Code
	}()
	if _, err := e.fake.WaitCalls(ctx, "sendMessage", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		t.Fatalf("webhook answered %d while the reply was still being sent", code)
	default:
	}
	release()
	if code := <-done; code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	if sent := e.fake.Sent(); len(sent) != 1 || sent[0].Text != "echo /start" {
		t.Errorf("sent %+v", sent)
	}
}

// An update Telegram sends that does not decode must still be answered
// 200: anything else makes Telegram redeliver it forever and hold back the
// updates behind it.
func TestWebhookUndecodableUpdateAnswered200(t *testing.T) {
	metrics := &countMetrics{}
	e := newEnv(t, func(o *Options) { o.Metrics = metrics })
	bodies := []string{
		`{"update_id":5,"message":{"message_id":1,"chat":"not an object"}}`,
		`{"update_id":`,
		`not JSON at all`,
	}
	for _, b := range bodies {
		if rec := postBody(t, e, []byte(b), e.options.WebhookSecret); rec.Code != http.StatusOK {
			t.Errorf("%s: status %d, want 200", b, rec.Code)
		}
		if rec := postBody(t, e, []byte(b), "wrong"); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong secret: status %d, want 401", b, rec.Code)
		}
	}
	if got := metrics.get("undecodable/ignored"); got != len(bodies) {
		t.Errorf("counted %d undecodable updates, want %d (metrics %v)", got, len(bodies), metrics.n)
	}
	if got := strings.Count(e.logs.String(), `"level":"WARN","msg":"undecodable update"`); got != len(bodies) {
		t.Errorf("%d warnings logged, want %d: %s", got, len(bodies), e.logs)
	}
	if got := e.h.messages(); len(got) != 0 {
		t.Errorf("handler called %d times", len(got))
	}
}

func TestWebhookDrainAnswers503(t *testing.T) {
	e := newEnv(t, nil)
	e.a.Drain()
	if rec := postUpdate(t, e, telegramtest.TextUpdate(5, "hi"), e.options.WebhookSecret); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d during drain, want 503", rec.Code)
	}
	if got := e.h.messages(); len(got) != 0 {
		t.Errorf("handler called during drain")
	}
}

func TestWebhookRedeliveryAnsweredOnce(t *testing.T) {
	coord := &fakeCoord{handled: map[int64]bool{}}
	metrics := &countMetrics{}
	e := newEnv(t, func(o *Options) { o.Coordinator = coord; o.Metrics = metrics })
	u := telegramtest.CallbackUpdate(5, "menu")
	u.ID = 77
	for i := range 2 {
		if rec := postUpdate(t, e, u, e.options.WebhookSecret); rec.Code != http.StatusOK {
			t.Fatalf("delivery %d: status %d", i, rec.Code)
		}
	}
	if got := len(e.fake.Sent()); got != 1 {
		t.Errorf("answered %d times, want once", got)
	}
	// The spinner must stop on the redelivered press too.
	if got := len(e.fake.Calls("answerCallbackQuery")); got != 2 {
		t.Errorf("%d answerCallbackQuery calls, want 2", got)
	}
	if metrics.get("callback/handled") != 1 || metrics.get("callback/duplicate") != 1 {
		t.Errorf("metrics %v, want one handled and one duplicate callback", metrics.n)
	}
}

func TestWebhookCoordinatorDownStillAnswers(t *testing.T) {
	coord := &fakeCoord{err: errors.New("redis: connection refused")}
	e := newEnv(t, func(o *Options) { o.Coordinator = coord })
	if rec := postUpdate(t, e, telegramtest.TextUpdate(5, "hi"), e.options.WebhookSecret); rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if got := len(e.fake.Sent()); got != 1 {
		t.Errorf("sent %d, want 1", got)
	}
	if !strings.Contains(e.logs.String(), `"level":"WARN","msg":"coordinator unavailable`) {
		t.Errorf("no warning logged: %s", e.logs)
	}
}

func TestRegisterWebhook(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.a.RegisterWebhook(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	calls := e.fake.Calls("setWebhook")
	if len(calls) != 1 {
		t.Fatalf("%d setWebhook calls", len(calls))
	}
	p := calls[0].Params
	if p["url"] != e.options.WebhookURL || p["secret_token"] != e.options.WebhookSecret {
		t.Errorf("setWebhook params %v", p)
	}
	if p["allowed_updates"] != `["message","callback_query","my_chat_member"]` {
		t.Errorf("allowed_updates %s", p["allowed_updates"])
	}
}

// TestConversion runs updates through the webhook and checks what the
// engine sees and what Telegram is asked to do.
func TestConversion(t *testing.T) {
	group := func(text string) models.Update {
		u := telegramtest.TextUpdate(-100, text)
		u.Message.Chat.Type = models.ChatTypeSupergroup
		u.Message.From.ID = 5
		return u
	}
	sticker := telegramtest.TextUpdate(5, "")
	sticker.Message.Sticker = &models.Sticker{FileID: "x"}
	replyToBot := group("这个怎么办")
	replyToBot.Message.ReplyToMessage = &models.Message{ID: 9, From: &models.User{ID: 42, IsBot: true, Username: telegramtest.BotUsername}}
	replyToOther := group("这个怎么办")
	replyToOther.Message.ReplyToMessage = &models.Message{ID: 9, From: &models.User{ID: 77, FirstName: "Someone"}}
	groupContact := telegramtest.ContactUpdate(-100, "+8613912345678", 5)
	groupContact.Message.Chat.Type = models.ChatTypeGroup
	groupButton := telegramtest.CallbackUpdate(5, "records:")
	groupButton.CallbackQuery.Message.Message.Chat = models.Chat{ID: -100, Type: models.ChatTypeSupergroup}

	const link = "https://t.me/" + telegramtest.BotUsername + "?start="
	private := func(m bot.Message) []bot.Message {
		m.Chat, m.User, m.LanguageCode, m.ChatType, m.PrivateChatURL = tg(5), tg(5), "zh", bot.ChatPrivate, link
		return []bot.Message{m}
	}
	inGroup := func(m bot.Message) []bot.Message {
		m.Chat, m.User, m.LanguageCode, m.ChatType, m.PrivateChatURL = tg(-100), tg(5), "zh", bot.ChatSupergroup, link
		return []bot.Message{m}
	}
	tests := []struct {
		name   string
		update models.Update
		want   []bot.Message // what the handler sees
		typing bool          // sendChatAction before the reply
		answer bool          // answerCallbackQuery
	}{
		{"text", telegramtest.TextUpdate(5, "我的社保 <断缴>?"), private(bot.Message{Text: "我的社保 <断缴>?"}), true, false},
		{"command", telegramtest.TextUpdate(5, "/start"), private(bot.Message{Text: "/start"}), false, false},
		{"command addressed to the bot", telegramtest.TextUpdate(5, "/lang@"+telegramtest.BotUsername+" en"), private(bot.Message{Text: "/lang en"}), false, false},
		{"group command to the bot", group("/help@" + telegramtest.BotUsername), inGroup(bot.Message{Text: "/help"}), false, false},
		{"group command to another bot", group("/help@other_bot"), nil, false, false},
		{"group chatter", group("大家好"), nil, false, false},
		{"group mention", group("@" + strings.ToUpper(telegramtest.BotUsername) + " 医保断缴了可以补缴吗"), inGroup(bot.Message{Text: "医保断缴了可以补缴吗"}), true, false},
		{"group reply to the bot", replyToBot, inGroup(bot.Message{Text: "这个怎么办"}), true, false},
		{"group reply to someone else", replyToOther, nil, false, false},
		{"group contact", groupContact, nil, false, false},
		{"group button", groupButton, inGroup(bot.Message{Callback: "records:"}), false, true},
		{"callback", telegramtest.CallbackUpdate(5, "verify:yes"), private(bot.Message{Callback: "verify:yes"}), false, true},
		{"contact", telegramtest.ContactUpdate(5, "+8613912345678", 5), private(bot.Message{Contact: &bot.Contact{User: tg(5), Phone: "+8613912345678"}}), false, false},
		{"sticker", sticker, private(bot.Message{}), false, false},
		{"edited message", models.Update{EditedMessage: telegramtest.TextUpdate(5, "x").Message}, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.a.typingDelay = 0 // at once, so the call order is fixed
			if err := e.a.identify(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if rec := postUpdate(t, e, tt.update, e.options.WebhookSecret); rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			if diff := cmp.Diff(tt.want, e.h.messages(), cmpopts.IgnoreFields(bot.Message{}, "Time"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("handler saw (-want +got):\n%s", diff)
			}
			var methods []string
			for _, c := range e.fake.Calls("") {
				if c.Method != "getMe" {
					methods = append(methods, c.Method)
				}
			}
			var want []string
			if tt.answer {
				want = append(want, "answerCallbackQuery")
			}
			if tt.typing {
				want = append(want, "sendChatAction")
			}
			if len(tt.want) > 0 {
				want = append(want, "sendMessage")
			}
			if diff := cmp.Diff(want, methods, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Bot API calls (-want +got):\n%s", diff)
			}
			if strings.Contains(e.logs.String(), "13912345678") || strings.Contains(e.logs.String(), "断缴") {
				t.Errorf("log leaks message content: %s", e.logs)
			}
		})
	}
}

// "typing…" appears only when the handler is slow: a fast answer costs one
// Bot API call, a slow one shows the indicator before the reply.
func TestTypingOnlyWhenSlow(t *testing.T) {
	e := newEnv(t, nil)
	e.a.typingDelay = time.Hour
	postUpdate(t, e, telegramtest.TextUpdate(5, "医保断缴了还能补吗"), e.options.WebhookSecret)
	if n := len(e.fake.Calls("sendChatAction")); n != 0 {
		t.Errorf("fast answer: %d sendChatAction calls, want 0", n)
	}

	e = newEnv(t, nil)
	e.a.typingDelay = time.Millisecond
	// The handler stays busy until the indicator has been shown.
	e.h.hook = func(ctx context.Context, m bot.Message) error {
		_, err := e.fake.WaitCalls(ctx, "sendChatAction", 1)
		return err
	}
	postUpdate(t, e, telegramtest.TextUpdate(5, "医保断缴了还能补吗"), e.options.WebhookSecret)
	var methods []string
	for _, c := range e.fake.Calls("") {
		methods = append(methods, c.Method)
	}
	if diff := cmp.Diff([]string{"sendChatAction", "sendMessage"}, methods); diff != "" {
		t.Errorf("slow answer: Bot API calls (-want +got):\n%s", diff)
	}
}
