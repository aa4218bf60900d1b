package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot"
)

// Send sends replies to a chat in order, splitting long texts. It stops at
// the first reply that cannot be sent. When the user blocked the bot it
// marks the chat in the Blocklist and returns an error matching ErrBlocked.
func (a *Adapter) Send(ctx context.Context, chatID int64, replies []bot.Reply) error {
	for i, r := range replies {
		parts := splitHTML(r.Text, maxMessageLen)
		if len(parts) == 0 {
			a.log.Warn("skip reply without text", "reply", i)
			continue
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
			err := a.call(ctx, "sendMessage", func(ctx context.Context) error {
				// JSON rather than the library's SendMessage: its multipart
				// form is built by reflection, a tenth of the CPU per
				// update under load (BENCHMARKS.md).
				var status int
				_, err := a.postJSON(ctx, "sendMessage", params, &status)
				if p, ok := ctx.Value(statusKey{}).(*int); ok {
					*p = status
				}
				return err
			})
			if errors.Is(err, ErrBlocked) {
				a.markBlocked(ctx, chatID)
			}
			if err != nil {
				return fmt.Errorf("send reply %d part %d: %w", i, j, err)
			}
		}
	}
	return nil
}

func (a *Adapter) markBlocked(ctx context.Context, chatID int64) {
	a.log.Info("user blocked the bot; stop sending to the chat")
	if bl := a.opts.Blocklist; bl != nil {
		if err := bl.MarkBlocked(ctx, chatID); err != nil {
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
				out = append(out, models.InlineKeyboardButton{Text: b.Text, CallbackData: b.Data})
			}
			rows = append(rows, out)
		}
		return &models.InlineKeyboardMarkup{InlineKeyboard: rows}
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

// call runs one Bot API call with bounded retries: 429 waits retry_after,
// 5xx and network errors back off exponentially, 403 is ErrBlocked, other
// errors are final. The context error is returned unwrapped when ctx ends.
func (a *Adapter) call(ctx context.Context, method string, fn func(ctx context.Context) error) error {
	backoff := a.firstBackoff
	var err error
	for attempt := 1; ; attempt++ {
		var status int
		cctx, cancel := context.WithTimeout(ctx, a.callTimeout)
		err = fn(withStatus(cctx, &status))
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.apiError(method, status, err)

		var wait time.Duration
		var tooMany *tgbot.TooManyRequestsError
		switch {
		case errors.As(err, &tooMany):
			wait = time.Duration(max(tooMany.RetryAfter, 1)) * time.Second
		case errors.Is(err, tgbot.ErrorForbidden):
			return fmt.Errorf("telegram %s: %w: %w", method, ErrBlocked, err)
		case status >= http.StatusInternalServerError, status == 0:
			// Status 0: no response (network error, call timeout).
			wait = backoff
			backoff = min(2*backoff, a.maxBackoff)
		default:
			return fmt.Errorf("telegram %s: %w", method, err)
		}
		if attempt >= a.maxAttempts {
			return fmt.Errorf("telegram %s: giving up after %d attempts: %w", method, attempt, err)
		}
		a.log.Debug("retry telegram call", "method", method, "status", status, "wait", wait)
		if err := a.sleep(ctx, wait); err != nil {
			return err
		}
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

// postJSON calls a Bot API method with a JSON body and returns its result.
// Failures carry the library's error values (TooManyRequestsError,
// ErrorForbidden, ErrorUnauthorized, …) so that callers classify them the
// same whichever way a call was made. It counts no metrics: callers do,
// once per attempt. status, if not nil, receives the
// HTTP status (0 when there was no response). The token never appears in
// an error.
func (a *Adapter) postJSON(ctx context.Context, method string, params any, status *int) (json.RawMessage, error) {
	if status != nil {
		*status = 0
	}
	body, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.apiURL+"/bot"+a.token+"/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL holds the token
		}
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	if status != nil {
		*status = resp.StatusCode
	}
	var r apiResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d: decode: %w", method, resp.StatusCode, err)
	}
	if r.OK {
		return r.Result, nil
	}
	switch r.ErrorCode {
	case http.StatusTooManyRequests:
		return nil, &tgbot.TooManyRequestsError{Message: method + ": " + r.Description, RetryAfter: r.Parameters.RetryAfter}
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("%s: %w: %s", method, tgbot.ErrorUnauthorized, r.Description)
	case http.StatusForbidden:
		return nil, fmt.Errorf("%s: %w: %s", method, tgbot.ErrorForbidden, r.Description)
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w: %s", method, tgbot.ErrorNotFound, r.Description)
	case http.StatusConflict:
		return nil, fmt.Errorf("%s: %w: %s", method, tgbot.ErrorConflict, r.Description)
	case http.StatusBadRequest:
		return nil, fmt.Errorf("%s: %w: %s", method, tgbot.ErrorBadRequest, r.Description)
	}
	return nil, fmt.Errorf("%s: error %d: %s", method, r.ErrorCode, r.Description)
}

// maxRequestBody bounds a buffered Bot API request: a message is at most
// 4096 characters plus its keyboard.
const maxRequestBody = 1 << 20

// statusClient records the HTTP status of each response in the request's
// context, because the library turns 5xx into an untyped error.
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
