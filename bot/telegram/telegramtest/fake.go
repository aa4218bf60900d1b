// Package telegramtest is a fake Telegram Bot API server for tests and load
// runs: it queues updates for getUpdates (long polling, offsets and
// confirmation as Telegram does them), records every call, answers the
// methods the bot uses, keeps what each chat shows (edits applied) and the
// bot's profile (command menus by scope and language, descriptions), and
// can be told to fail. Point an adapter at URL.
package telegramtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"
)

// BotUsername is the username getMe reports.
const BotUsername = "shebao_test_bot"

// Call is one recorded Bot API call. Params holds the request fields as
// strings; objects (reply_markup, commands) are JSON.
type Call struct {
	Method string
	Params map[string]string
}

// Message is a message the bot sent with sendMessage, or an edit of one
// with editMessageText.
type Message struct {
	ChatID int64
	// ID is the message_id the fake gave it. IDs are unique across chats
	// and start at 1.
	ID          int
	Text        string
	ParseMode   string
	ReplyMarkup string // JSON, "" when none
}

// UnknownMessageID is the message a button of CallbackUpdate sits on: one
// the fake never sent (a message from before it started), so an edit of
// it is answered "message to edit not found".
const UnknownMessageID = 1 << 30

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to use instead of https://api.telegram.org.
	URL   string
	token string
	srv   *httptest.Server

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	queue     []queued      // unconfirmed updates, by update_id
	nextID    int64
	confirmed int64 // highest offset seen; updates below it are confirmed
	calls     []Call
	sent      []Message // as sent; sent[i] has message_id i+1
	shown     []Message // as the chat shows it now: edits applied
	deleted   map[int]bool
	edits     []Message
	failures  map[string][]failure
	blocked   map[int64]bool
	chatFails map[int64]chatFailure
	editFails map[int64]chatFailure
	holds     map[string]chan struct{}
	meter     *Meter // nil: no send limits (Enforce)
	// The bot's profile: commands by scope and language ("default/",
	// "all_private_chats/en"), descriptions by language.
	commands map[string][]models.BotCommand
	descs    map[string]string
	shorts   map[string]string
	hook     webhookState // webhook.go
}

type queued struct {
	id  int64
	raw json.RawMessage
}

type chatFailure struct {
	code int
	desc string
}

type failure struct {
	left       int
	code       int
	retryAfter int
}

