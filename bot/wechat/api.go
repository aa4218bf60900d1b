package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/silenceper/wechat/v2/util"
)

// The adapter calls WeChat's API itself rather than through the library's
// senders: those use one process-wide HTTP client and URL rewriter
// (util.DefaultHTTPClient, util.SetURIModifier), take no context, fold the
// errcode into a string, and put the request URL — access_token and, for
// /cgi-bin/token, the AppSecret — into their errors, which would reach the
// log. The library's types still define every body.

// APIError is an errcode answer of WeChat's API.
type APIError struct {
	Path string
	Code int64
	Msg  string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wechat %s: errcode %d: %s", e.Path, e.Code, e.Msg)
}

// StatusError is an HTTP answer other than 200.
type StatusError struct {
	Path   string
	Status int
}

func (e *StatusError) Error() string { return fmt.Sprintf("wechat %s: HTTP %d", e.Path, e.Status) }

const maxAPIResponse = 1 << 20

// call POSTs body as JSON to an API path with the shared access token. A
// token WeChat calls invalid (40001, 42001, 40014) is dropped from the
// store — only if it is still the one used — and the call made once more
// with a fresh one: the refusal means nothing was done.
func (a *Adapter) call(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	for attempt := 0; ; attempt++ {
		tok, err := a.tokens.get(ctx)
		if err != nil {
			return &notSentError{err}
		}
		err = a.do(ctx, http.MethodPost, path, url.Values{"access_token": {tok}}, b, nil)
		var ae *APIError
		if attempt == 0 && errors.As(err, &ae) && badToken(ae.Code) {
			a.log.Info("access token refused; refreshing", "errcode", ae.Code)
			a.tokens.invalidate(ctx, tok)
			continue
		}
		return err
	}
}

// callGet GETs an API path with the access token and decodes the answer.
func (a *Adapter) callGet(ctx context.Context, path string, out any) error {
	tok, err := a.tokens.get(ctx)
	if err != nil {
		return &notSentError{err}
	}
	err = a.do(ctx, http.MethodGet, path, url.Values{"access_token": {tok}}, nil, out)
	var ae *APIError
	if errors.As(err, &ae) && badToken(ae.Code) {
		a.tokens.invalidate(ctx, tok)
	}
	return err
}

func badToken(code int64) bool {
	return code == codeBadToken || code == codeBadToken2 || code == codeTokenExpired
}

// do makes one API request. Errors name the path, never the URL: its
// query holds the access token or the AppSecret.
func (a *Adapter) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, a.callTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.api+path+"?"+q.Encode(), rd)
	if err != nil {
		return fmt.Errorf("wechat %s: build request", path)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("wechat %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse))
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Path: path, Status: resp.StatusCode}
	}
	if err != nil {
		return fmt.Errorf("wechat %s: read answer: %w", path, err)
	}
	var ce util.CommonError
	if err := json.Unmarshal(raw, &ce); err != nil {
		return fmt.Errorf("wechat %s: decode answer: %w", path, err)
	}
	if ce.ErrCode != 0 {
		return &APIError{Path: path, Code: ce.ErrCode, Msg: ce.ErrMsg}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("wechat %s: decode answer: %w", path, err)
		}
	}
	return nil
}

// notSent reports whether err means no request reached WeChat: the
// connection (or the name lookup) failed, so nothing was written.
func notSent(err error) bool {
	var ns *notSentError
	if errors.As(err, &ns) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// gate holds sends while the API fails: after a send that failed for
// want of the API, every send waits until one harmless probe
// (get_api_domain_ip) answers, tried with doubling backoff and jitter.
// Without it every reply in flight would try on its own, and each try
// after a timeout or a 5xx could deliver a message the user then sees
// twice.
type gate struct {
	first, most time.Duration

	mu       sync.Mutex
	failing  bool
	probing  bool
	next     time.Time
	interval time.Duration
	change   chan struct{}
}

var errGateDeadline = errors.New("WeChat API unavailable until the deadline")

func newGate(first, most time.Duration) *gate {
	return &gate{first: first, most: most, change: make(chan struct{})}
}

func (g *gate) isDown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failing
}

// down records a failure for want of the API.
func (g *gate) down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.failing {
		g.failing = true
		g.interval = g.first
		g.next = time.Now().Add(jitter(g.interval))
		g.changed()
	}
}

// up records an answer of the API.
func (g *gate) up() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failing {
		g.failing = false
		g.changed()
	}
}

func (g *gate) changed() {
	close(g.change)
	g.change = make(chan struct{})
}

// wait returns when sends may go, probing when it is the caller's turn;
// it fails at deadline or when ctx ends.
func (g *gate) wait(ctx context.Context, deadline time.Time, probe func(context.Context) error) error {
	for {
		g.mu.Lock()
		if !g.failing {
			g.mu.Unlock()
			return nil
		}
		now := time.Now()
		if !g.probing && !now.Before(g.next) {
			g.probing = true
			g.mu.Unlock()
			err := probe(ctx)
			g.mu.Lock()
			g.probing = false
			if err == nil {
				g.failing = false
			} else {
				g.interval = min(2*g.interval, g.most)
				g.next = time.Now().Add(jitter(g.interval))
			}
			g.changed()
			g.mu.Unlock()
			continue
		}
		ch := g.change
		d := deadline.Sub(now)
		if !g.probing {
			d = min(d, g.next.Sub(now))
		}
		g.mu.Unlock()
		if !now.Before(deadline) {
			return errGateDeadline
		}
		t := time.NewTimer(max(d, time.Millisecond))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// jitter spreads d over [d/2, d), so replicas do not probe in step.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// cutLine splits the first line off s.
func cutLine(s string) (line, rest string, ok bool) { return strings.Cut(s, "\n") }

// stripParens drops a trailing parenthesised part ("（110105********3418）")
// and leading symbols, for a template's short field.
func stripParens(s string) string {
	if i := strings.IndexAny(s, "（("); i > 0 {
		s = s[:i]
	}
	return strings.TrimLeft(strings.TrimSpace(s), "🔔⏳ ")
}

// trimRunes cuts s to n characters.
func trimRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
