package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot"
)

// Send sends replies to a chat in order, splitting long texts. It stops at
// the first reply that cannot be sent. When the user blocked the bot it
// marks the chat in the Blocklist and returns an error matching ErrBlocked.
// Temporary and Gone classify its errors. It never edits a message: a
// reminder answers no button. Its messages are bulk for the send budget
// (budget.go): Send is how reminders go out, and they wait while answers
// are queued.
func (a *Adapter) Send(ctx context.Context, chat string, replies []bot.Reply) error {
	chatID, err := chatIDOf(chat)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return a.sendAs(ctx, bot.Bulk, chatID, 0, replies)
}

// send is sendAs for an answer (bot.Interactive).
func (a *Adapter) send(ctx context.Context, chatID int64, pressed int, replies []bot.Reply) error {
	return a.sendAs(ctx, bot.Interactive, chatID, pressed, replies)
}

// sendAs is Send to a Bot API chat id, its messages in class for the send
// budget. pressed, when not 0, is the message whose button the turn
// answers: the first reply that Replaces it is shown by editing that
// message (see edit), if it can be, instead of coming as a new one.
func (a *Adapter) sendAs(ctx context.Context, class bot.SendClass, chatID int64, pressed int, replies []bot.Reply) error {
	delivered := false
	for i, r := range replies {
		parts := splitHTML(renderHTML(r), maxMessageLen)
		if len(parts) == 0 {
			a.log.Warn("skip reply without text", "reply", i)
			continue
		}
		if pressed != 0 && r.Replaces && editable(r, parts) {
			target := pressed
			pressed = 0 // one edit a turn: a second would overwrite the first
			edited, err := a.edit(ctx, class, chatID, target, parts[0], r)
			if errors.Is(err, ErrBlocked) {
				a.markBlocked(ctx, chatID)
			}
			if err != nil {
				err = fmt.Errorf("edit message with reply %d: %w", i, err)
				if delivered {
					err = &mayBeDeliveredError{err}
				}
				return err
			}
			if edited {
				delivered = true
				continue
			}
			a.log.Debug("message cannot be edited; sending the reply anew", "reply", i)
		}
		for j, p := range parts {
			params := &tgbot.SendMessageParams{
				ChatID:    chatID,
				Text:      p,
				ParseMode: models.ParseModeHTML,
				// Answers cite official pages; previews would bury them.
				LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: tgbot.True()},
			}
			if j == len(parts)-1 {
				params.ReplyMarkup = replyMarkup(r)
			}
			err := a.call(withBudget(ctx, chatID, class), "sendMessage", func(ctx context.Context) (int, error) {
				// JSON rather than the library's SendMessage: its multipart
				// form is built by reflection, a tenth of the CPU per
				// update under load (BENCHMARKS.md).
				return a.postJSON(ctx, "sendMessage", params, nil)
			})
			if errors.Is(err, ErrBlocked) {
				a.markBlocked(ctx, chatID)
			}
			if err != nil {
				err = fmt.Errorf("send reply %d part %d: %w", i, j, err)
				if delivered {
					// Sending the replies again would repeat what went out.
					err = &mayBeDeliveredError{err}
				}
				return err
			}
			delivered = true
		}
	}
	return nil
}

// editable reports whether a reply can take the place of a message by an
// edit: it fits one message, and it needs no reply keyboard (an edited
// message carries only inline buttons).
func editable(r bot.Reply, parts []string) bool {
	return len(parts) == 1 && r.AskContact == "" && !r.RemoveKeyboard
}

// edit shows a reply in place of message id of the chat: its text and
// inline keyboard (none when the reply has no buttons). edited is false,
// with no error, when Telegram refused the edit with a 400: the message
// can no longer be edited (older than 48 hours), is gone (the user
// deleted it) or holds no text; the caller then sends the reply anew, and
// since a refused edit changed nothing, the reply is not shown twice. An
// edit is retried like any call; repeating one is harmless, and
// Telegram's "message is not modified" (the chat already shows the reply,
// maybe from an earlier attempt) is success. An edit that may have been
// applied (an attempt timed out or met a 5xx) is never reported as
// refused, whatever a later attempt says, so that no duplicate follows it.
func (a *Adapter) edit(ctx context.Context, class bot.SendClass, chatID int64, id int, text string, r bot.Reply) (edited bool, err error) {
	params := &tgbot.EditMessageTextParams{
		ChatID:             chatID,
		MessageID:          id,
		Text:               text,
		ParseMode:          models.ParseModeHTML,
		LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: tgbot.True()},
		ReplyMarkup:        replyMarkup(r),
	}
	err = a.call(withBudget(ctx, chatID, class), "editMessageText", func(ctx context.Context) (int, error) {
		return a.postJSON(ctx, "editMessageText", params, nil)
	})
	desc, bad := badRequest(err)
	var maybe *mayBeDeliveredError
	switch {
	case err == nil, bad && strings.Contains(desc, "message is not modified"):
		return true, nil
	case bad && !errors.As(err, &maybe):
		return false, nil
	}
	return false, err
}