// New starts a fake that accepts token. Close it when done.
func New(token string) *Server {
	s := &Server{
		token:     token,
		changed:   make(chan struct{}),
		nextID:    1000,
		failures:  make(map[string][]failure),
		blocked:   make(map[int64]bool),
		chatFails: make(map[int64]chatFailure),
		editFails: make(map[int64]chatFailure),
		deleted:   make(map[int]bool),
		holds:     make(map[string]chan struct{}),
		commands:  make(map[string][]models.BotCommand),
		descs:     make(map[string]string),
		shorts:    make(map[string]string),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Enforce makes sendMessage keep to l from now on, answering 429 over
// it (see Limits), and count what was sent (SendStats).
func (s *Server) Enforce(l Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meter = NewMeter(l)
}

// SendStats returns what the limits of Enforce saw; zero without Enforce.
func (s *Server) SendStats() SendStats {
	s.mu.Lock()
	m := s.meter
	s.mu.Unlock()
	if m == nil {
		return SendStats{}
	}
	return m.Stats()
}

// Close stops the server and releases held calls.
func (s *Server) Close() {
	s.mu.Lock()
	for m, ch := range s.holds {
		close(ch)
		delete(s.holds, m)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// notifyLocked wakes everyone waiting for a change; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Push queues an update for getUpdates and returns its update_id. A zero
// ID gets the next one; an explicit ID lets a test redeliver an update.
func (s *Server) Push(u models.Update) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == 0 {
		s.nextID++
		u.ID = s.nextID
	} else if u.ID > s.nextID {
		s.nextID = u.ID
	}
	raw, err := json.Marshal(&u)
	if err != nil {
		// Only a malformed hand-built update gets here; deliver its ID
		// alone, which the bot ignores, as it does undecodable updates.
		raw = json.RawMessage(fmt.Sprintf(`{"update_id":%d}`, u.ID))
	}
	s.queue = append(s.queue, queued{id: u.ID, raw: raw})
	slices.SortStableFunc(s.queue, func(a, b queued) int { return compare(a.id, b.id) })
	s.notifyLocked()
	return u.ID
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Update builders for the common cases: a private chat whose ID is the
// user's ID, client language "zh".

// TextUpdate is a text message from user chatID in their private chat.
func TextUpdate(chatID int64, text string) models.Update {
	return models.Update{Message: message(chatID, func(m *models.Message) { m.Text = text })}
}

// CallbackUpdate is a press of an inline button carrying data, on a
// message the fake never sent (UnknownMessageID). Press is a press on a
// message the bot sent.
func CallbackUpdate(chatID int64, data string) models.Update {
	return models.Update{CallbackQuery: &models.CallbackQuery{
		ID:   "cb" + strconv.FormatInt(chatID, 10) + "-" + data,
		From: user(chatID),
		Message: models.MaybeInaccessibleMessage{
			Type: models.MaybeInaccessibleMessageTypeMessage,
			Message: message(chatID, func(m *models.Message) {
				m.ID = UnknownMessageID
				m.Text = "…"
			}),
		},
		Data: data,
	}}
}

// PressUpdate is user chatID pressing the button carrying data under the
// bot's message m (as Sent or Chat return it), in their private chat.
func PressUpdate(m Message, data string) models.Update {
	u := CallbackUpdate(m.ChatID, data)
	u.CallbackQuery.ID = "cb" + strconv.FormatInt(m.ChatID, 10) + "-" + strconv.Itoa(m.ID) + "-" + data
	msg := u.CallbackQuery.Message.Message
	msg.ID = m.ID
	msg.Text = m.Text // the HTML source; Telegram would send the plain text and entities
	msg.From = &models.User{ID: 42, IsBot: true, FirstName: "Shebao", Username: BotUsername}
	return u
}

// PushPress queues a press of the button carrying data under the bot's
// message m (see PressUpdate). It does not check that m has that button;
// Buttons lists them.
func (s *Server) PushPress(m Message, data string) int64 { return s.Push(PressUpdate(m, data)) }

// Buttons returns the callback data of the inline buttons of m, row after
// row, and their texts.
func Buttons(m Message) (data, text []string) {
	var markup struct {
		InlineKeyboard [][]struct {
			Text         string `json:"text"`
			CallbackData string `json:"callback_data"`
		} `json:"inline_keyboard"`
	}
	if m.ReplyMarkup == "" || json.Unmarshal([]byte(m.ReplyMarkup), &markup) != nil {
		return nil, nil
	}
	for _, row := range markup.InlineKeyboard {
		for _, b := range row {
			data, text = append(data, b.CallbackData), append(text, b.Text)
		}
	}
	return data, text
}

// ContactUpdate is a shared contact card.
func ContactUpdate(chatID int64, phone string, contactUserID int64) models.Update {
	return models.Update{Message: message(chatID, func(m *models.Message) {
		m.Contact = &models.Contact{PhoneNumber: phone, FirstName: "Test", UserID: contactUserID}
	})}
}

// PushText queues a text message (see TextUpdate).
func (s *Server) PushText(chatID int64, text string) int64 { return s.Push(TextUpdate(chatID, text)) }

// PushCallback queues a button press (see CallbackUpdate).
func (s *Server) PushCallback(chatID int64, data string) int64 {
	return s.Push(CallbackUpdate(chatID, data))
}

// PushContact queues a shared contact (see ContactUpdate).
func (s *Server) PushContact(chatID int64, phone string, contactUserID int64) int64 {
	return s.Push(ContactUpdate(chatID, phone, contactUserID))
}

func user(id int64) models.User {
	return models.User{ID: id, FirstName: "Test", LanguageCode: "zh"}
}

func message(chatID int64, set func(*models.Message)) *models.Message {
	u := user(chatID)
	m := &models.Message{
		ID:   1,
		From: &u,
		Date: int(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()),
		Chat: models.Chat{ID: chatID, Type: models.ChatTypePrivate, FirstName: "Test"},
	}
	set(m)
	return m
}

// Confirmed returns the highest offset passed to getUpdates: Telegram
// considers every update below it handled and will not deliver it again.
func (s *Server) Confirmed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.confirmed
}

// Pending returns how many updates are not yet confirmed.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Sent returns the messages sent so far with sendMessage, in order, as
// they were sent (see Chat for what they show after edits).
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// Edits returns the edits applied with editMessageText so far, in order,
// each as the message's new content.
func (s *Server) Edits() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.edits)
}

// Chat returns what the user of chatID sees: the bot's messages in the
// chat in order, with edits applied and without deleted ones.
func (s *Server) Chat(chatID int64) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.shown {
		if m.ChatID == chatID && !s.deleted[m.ID] {
			out = append(out, m)
		}
	}
	return out
}

