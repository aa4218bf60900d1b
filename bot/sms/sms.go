// Package sms sends the one-time verification codes of channels that
// cannot share a Telegram contact (the web chat, WeChat): always to the
// phone on record, never to a number the user typed (the engine decides
// that; this package only delivers). Webhook posts a signed JSON request
// to an operator's gateway (Aliyun, Tencent Cloud or their own), so no
// provider's SDK is built in. Demo prints the code where shebao runs, for
// the embedded defaults only.
//
// It is a leaf: it imports nothing from this module.
package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Message is one code to deliver.
type Message struct {
	Phone string // the phone on record, in full; never logged
	Code  string // six digits
	Lang  string // "zh" or "en": the language of the text the gateway sends
	TTL   time.Duration
}

// ErrRejected means the gateway refused the request (a 4xx): retrying the
// same request will not help.
var ErrRejected = errors.New("sms gateway rejected the request")

// Webhook posts each code to URL as JSON, signed with Secret:
//
//	POST URL
//	Content-Type: application/json
//	X-Shebao-Timestamp: 1764633600
//	X-Shebao-Signature: sha256=<hex HMAC-SHA256(Secret, timestamp + "." + body)>
//
//	{"id": "<random request id>", "phone": "13900000011", "code": "123456",
//	 "lang": "zh", "ttl_seconds": 300, "text": "…the SMS text…"}
//
// The gateway should check the signature and the timestamp (reject one
// older than a few minutes), answer 2xx once it has accepted the message,
// and may use id to drop a retry it has already sent. Transient failures
// (5xx, timeouts, connection errors) are retried: three attempts of at
// most 10 s each, 0.5 s and 1 s apart, so a code is given up within about
// 32 s; a 4xx is not retried.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client // nil: one with a 10 s timeout
	// Now is the clock for the timestamp; nil means time.Now.
	Now func() time.Time
	// Backoff is the wait before retry n (1, 2, …); nil means 500 ms × n.
	Backoff func(n int) time.Duration

	once sync.Once
}

const webhookAttempts = 3

// Send delivers one code. The error never contains the phone or the code.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	w.once.Do(func() {
		if w.Client == nil {
			w.Client = &http.Client{Timeout: 10 * time.Second}
		}
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.Backoff == nil {
			w.Backoff = func(n int) time.Duration { return time.Duration(n) * 500 * time.Millisecond }
		}
	})
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("sms request id: %w", err)
	}
	body, err := json.Marshal(map[string]any{
		"id": hex.EncodeToString(id), "phone": m.Phone, "code": m.Code, "lang": m.Lang,
		"ttl_seconds": int(m.TTL.Seconds()), "text": Text(m),
	})
	if err != nil {
		return fmt.Errorf("sms request: %w", err)
	}
	var last error
	for attempt := 1; attempt <= webhookAttempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(w.Backoff(attempt - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("sms send: %w", ctx.Err())
			case <-t.C:
			}
		}
		last = w.post(ctx, body)
		if last == nil || errors.Is(last, ErrRejected) || ctx.Err() != nil {
			return last
		}
	}
	return last
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	ts := strconv.FormatInt(w.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sms request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shebao-Timestamp", ts)
	req.Header.Set("X-Shebao-Signature", "sha256="+Sign(w.Secret, ts, body))
	resp, err := w.Client.Do(req)
	if err != nil {
		// A *url.Error names the URL only; neither phone nor code.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("sms gateway: timeout")
		}
		return fmt.Errorf("sms gateway: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w: status %d", ErrRejected, resp.StatusCode)
	}
	return fmt.Errorf("sms gateway: status %d", resp.StatusCode)
}

// Sign is the signature of a request: hex HMAC-SHA256 of timestamp, ".",
// body. Gateways compare it with hmac.Equal.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	io.WriteString(mac, timestamp+".")
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Text is the SMS a code goes out as.
func Text(m Message) string {
	mins := int(m.TTL.Minutes())
	if m.Lang == "en" {
		return fmt.Sprintf("[shebao] Your verification code is %s, valid for %d minutes. Do not share it with anyone. If you did not ask for it, ignore this message.", m.Code, mins)
	}
	return fmt.Sprintf("【社保医保助手】您的验证码是 %s，%d 分钟内有效。请勿告诉他人。如非本人操作，请忽略本短信。", m.Code, mins)
}

// Demo writes each code to Out instead of sending it, clearly marked: the
// embedded defaults' stand-in for an SMS gateway, so that a demo person
// can be verified on the web chat. It must never be used with real records.
type Demo struct {
	Out io.Writer
	mu  sync.Mutex
}

// Send prints the code with the masked phone.
func (d *Demo) Send(ctx context.Context, m Message) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := fmt.Fprintf(d.Out, "DEMO SMS (not sent; demo records only) to %s: code %s, valid %d minutes\n",
		maskPhone(m.Phone), m.Code, int(m.TTL.Minutes()))
	return err
}

// maskPhone keeps the first three and last four digits: 139****0011.
func maskPhone(p string) string {
	if len(p) < 8 {
		return "****"
	}
	return p[:3] + "****" + p[len(p)-4:]
}