// badRequest reports whether err is a 400 answer of the Bot API, and its
// description in lower case.
func badRequest(err error) (desc string, ok bool) {
	var be *botError
	if !errors.As(err, &be) || be.code != http.StatusBadRequest {
		return "", false
	}
	return strings.ToLower(be.desc), true
}

// Temporary reports whether a failed Send is worth trying again later and
// cannot have been delivered in part or whole: Telegram asked to slow down
// (429), or no request reached it (the connection could not be made). It is
// false for a refusal that a retry meets again (400 "chat not found", "can't
// parse entities", 403), and for timeouts and 5xx answers, after which the
// message may well have been sent: a retry could send it twice.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	var maybe *mayBeDeliveredError
	if errors.As(err, &maybe) {
		return false
	}
	var tooMany *tgbot.TooManyRequestsError
	return errors.As(err, &tooMany) || notSent(err)
}

// Gone reports whether a failed Send means the chat will never take a
// message: Telegram does not know the chat, or the user deleted their
// account. A blocked bot is ErrBlocked.
func Gone(err error) bool {
	var be *botError
	if !errors.As(err, &be) || (be.code != http.StatusBadRequest && be.code != http.StatusForbidden) {
		return false
	}
	d := strings.ToLower(be.desc)
	return strings.Contains(d, "chat not found") || strings.Contains(d, "user is deactivated")
}

// notSent reports whether err means no request reached the Bot API: the
// connection (or the one to the proxy, or the name lookup) failed, so
// nothing was written.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// mayBeDeliveredError marks a failure after which (part of) the message may
// have reached the chat, whatever the last attempt's error says.
type mayBeDeliveredError struct{ err error }

func (e *mayBeDeliveredError) Error() string { return e.err.Error() }
func (e *mayBeDeliveredError) Unwrap() error { return e.err }

// botError is an error answer of the Bot API. It unwraps to the library's
// error value for its code (tgbot.ErrorForbidden, …), so callers classify
// it the same whichever way a call was made.
type botError struct {
	method string
	code   int
	desc   string
	kind   error // nil for a code the library has no value for
}

func (e *botError) Error() string {
	if e.kind == nil {
		return fmt.Sprintf("%s: error %d: %s", e.method, e.code, e.desc)
	}
	return fmt.Sprintf("%s: %v: %s", e.method, e.kind, e.desc)
}

func (e *botError) Unwrap() error { return e.kind }

func (a *Adapter) markBlocked(ctx context.Context, chatID int64) {
	a.log.Info("user blocked the bot; stop sending to the chat")
	if bl := a.opts.Blocklist; bl != nil {
		if err := bl.MarkBlocked(ctx, tgID(chatID)); err != nil {
			a.log.Warn("mark chat blocked", "err", err)
		}
	}
}

// replyMarkup picks the one keyboard a message can carry. Inline buttons win
// over a reply keyboard; the engine never asks for both.
func replyMarkup(r bot.Reply) models.ReplyMarkup {
	switch {
	case len(r.Buttons) > 0:
		rows := make([][]models.InlineKeyboardButton, 0, len(r.Buttons))
		for _, row := range r.Buttons {
			out := make([]models.InlineKeyboardButton, 0, len(row))
			for _, b := range row {
				switch b.Kind {
				case bot.Callback:
					out = append(out, models.InlineKeyboardButton{Text: b.Text, CallbackData: b.Data})
				case bot.URL:
					if u := safeURL(b.Data); u != "" {
						out = append(out, models.InlineKeyboardButton{Text: b.Text, URL: u})
					}
				}
				// A Code button needs nothing on Telegram: the user types
				// the code.
			}
			if len(out) > 0 {
				rows = append(rows, out)
			}
		}
		if len(rows) > 0 {
			return &models.InlineKeyboardMarkup{InlineKeyboard: rows}
		}
		return nil
	case r.AskContact != "":
		return &models.ReplyKeyboardMarkup{
			Keyboard:        [][]models.KeyboardButton{{{Text: r.AskContact, RequestContact: true}}},
			OneTimeKeyboard: true,
			ResizeKeyboard:  true,
		}
	case r.RemoveKeyboard:
		return &models.ReplyKeyboardRemove{RemoveKeyboard: true}
	}
	return nil
}