// Delete removes the bot's message id from the chat, as a user who
// deletes it does: an edit of it is then "message to edit not found".
func (s *Server) Delete(chatID int64, id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id >= 1 && id <= len(s.shown) && s.shown[id-1].ChatID == chatID {
		s.deleted[id] = true
	}
}

// FailEdits makes every editMessageText in chatID fail with code and
// description, as Telegram answers 400 "Bad Request: message can't be
// edited" for a message older than 48 hours.
func (s *Server) FailEdits(chatID int64, code int, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.editFails[chatID] = chatFailure{code: code, desc: description}
}

// BotCommands returns the command menu set for scope ("default",
// "all_private_chats", …) and language ("" for all), as getMyCommands
// would.
func (s *Server) BotCommands(scope, lang string) []models.BotCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands[scope+"/"+lang])
}

// SetBotCommands sets a command menu as an earlier release of the bot
// would have left it.
func (s *Server) SetBotCommands(scope, lang string, cmds []models.BotCommand) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands[scope+"/"+lang] = slices.Clone(cmds)
}

// Description returns the bot's description for lang ("" for all).
func (s *Server) Description(lang string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.descs[lang]
}

// ShortDescription returns the bot's short description for lang.
func (s *Server) ShortDescription(lang string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shorts[lang]
}

// SetDescriptions sets the bot's description and short description for
// lang, as an earlier start of the bot would have left them.
func (s *Server) SetDescriptions(lang, description, short string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.descs[lang], s.shorts[lang] = description, short
}

// Calls returns the recorded calls of method, or all calls when method is "".
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callsLocked(method)
}

func (s *Server) callsLocked(method string) []Call {
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// WaitSent waits until at least n messages were sent and returns them all.
func (s *Server) WaitSent(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		sent, ch := slices.Clone(s.sent), s.changed
		s.mu.Unlock()
		if len(sent) >= n {
			return sent, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return sent, fmt.Errorf("wait for %d sent messages, have %d: %w", n, len(sent), ctx.Err())
		}
	}
}

// WaitEdits waits until at least n edits were applied and returns them
// all.
func (s *Server) WaitEdits(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		edits, ch := slices.Clone(s.edits), s.changed
		s.mu.Unlock()
		if len(edits) >= n {
			return edits, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return edits, fmt.Errorf("wait for %d edits, have %d: %w", n, len(edits), ctx.Err())
		}
	}
}

// WaitCalls waits until method was called at least n times.
func (s *Server) WaitCalls(ctx context.Context, method string, n int) ([]Call, error) {
	for {
		s.mu.Lock()
		calls, ch := s.callsLocked(method), s.changed
		s.mu.Unlock()
		if len(calls) >= n {
			return calls, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return calls, fmt.Errorf("wait for %d %s calls, have %d: %w", n, method, len(calls), ctx.Err())
		}
	}
}

// FailNext makes the next k calls of method fail with code (429 with
// retry_after seconds, 500, …).
func (s *Server) FailNext(method string, k, code, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], failure{left: k, code: code, retryAfter: retryAfter})
}

// Block makes sendMessage, editMessageText and sendChatAction to chatID
// fail with 403, as when the user blocked the bot.
func (s *Server) Block(chatID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[chatID] = true
}

// FailChat makes every sendMessage, editMessageText and sendChatAction to
// chatID fail with code and description, as Telegram answers for a chat
// that is gone (400 "Bad Request: chat not found") or a deleted account
// (400 "Bad Request: user is deactivated").
func (s *Server) FailChat(chatID int64, code int, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chatFails[chatID] = chatFailure{code: code, desc: description}
}

