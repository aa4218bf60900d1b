package telegram

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// menuHandler plays a button flow: "/menu" shows a menu of two choices;
// pressing "pick:X" answers with a reply that replaces the menu ("picked
// X", the menu's buttons again), after the replies in before. long makes
// the replacing reply need two messages, ask makes it ask for the
// contact.
type menuHandler struct {
	before []bot.Reply
	long   bool
	ask    bool
}

var menuButtons = [][]bot.Button{{{Text: "A", Data: "pick:a"}, {Text: "B", Data: "pick:b"}}}

func (h *menuHandler) Handle(_ context.Context, m bot.Message) ([]bot.Reply, error) {
	pick, ok := strings.CutPrefix(m.Callback, "pick:")
	if !ok {
		r := bot.TextReply("Choose:")
		r.Buttons = menuButtons
		return []bot.Reply{r}, nil
	}
	r := bot.TextReply("picked " + pick)
	r.Buttons, r.Replaces = menuButtons, true
	if h.long {
		r = bot.TextReply(strings.Repeat("picked "+pick+" and a long explanation\n", 200))
		r.Replaces = true
	}
	if h.ask {
		r.Buttons, r.AskContact = nil, "Share my phone"
	}
	return append(append([]bot.Reply(nil), h.before...), r), nil
}

// webhook delivers updates through the webhook handler, one at a time,
// each with the next update ID.
type webhook struct {
	t  *testing.T
	e  *env
	id atomic.Int64
}

func (w *webhook) deliver(u models.Update) {
	w.t.Helper()
	u.ID = w.id.Add(1)
	if rec := postUpdate(w.t, w.e, u, w.e.options.WebhookSecret); rec.Code != http.StatusOK {
		w.t.Fatalf("update %d: status %d, want 200", u.ID, rec.Code)
	}
}

func menuEnv(t *testing.T, h *menuHandler, edit func(*Options)) (*env, *webhook) {
	t.Helper()
	e := newEnv(t, func(o *Options) {
		o.Handler = h
		if edit != nil {
			edit(o)
		}
	})
	return e, &webhook{t: t, e: e}
}

// openMenu has user 5 send /menu and returns the menu message.
func openMenu(t *testing.T, e *env, w *webhook) telegramtest.Message {
	t.Helper()
	w.deliver(telegramtest.TextUpdate(5, "/menu"))
	chat := e.fake.Chat(5)
	if len(chat) != 1 || chat[0].Text != "Choose:" {
		t.Fatalf("chat after /menu: %+v, want the menu", chat)
	}
	return chat[0]
}