// call runs one Bot API call and retries what may pass: 429 waits
// retry_after; 5xx, timeouts and network errors go through the gate (see
// apiGate), which paces the attempts with backoff and jitter; 403 is
// ErrBlocked and other errors are final. It gives up after retryFor
// (about a minute: a short outage costs no reply) or, when set,
// maxAttempts. The caller holds its update (unconfirmed, unreleased, or
// the webhook request unanswered) the whole time, so an update whose
// replies are given up on is the only one let go unanswered. fn returns
// the HTTP status of its response (0 when there was none). The context
// error is returned unwrapped when ctx ends.
func (a *Adapter) call(ctx context.Context, method string, fn func(ctx context.Context) (status int, err error)) error {
	maybeDone, err := a.attempt(ctx, method, fn)
	if maybeDone && err != nil && ctx.Err() == nil {
		// An earlier attempt timed out or met a 5xx and may have been
		// carried out, whatever the last attempt's error says.
		err = &mayBeDeliveredError{err}
	}
	return err
}

// attempt is call's loop; maybeDone reports an attempt that failed in a way
// that does not rule out that Telegram carried it out.
func (a *Adapter) attempt(ctx context.Context, method string, fn func(ctx context.Context) (int, error)) (maybeDone bool, err error) {
	deadline := time.Now().Add(a.retryFor)
	var last error
	for attempt := 1; ; attempt++ {
		// Every attempt of a message is a send: a retry after a 429
		// takes a slot of the budget too, or retries would pile onto it.
		if err := a.budget.waitFor(ctx); err != nil {
			return maybeDone, err
		}
		probe, err := a.gate.wait(ctx, deadline)
		if err != nil {
			if ctx.Err() != nil {
				return maybeDone, ctx.Err()
			}
			return maybeDone, fmt.Errorf("telegram %s: giving up after %d attempts in %s: %w", method, attempt-1, a.retryFor, last)
		}
		cctx, cancel := context.WithTimeout(ctx, a.callTimeout)
		began := time.Now()
		status, err := fn(cctx)
		if a.opts.Metrics != nil {
			a.opts.Metrics.APICall(method, time.Since(began))
		}
		cancel()
		if err == nil {
			a.gate.report(probe, apiUp, a.firstBackoff, a.maxBackoff)
			return maybeDone, nil
		}
		if ctx.Err() != nil {
			a.gate.report(probe, apiUnknown, a.firstBackoff, a.maxBackoff)
			return maybeDone, ctx.Err()
		}
		a.apiError(method, status, err)
		if !refused(err) && !notSent(err) {
			maybeDone = true
		}
		last = err

		var tooMany *tgbot.TooManyRequestsError
		var wait time.Duration
		switch {
		case errors.As(err, &tooMany):
			a.gate.report(probe, apiUp, a.firstBackoff, a.maxBackoff)
			wait = time.Duration(max(tooMany.RetryAfter, 1)) * time.Second
		case errors.Is(err, tgbot.ErrorForbidden):
			a.gate.report(probe, apiUp, a.firstBackoff, a.maxBackoff)
			return maybeDone, fmt.Errorf("telegram %s: %w: %w", method, ErrBlocked, err)
		case status >= http.StatusInternalServerError, status == 0:
			// Status 0: no response (network error, call timeout). The
			// gate makes this call, or another, wait before the next try.
			a.gate.report(probe, apiDown, a.firstBackoff, a.maxBackoff)
		default:
			a.gate.report(probe, apiUp, a.firstBackoff, a.maxBackoff)
			return maybeDone, fmt.Errorf("telegram %s: %w", method, err)
		}
		if a.maxAttempts > 0 && attempt >= a.maxAttempts {
			return maybeDone, fmt.Errorf("telegram %s: giving up after %d attempts: %w", method, attempt, err)
		}
		if wait > 0 {
			if time.Until(deadline) < wait {
				return maybeDone, fmt.Errorf("telegram %s: retry_after %s is past the retry window: %w", method, wait, err)
			}
			a.log.Debug("retry telegram call", "method", method, "status", status, "wait", wait)
			if err := a.sleep(ctx, wait); err != nil {
				return maybeDone, err
			}
		}
	}
}