// Unblock undoes Block: the user unblocked the bot.
func (s *Server) Unblock(chatID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blocked, chatID)
}

// Hold makes calls of method wait, after being recorded, until release is
// called. It lets a test observe what happens while a call is in flight.
func (s *Server) Hold(method string) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.holds[method] = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.holds[method] == ch {
				delete(s.holds, method)
				close(ch)
			}
		})
	}
}

type apiResponse struct {
	OK          bool   `json:"ok"`
	Result      any    `json:"result,omitempty"`
	ErrorCode   int    `json:"error_code,omitempty"`
	Description string `json:"description,omitempty"`
	Parameters  *struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v apiResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do
}

func writeError(w http.ResponseWriter, code int, desc string, retryAfter int) {
	resp := apiResponse{ErrorCode: code, Description: desc}
	if retryAfter > 0 {
		resp.Parameters = &struct {
			RetryAfter int `json:"retry_after"`
		}{retryAfter}
	}
	writeJSON(w, code, resp)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || token != s.token {
		writeError(w, http.StatusUnauthorized, "Unauthorized", 0)
		return
	}
	params, err := readParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request: "+err.Error(), 0)
		return
	}

	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: method, Params: params})
	s.notifyLocked()
	hold := s.holds[method]
	var fail *failure
	if fs := s.failures[method]; len(fs) > 0 {
		f := fs[0]
		fail = &f
		fs[0].left--
		if fs[0].left <= 0 {
			s.failures[method] = fs[1:]
		}
	}
	s.mu.Unlock()

	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if fail != nil {
		desc := http.StatusText(fail.code)
		if fail.code == http.StatusTooManyRequests {
			desc = fmt.Sprintf("Too Many Requests: retry after %d", fail.retryAfter)
		}
		writeError(w, fail.code, desc, fail.retryAfter)
		return
	}

	switch method {
	case "getUpdates":
		s.getUpdates(w, r, params)
	case "sendMessage", "sendChatAction":
		chatID, err := strconv.ParseInt(params["chat_id"], 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "Bad Request: chat_id is empty", 0)
			return
		}
		if method == "sendMessage" {
			if desc := checkText(params); desc != "" {
				writeError(w, http.StatusBadRequest, desc, 0)
				return
			}
		}
		s.mu.Lock()
		blocked := s.blocked[chatID]
		chatFail, failed := s.chatFails[chatID]
		if failed {
			s.mu.Unlock()
			writeError(w, chatFail.code, chatFail.desc, 0)
			return
		}
		if !blocked && method == "sendMessage" && s.meter != nil {
			if ra := s.meter.Admit(chatID, time.Now()); ra > 0 {
				s.mu.Unlock()
				writeError(w, http.StatusTooManyRequests, fmt.Sprintf("Too Many Requests: retry after %d", ra), ra)
				return
			}
		}
		if !blocked && method == "sendMessage" {
			m := Message{
				ChatID: chatID, ID: len(s.sent) + 1, Text: params["text"], ParseMode: params["parse_mode"], ReplyMarkup: params["reply_markup"],
			}
			s.sent = append(s.sent, m)
			s.shown = append(s.shown, m)
			s.notifyLocked()
		}
		n := len(s.sent)
		s.mu.Unlock()
		switch {
		case blocked:
			writeError(w, http.StatusForbidden, "Forbidden: bot was blocked by the user", 0)
		case method == "sendChatAction":
			writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: true})
		default:
			writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: map[string]any{
				"message_id": n, "date": time.Now().Unix(),
				"chat": map[string]any{"id": chatID, "type": "private"},
				"text": params["text"],
			}})
		}
	case "editMessageText":
		s.editMessageText(w, params)
	case "answerCallbackQuery":
		writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: true})
	case "setWebhook", "deleteWebhook", "getWebhookInfo":
		s.webhook(w, method, params)
	case "setMyCommands", "deleteMyCommands", "getMyCommands":
		s.myCommands(w, method, params)
	case "setMyDescription", "getMyDescription", "setMyShortDescription", "getMyShortDescription":
		s.myDescription(w, method, params)
	case "getMe":
		writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: map[string]any{
			"id": 42, "is_bot": true, "first_name": "Shebao", "username": BotUsername,
		}})
	default:
		writeError(w, http.StatusNotFound, "Not Found: method not found", 0)
	}
}

