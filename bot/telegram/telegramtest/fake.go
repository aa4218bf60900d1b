// Package telegramtest is a fake Telegram Bot API server for tests and load
// runs: it queues updates for getUpdates (long polling, offsets and
// confirmation as Telegram does them), records every call, answers the
// methods the bot uses and can be told to fail. Point an adapter at URL.
package telegramtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

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

// Message is a message the bot sent with sendMessage.
type Message struct {
	ChatID      int64
	Text        string
	ParseMode   string
	ReplyMarkup string // JSON, "" when none
}

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
	sent      []Message
	failures  map[string][]failure
	blocked   map[int64]bool
	chatFails map[int64]chatFailure
	holds     map[string]chan struct{}
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
		holds:     make(map[string]chan struct{}),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
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

// CallbackUpdate is a press of an inline button carrying data.
func CallbackUpdate(chatID int64, data string) models.Update {
	return models.Update{CallbackQuery: &models.CallbackQuery{
		ID:   "cb" + strconv.FormatInt(chatID, 10) + "-" + data,
		From: user(chatID),
		Message: models.MaybeInaccessibleMessage{
			Type:    models.MaybeInaccessibleMessageTypeMessage,
			Message: message(chatID, func(m *models.Message) { m.Text = "…" }),
		},
		Data: data,
	}}
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

// Sent returns the messages sent so far, in order.
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
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

// Block makes sendMessage and sendChatAction to chatID fail with 403, as
// when the user blocked the bot.
func (s *Server) Block(chatID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[chatID] = true
}

// FailChat makes every sendMessage and sendChatAction to chatID fail with
// code and description, as Telegram answers for a chat that is gone (400
// "Bad Request: chat not found") or a deleted account (400 "Bad Request:
// user is deactivated").
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
			// Like Telegram, refuse text that is not valid in its parse mode
			// or is too long, so tests catch what users would never see.
			text := params["text"]
			if params["parse_mode"] == "HTML" {
				if _, err := CheckHTML(text); err != nil {
					writeError(w, http.StatusBadRequest, "Bad Request: can't parse entities: "+err.Error(), 0)
					return
				}
			}
			if n := len(utf16.Encode([]rune(text))); n > 4096 || strings.TrimSpace(text) == "" {
				writeError(w, http.StatusBadRequest, "Bad Request: message is too long or empty", 0)
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
		if !blocked && method == "sendMessage" {
			s.sent = append(s.sent, Message{
				ChatID: chatID, Text: params["text"], ParseMode: params["parse_mode"], ReplyMarkup: params["reply_markup"],
			})
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
	case "answerCallbackQuery", "setWebhook", "deleteWebhook", "setMyCommands":
		writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: true})
	case "getMe":
		writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: map[string]any{
			"id": 42, "is_bot": true, "first_name": "Shebao", "username": BotUsername,
		}})
	default:
		writeError(w, http.StatusNotFound, "Not Found: method not found", 0)
	}
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