// refused reports whether err is a 4xx answer of the Bot API: Telegram
// turned the call down and did not carry it out.
func refused(err error) bool {
	var be *botError
	if errors.As(err, &be) {
		return be.code >= 400 && be.code < 500
	}
	var tooMany *tgbot.TooManyRequestsError
	if errors.As(err, &tooMany) {
		return true
	}
	// Calls made through the library carry only its error values.
	for _, e := range []error{tgbot.ErrorBadRequest, tgbot.ErrorUnauthorized, tgbot.ErrorForbidden, tgbot.ErrorNotFound, tgbot.ErrorConflict} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// viaLibrary adapts a call made through github.com/go-telegram/bot to call.
// The library turns 5xx into an untyped error, so statusClient records the
// response's status through the request's context.
func viaLibrary(fn func(ctx context.Context) error) func(ctx context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		var status int
		err := fn(withStatus(ctx, &status))
		return status, err
	}
}

func (a *Adapter) apiError(method string, status int, err error) {
	var tooMany *tgbot.TooManyRequestsError
	switch {
	case errors.As(err, &tooMany):
		status = http.StatusTooManyRequests
	case status == http.StatusOK:
		// Telegram answers some errors with 200 and ok=false; the
		// library's error is then the only signal.
		status = 0
	}
	if a.opts.Metrics != nil {
		a.opts.Metrics.APIError(method, status)
	}
}

// postJSON calls a Bot API method with a JSON body and decodes its result
// into result, which may be nil when the caller needs none (sendMessage:
// Telegram echoes the whole message back, and parsing that was a tenth of
// the CPU under load). It returns the HTTP status (0 when there was no
// response). Failures carry the library's error values
// (TooManyRequestsError, ErrorForbidden, ErrorUnauthorized, …) so that
// callers classify them the same whichever way a call was made. It counts
// no metrics: callers do, once per attempt. The token never appears in an
// error.
func (a *Adapter) postJSON(ctx context.Context, method string, params any, result any) (int, error) {
	body, err := json.Marshal(params)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.apiURL+"/bot"+a.token+"/"+method, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build %s request: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL holds the token
		}
		return 0, fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	buf := responseBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledResponse {
			buf.Reset()
			responseBuffers.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxResponseBody)); err != nil {
		return status, fmt.Errorf("%s: HTTP %d: read: %w", method, status, err)
	}
	if result == nil && bytes.HasPrefix(buf.Bytes(), okPrefix) {
		return status, nil
	}
	if result == nil {
		result = new(json.RawMessage)
	}
	r := apiResponse{Result: result}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		return status, fmt.Errorf("%s: HTTP %d: decode: %w", method, status, err)
	}
	if r.OK {
		return status, nil
	}
	be := &botError{method: method, code: r.ErrorCode, desc: r.Description}
	switch r.ErrorCode {
	case http.StatusTooManyRequests:
		return status, &tgbot.TooManyRequestsError{Message: method + ": " + r.Description, RetryAfter: r.Parameters.RetryAfter}
	case http.StatusUnauthorized:
		be.kind = tgbot.ErrorUnauthorized
	case http.StatusForbidden:
		be.kind = tgbot.ErrorForbidden
	case http.StatusNotFound:
		be.kind = tgbot.ErrorNotFound
	case http.StatusConflict:
		be.kind = tgbot.ErrorConflict
	case http.StatusBadRequest:
		be.kind = tgbot.ErrorBadRequest
	}
	return status, be
}

// okPrefix starts every successful Bot API answer; Telegram writes "ok"
// first.
var okPrefix = []byte(`{"ok":true,`)

const (
	maxResponseBody   = 64 << 20
	maxPooledResponse = 1 << 20 // larger buffers are left to the collector
)

// responseBuffers recycles response bodies: decoding copies what it keeps.
var responseBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxRequestBody bounds a buffered Bot API request: a message is at most
// 4096 characters plus its keyboard.
const maxRequestBody = 1 << 20

// statusClient records the HTTP status of each response in the request's
// context (see withStatus), because the library turns 5xx into an untyped
// error. Only calls made through the library need it: postJSON returns the
// status.
type statusClient struct{ c *http.Client }

type statusKey struct{}

func withStatus(ctx context.Context, status *int) context.Context {
	return context.WithValue(ctx, statusKey{}, status)
}

func (s statusClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.ContentLength <= 0 {
		// The library streams its multipart form through an io.Pipe, which
		// goes out chunked in many small writes (a syscall each). Requests
		// are a few kilobytes: buffered, each goes out in one write. This
		// tripled throughput under load (BENCHMARKS.md).
		body, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		if len(body) > maxRequestBody {
			return nil, fmt.Errorf("request body over %d bytes", maxRequestBody)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	resp, err := s.c.Do(req)
	if resp != nil {
		if p, ok := req.Context().Value(statusKey{}).(*int); ok {
			*p = resp.StatusCode
		}
	}
	return resp, err
}