// checkText refuses, like Telegram, text that is not valid in its parse
// mode or is too long, so tests catch what users would never see. It
// returns the error description, "" when the text is fine.
func checkText(params map[string]string) string {
	text := params["text"]
	if params["parse_mode"] == "HTML" {
		if _, err := CheckHTML(text); err != nil {
			return "Bad Request: can't parse entities: " + err.Error()
		}
	}
	if n := len(utf16.Encode([]rune(text))); n > 4096 || strings.TrimSpace(text) == "" {
		return "Bad Request: message is too long or empty"
	}
	return ""
}

// editMessageText follows Telegram for a message of a chat: refused for a
// message the fake did not send there or that was deleted (400 "message
// to edit not found"), for a chat told so by FailEdits, and for an edit
// that changes nothing (400 "message is not modified"). Without a
// reply_markup the message loses its inline keyboard, as on Telegram.
func (s *Server) editMessageText(w http.ResponseWriter, params map[string]string) {
	chatID, err := strconv.ParseInt(params["chat_id"], 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request: chat_id is empty", 0)
		return
	}
	id, err := strconv.Atoi(params["message_id"])
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, "Bad Request: message identifier is not specified", 0)
		return
	}
	if desc := checkText(params); desc != "" {
		writeError(w, http.StatusBadRequest, desc, 0)
		return
	}
	if markup := params["reply_markup"]; markup != "" && !strings.Contains(markup, `"inline_keyboard"`) {
		writeError(w, http.StatusBadRequest, "Bad Request: inline keyboard expected", 0)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked[chatID] {
		writeError(w, http.StatusForbidden, "Forbidden: bot was blocked by the user", 0)
		return
	}
	if f, ok := s.chatFails[chatID]; ok {
		writeError(w, f.code, f.desc, 0)
		return
	}
	if f, ok := s.editFails[chatID]; ok {
		writeError(w, f.code, f.desc, 0)
		return
	}
	if id > len(s.shown) || s.shown[id-1].ChatID != chatID || s.deleted[id] {
		writeError(w, http.StatusBadRequest, "Bad Request: message to edit not found", 0)
		return
	}
	cur := s.shown[id-1]
	m := Message{ChatID: chatID, ID: id, Text: params["text"], ParseMode: params["parse_mode"], ReplyMarkup: params["reply_markup"]}
	if m.Text == cur.Text && m.ReplyMarkup == cur.ReplyMarkup {
		writeError(w, http.StatusBadRequest, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message", 0)
		return
	}
	s.shown[id-1] = m
	s.edits = append(s.edits, m)
	s.notifyLocked()
	writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: map[string]any{
		"message_id": id, "date": time.Now().Unix(), "edit_date": time.Now().Unix(),
		"chat": map[string]any{"id": chatID, "type": "private"},
		"text": m.Text,
	}})
}

// scopeOf is the key of a command scope parameter: its type, and its chat
// for the scopes of one chat. No scope is "default".
func scopeOf(param string) (string, error) {
	if param == "" {
		return "default", nil
	}
	var sc struct {
		Type   string          `json:"type"`
		ChatID json.RawMessage `json:"chat_id"`
	}
	if err := json.Unmarshal([]byte(param), &sc); err != nil || sc.Type == "" {
		return "", fmt.Errorf("can't parse scope")
	}
	if len(sc.ChatID) > 0 {
		return sc.Type + ":" + string(sc.ChatID), nil
	}
	return sc.Type, nil
}