// shown is the texts of messages, a message per entry.
func shown(ms []telegramtest.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

// Pressing a button of a menu edits the menu in place: the chat still
// holds one message, now the answer with the buttons, and nothing new was
// sent.
func TestButtonEditsItsMenu(t *testing.T) {
	e, w := menuEnv(t, &menuHandler{}, nil)
	menu := openMenu(t, e, w)
	w.deliver(telegramtest.PressUpdate(menu, "pick:b"))

	chat := e.fake.Chat(5)
	if len(chat) != 1 || chat[0].ID != menu.ID || chat[0].Text != "picked b" {
		t.Fatalf("chat shows %q, want only the menu, edited to \"picked b\"", shown(chat))
	}
	if data, _ := telegramtest.Buttons(chat[0]); strings.Join(data, " ") != "pick:a pick:b" {
		t.Errorf("edited menu has buttons %v, want the reply's", data)
	}
	if n := len(e.fake.Sent()); n != 1 {
		t.Errorf("%d messages sent, want the menu only", n)
	}
	calls := e.fake.Calls("editMessageText")
	if len(calls) != 1 {
		t.Fatalf("%d editMessageText calls, want 1", len(calls))
	}
	if p := calls[0].Params; p["parse_mode"] != "HTML" || p["chat_id"] != "5" {
		t.Errorf("edit params %v, want HTML in chat 5", p)
	}
	if n := len(e.fake.Calls("answerCallbackQuery")); n != 1 {
		t.Errorf("%d answerCallbackQuery calls, want the spinner stopped once", n)
	}

	// A second press that changes nothing ("message is not modified") is
	// not a failure and sends nothing new.
	metrics := &countMetrics{}
	e.a.opts.Metrics = metrics
	w.deliver(telegramtest.PressUpdate(chat[0], "pick:b"))
	if got := e.fake.Chat(5); len(got) != 1 || got[0].Text != "picked b" {
		t.Errorf("after pressing the same choice again the chat shows %q, want the one menu", shown(got))
	}
	if got := metrics.get("callback/handled"); got != 1 {
		t.Errorf("counted %d handled callbacks (metrics %v), want 1: \"not modified\" is success", got, metrics.n)
	}
}

// Replies before the replacing one come as new messages, in order; the
// menu is edited.
func TestButtonEditKeepsOtherRepliesInOrder(t *testing.T) {
	e, w := menuEnv(t, &menuHandler{before: []bot.Reply{bot.TextReply("note 1"), bot.TextReply("note 2")}}, nil)
	menu := openMenu(t, e, w)
	w.deliver(telegramtest.PressUpdate(menu, "pick:a"))
	if got, want := strings.Join(shown(e.fake.Chat(5)), " | "), "picked a | note 1 | note 2"; got != want {
		t.Errorf("chat shows %q, want %q", got, want)
	}
	if got := shown(e.fake.Sent()); strings.Join(got, " | ") != "Choose: | note 1 | note 2" {
		t.Errorf("sent %q", got)
	}
}

// When the menu cannot be edited, the answer comes as a new message, once.
func TestButtonEditFallsBackToNewMessage(t *testing.T) {
	tests := []struct {
		name    string
		handler *menuHandler
		setup   func(e *env, menu telegramtest.Message)
		press   func(menu telegramtest.Message) models.Update
		edits   int      // editMessageText calls
		want    []string // what chat 5 shows afterwards
	}{
		{"menu older than 48 hours", &menuHandler{},
			func(e *env, _ telegramtest.Message) {
				e.fake.FailEdits(5, 400, "Bad Request: message can't be edited")
			}, nil, 1, []string{"Choose:", "picked b"}},
		{"menu deleted by the user", &menuHandler{},
			func(e *env, menu telegramtest.Message) { e.fake.Delete(5, menu.ID) }, nil, 1, []string{"picked b"}},
		{"another refusal", &menuHandler{},
			func(e *env, _ telegramtest.Message) {
				e.fake.FailEdits(5, 400, "Bad Request: there is no text in the message to edit")
			}, nil, 1, []string{"Choose:", "picked b"}},
		{"press on a message the bot does not know", &menuHandler{}, nil,
			func(telegramtest.Message) models.Update { return telegramtest.CallbackUpdate(5, "pick:b") },
			1, []string{"Choose:", "picked b"}},
		{"press with no message (inline mode)", &menuHandler{}, nil,
			func(menu telegramtest.Message) models.Update {
				u := telegramtest.PressUpdate(menu, "pick:b")
				u.CallbackQuery.Message = models.MaybeInaccessibleMessage{}
				u.CallbackQuery.InlineMessageID = "inline-1"
				return u
			}, 0, []string{"Choose:", "picked b"}},
		{"press on an inaccessible message", &menuHandler{}, nil,
			func(menu telegramtest.Message) models.Update {
				u := telegramtest.PressUpdate(menu, "pick:b")
				u.CallbackQuery.Message = models.MaybeInaccessibleMessage{
					Type:                models.MaybeInaccessibleMessageTypeInaccessibleMessage,
					InaccessibleMessage: &models.InaccessibleMessage{Chat: models.Chat{ID: 5, Type: models.ChatTypePrivate}, MessageID: menu.ID},
				}
				return u
			}, 0, []string{"Choose:", "picked b"}},
		{"reply asks for the contact", &menuHandler{ask: true}, nil, nil, 0, []string{"Choose:", "picked b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, w := menuEnv(t, tt.handler, nil)
			menu := openMenu(t, e, w)
			if tt.setup != nil {
				tt.setup(e, menu)
			}
			press := telegramtest.PressUpdate(menu, "pick:b")
			if tt.press != nil {
				press = tt.press(menu)
			}
			w.deliver(press)
			if got := shown(e.fake.Chat(5)); strings.Join(got, " | ") != strings.Join(tt.want, " | ") {
				t.Errorf("chat shows %q, want %q", got, tt.want)
			}
			if n := len(e.fake.Calls("editMessageText")); n != tt.edits {
				t.Errorf("%d editMessageText calls, want %d", n, tt.edits)
			}
			if n := len(e.fake.Edits()); n != 0 {
				t.Errorf("%d edits applied, want none", n)
			}
		})
	}
}

// A replacing reply too long for one message is sent anew, split, with
// the keyboard on its last part; the menu stays.
func TestButtonEditLongReplySentSplit(t *testing.T) {
	e, w := menuEnv(t, &menuHandler{long: true}, nil)
	menu := openMenu(t, e, w)
	w.deliver(telegramtest.PressUpdate(menu, "pick:a"))
	chat := e.fake.Chat(5)
	if len(chat) < 3 || chat[0].Text != "Choose:" || !strings.HasPrefix(chat[1].Text, "picked a") {
		t.Fatalf("chat shows %d messages starting %q, want the menu and the reply in parts", len(chat), shown(chat)[0])
	}
	if n := len(e.fake.Calls("editMessageText")); n != 0 {
		t.Errorf("%d editMessageText calls for a reply that needs splitting", n)
	}
}

// Edits go through the same retries as sends: 429 waits retry_after, a
// 500 is tried again, and neither adds a message.
func TestButtonEditRetried(t *testing.T) {
	for _, tt := range []struct {
		name      string
		code      int
		retry     int
		wantSleep bool
	}{{"429", 429, 2, true}, {"500", 500, 0, false}} {
		t.Run(tt.name, func(t *testing.T) {
			e, w := menuEnv(t, &menuHandler{}, nil)
			menu := openMenu(t, e, w)
			e.fake.FailNext("editMessageText", 1, tt.code, tt.retry)
			w.deliver(telegramtest.PressUpdate(menu, "pick:a"))
			if got := shown(e.fake.Chat(5)); len(got) != 1 || got[0] != "picked a" {
				t.Errorf("chat shows %q, want the menu edited", got)
			}
			if n := len(e.fake.Calls("editMessageText")); n != 2 {
				t.Errorf("%d editMessageText calls, want 2", n)
			}
			if slept := len(e.sleeps.all()) > 0; slept != tt.wantSleep {
				t.Errorf("slept %v, want retry_after waited: %v", e.sleeps.all(), tt.wantSleep)
			}
		})
	}
}

// A user who blocked the bot makes the edit fail with 403: the chat is
// marked, and nothing is sent instead.
func TestButtonEditBlocked(t *testing.T) {
	bl := &fakeBlocklist{blocked: map[int64]bool{}}
	metrics := &countMetrics{}
	e, w := menuEnv(t, &menuHandler{}, func(o *Options) { o.Blocklist = bl; o.Metrics = metrics })
	menu := openMenu(t, e, w)
	e.fake.Block(5)
	w.deliver(telegramtest.PressUpdate(menu, "pick:a"))
	if !bl.isBlocked(5) {
		t.Error("chat not marked blocked after a 403 on the edit")
	}
	if n := len(e.fake.Calls("sendMessage")); n != 1 {
		t.Errorf("%d sendMessage calls, want only the menu's", n)
	}
	if got := metrics.get("callback/blocked"); got != 1 {
		t.Errorf("metrics %v, want one blocked callback", metrics.n)
	}
}

// Reminders (Send) answer no button and never edit, even a reply marked
// as replacing.
func TestSendNeverEdits(t *testing.T) {
	e := newEnv(t, nil)
	r := bot.TextReply("reminder")
	r.Replaces = true
	if err := e.a.Send(testCtx(t), tg(5), []bot.Reply{r}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.fake.Calls("editMessageText")); n != 0 {
		t.Errorf("%d editMessageText calls from Send", n)
	}
	if got := shown(e.fake.Chat(5)); len(got) != 1 || got[0] != "reminder" {
		t.Errorf("chat shows %q", got)
	}
}

func TestBadRequest(t *testing.T) {
	err := &mayBeDeliveredError{fmt.Errorf("telegram editMessageText: %w", &botError{method: "editMessageText", code: 400, desc: "Bad Request: Message Is Not Modified"})}
	if desc, ok := badRequest(err); !ok || desc != "bad request: message is not modified" {
		t.Errorf("wrapped 400: %q %v", desc, ok)
	}
	if _, ok := badRequest(&botError{code: 403, desc: "Forbidden: bot was blocked by the user"}); ok {
		t.Error("a 403 taken for a 400")
	}
	if _, ok := badRequest(nil); ok {
		t.Error("nil taken for a 400")
	}
}

// editSim plays editMessageText and sendMessage in process, for virtual
// time: answer decides each edit attempt from its number and whether an
// earlier one was applied, and says whether this one is applied.
type editSim struct {
	answer func(attempt int, applied bool) (status int, desc string, apply, hang bool)

	mu       sync.Mutex
	attempts int
	applied  bool
	sends    int
}

func (s *editSim) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	rec := httptest.NewRecorder()
	if strings.HasSuffix(r.URL.Path, "/sendMessage") {
		s.mu.Lock()
		s.sends++
		s.mu.Unlock()
		rec.WriteString(`{"ok":true,"result":{"message_id":2}}`)
		return rec.Result(), nil
	}
	s.mu.Lock()
	s.attempts++
	status, desc, apply, hang := s.answer(s.attempts, s.applied)
	s.applied = s.applied || apply
	s.mu.Unlock()
	if hang {
		<-r.Context().Done() // the call timeout
		return nil, r.Context().Err()
	}
	if status == 0 {
		rec.WriteString(`{"ok":true,"result":{"message_id":1}}`)
		return rec.Result(), nil
	}
	rec.WriteHeader(status)
	fmt.Fprintf(rec, `{"ok":false,"error_code":%d,"description":%q}`, status, desc)
	return rec.Result(), nil
}