var commandName = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// myCommands keeps the command menus by scope and language, and refuses
// commands Telegram refuses.
func (s *Server) myCommands(w http.ResponseWriter, method string, params map[string]string) {
	scope, err := scopeOf(params["scope"])
	if err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request: "+err.Error(), 0)
		return
	}
	key := scope + "/" + params["language_code"]
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "getMyCommands":
		cmds := s.commands[key]
		if cmds == nil {
			cmds = []models.BotCommand{}
		}
		writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: cmds})
		return
	case "deleteMyCommands":
		delete(s.commands, key)
	default:
		var cmds []models.BotCommand
		if err := json.Unmarshal([]byte(params["commands"]), &cmds); err != nil || len(cmds) > 100 {
			writeError(w, http.StatusBadRequest, "Bad Request: can't parse commands", 0)
			return
		}
		for _, c := range cmds {
			if n := utf8.RuneCountInString(c.Description); !commandName.MatchString(c.Command) || n == 0 || n > 256 {
				writeError(w, http.StatusBadRequest, "Bad Request: BOT_COMMAND_INVALID", 0)
				return
			}
		}
		if len(cmds) == 0 {
			delete(s.commands, key)
		} else {
			s.commands[key] = cmds
		}
	}
	s.notifyLocked()
	writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: true})
}

// myDescription keeps the descriptions (at most 512 characters) and short
// descriptions (at most 120) by language.
func (s *Server) myDescription(w http.ResponseWriter, method string, params map[string]string) {
	lang := params["language_code"]
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "getMyDescription":
		writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: map[string]string{"description": s.descs[lang]}})
		return
	case "getMyShortDescription":
		writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: map[string]string{"short_description": s.shorts[lang]}})
		return
	case "setMyDescription":
		d := params["description"]
		if len(utf16.Encode([]rune(d))) > 512 {
			writeError(w, http.StatusBadRequest, "Bad Request: description is too long", 0)
			return
		}
		s.descs[lang] = d
	case "setMyShortDescription":
		d := params["short_description"]
		if len(utf16.Encode([]rune(d))) > 120 {
			writeError(w, http.StatusBadRequest, "Bad Request: short description is too long", 0)
			return
		}
		s.shorts[lang] = d
	}
	s.notifyLocked()
	writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: true})
}

// getUpdates follows Telegram: an offset confirms every update below it;
// with nothing to return it waits up to timeout seconds for a push.
func (s *Server) getUpdates(w http.ResponseWriter, r *http.Request, params map[string]string) {
	offset, _ := strconv.ParseInt(params["offset"], 10, 64)
	limit, _ := strconv.Atoi(params["limit"])
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	timeout, _ := strconv.Atoi(params["timeout"])
	deadline := time.NewTimer(time.Duration(timeout) * time.Second)
	defer deadline.Stop()

	s.mu.Lock()
	if offset > s.confirmed {
		s.confirmed = offset
		i := 0
		for i < len(s.queue) && s.queue[i].id < offset {
			i++
		}
		s.queue = s.queue[i:]
		s.notifyLocked()
	}
	s.mu.Unlock()

	for {
		s.mu.Lock()
		var out []json.RawMessage
		for _, q := range s.queue {
			if q.id >= offset && len(out) < limit {
				out = append(out, q.raw)
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if len(out) > 0 || timeout <= 0 {
			if out == nil {
				out = []json.RawMessage{}
			}
			writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: out})
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			timeout = 0
		case <-r.Context().Done():
			return
		}
	}
}

// readParams accepts the encodings the Bot API accepts: JSON, multipart
// (what github.com/go-telegram/bot sends), URL-encoded form, query string.
func readParams(r *http.Request) (map[string]string, error) {
	out := make(map[string]string)
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		var m map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 10<<20)).Decode(&m); err != nil {
			return nil, fmt.Errorf("decode JSON: %w", err)
		}
		for k, v := range m {
			if str, ok := v.(string); ok {
				out[k] = str
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", k, err)
			}
			out[k] = string(b)
		}
		return out, nil
	case strings.HasPrefix(ct, "multipart/form-data"):
		// A call without parameters comes as an empty body.
		if err := r.ParseMultipartForm(10 << 20); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse multipart: %w", err)
		}
		if r.MultipartForm != nil {
			for k, v := range r.MultipartForm.Value {
				out[k] = v[0]
			}
		}
	default:
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("parse form: %w", err)
		}
	}
	for k, v := range r.Form {
		if _, ok := out[k]; !ok {
			out[k] = v[0]
		}
	}
	return out, nil
}