// An edit that may have been applied is never followed by the reply as a
// new message: not after its retries give up, not when a retry is
// refused. When a retry finds the edit done ("not modified"), the turn
// succeeded.
func TestButtonEditMaybeAppliedNeverDuplicated(t *testing.T) {
	const notModified, cantEdit = "Bad Request: message is not modified", "Bad Request: message can't be edited"
	tests := []struct {
		name   string
		answer func(attempt int, applied bool) (int, string, bool, bool)
		ok     bool
	}{
		{"applied, then 502 until the retries end", func(int, bool) (int, string, bool, bool) {
			return http.StatusBadGateway, "Bad Gateway", true, false
		}, false},
		{"applied and timed out, the retry finds it done", func(_ int, applied bool) (int, string, bool, bool) {
			if applied {
				return http.StatusBadRequest, notModified, false, false
			}
			return 0, "", true, true
		}, true},
		{"applied and 502, the retry is refused", func(attempt int, _ bool) (int, string, bool, bool) {
			if attempt == 1 {
				return http.StatusBadGateway, "Bad Gateway", true, false
			}
			return http.StatusBadRequest, cantEdit, false, false
		}, false},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			sim := &editSim{answer: tt.answer}
			a, err := New(Options{Token: testToken, APIURL: "http://bot-api.invalid", Handler: &echoHandler{},
				HTTPClient: &http.Client{Transport: sim}})
			if err != nil {
				t.Fatal(err)
			}
			r := bot.TextReply("picked a")
			r.Replaces = true
			err = a.send(context.Background(), 5, 1, []bot.Reply{r})
			if (err == nil) != tt.ok {
				t.Errorf("%s: err %v, want ok=%v", tt.name, err, tt.ok)
			}
			if sim.sends != 0 {
				t.Errorf("%s: the reply was also sent as a new message (%d times) after an edit that may have been applied", tt.name, sim.sends)
			}
			if !sim.applied {
				t.Errorf("%s: the edit was never applied", tt.name)
			}
		})
	}
}
