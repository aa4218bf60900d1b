// Package web is the web chat channel of the engine: one page (embedded
// in the binary, loading nothing from another host) and a WebSocket per
// browser tab, speaking the JSON frames of PROTOCOL.md. It turns frames
// into bot.Messages, orders and dedupes them through the Coordinator,
// asks the rate limits, hands them to the Handler and renders the
// bot.Replies as frames. It is the only importer of
// github.com/coder/websocket.
//
// A browser's session is a random 128-bit token in an HttpOnly cookie.
// Only a keyed tag of it is kept (Sessions, in Redis, with a sliding TTL)
// and the engine knows the session as bot.ID("web", tag), so neither logs
// nor Redis hold the token. Everything a replica keeps about a connection
// lives as long as the connection: state is the engine's, in Redis, so any
// replica serves any reconnect.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keylock"
	"github.com/shebao/shebao/bot/keyring"
)

// Sessions keeps the web chat's sessions where every replica sees them
// (bot/redisstore). A session is named by keyed tags of its token, the
// current key's first (a key rotation must not log anyone out), and holds
// the engine identity it was given when it began.
type Sessions interface {
	CreateWebSession(ctx context.Context, tag, id string, ttl time.Duration) error
	// TouchWebSession returns the identity of the session one of tags
	// names and extends its life to ttl; "" when there is none.
	TouchWebSession(ctx context.Context, tags []string, ttl time.Duration) (id string, err error)
	EndWebSession(ctx context.Context, tags []string) error
}

// Limit is the per-user rate limit (bot.Limit), as bot/telegram uses it.
type Limit interface {
	Check(ctx context.Context, users []string, now time.Time) []bot.Verdict
	Quiet(user string, now time.Time) bool
}

// Metrics receives counts; implementations must be safe for concurrent
// use. Message kinds: text, button, start (the greeting of a new session).
// Outcomes: handled, duplicate, error, aborted, limited (skipped by the
// per-session limit), ip_limited, too_long, busy (too many waiting on the
// connection), ended (the session was gone). Conn outcomes: opened,
// refused_origin, refused_full, refused_ip, refused_draining, closed.
type Metrics interface {
	WebMessage(kind, outcome string)
	WebConn(outcome string)
}

// Options configure an Adapter. Handler, Sessions and Keys are required;
// every other field has a default.
type Options struct {
	Handler  bot.Handler
	Sessions Sessions
	// Keys tags session tokens (SHEBAO_KEYS).
	Keys *keyring.Ring
	// Coordinator orders and dedupes the messages of one session across
	// tabs and replicas; nil orders them in this process only.
	Coordinator bot.Coordinator
	// Limit is the per-session rate limit; nil: none.
	Limit Limit
	// Origins are the origins besides the page's own host that may open
	// the socket and frame the page (WEB_ORIGINS), as
	// "https://ybj.example.gov.cn".
	Origins []string
	// TrustProxy are the proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (WEB_TRUST_PROXY). Empty: none, the
	// peer's address is the client's.
	TrustProxy []netip.Prefix
	// SecureCookie marks the cookie Secure even on a plain-HTTP request
	// (TLS ends at a proxy that is not in TrustProxy). A request that came
	// over TLS, or through a trusted proxy that says https, gets it anyway.
	SecureCookie bool
	// MaxConns caps this process's chat connections (default 5,000);
	// MaxConnsPerIP those of one client address (default 200: a whole
	// office or a carrier's NAT may share one).
	MaxConns      int
	MaxConnsPerIP int
	// IPRate limits the messages of one client address, in this process
	// (default a burst of 60, then 120 a minute).
	IPRate *bot.RatePolicy
	// SessionTTL is how long an idle session is kept (default 30 days);
	// NewSessionTTL how long one that never sent anything is (default a
	// day).
	SessionTTL, NewSessionTTL time.Duration
	// IdleTimeout closes a connection on which the user sent nothing for
	// that long (default 15 minutes); the page reconnects when the user
	// comes back. PingInterval is how often the server pings (default 30 s;
	// a missed pong within PingInterval closes the connection).
	IdleTimeout, PingInterval time.Duration
	// HandleTimeout bounds the handling of one message (default 60 s).
	HandleTimeout time.Duration
	// WriteTimeout bounds the writing of one frame (default 10 s): a client
	// that does not read is dropped.
	WriteTimeout time.Duration
	// TypingDelay is the handler time after which a typing frame is sent
	// (default 300 ms).
	TypingDelay time.Duration
	Metrics     Metrics
	Logger      *slog.Logger
	// Now is the clock stamped on messages; time.Now when nil.
	Now func() time.Time
}

// Limits of what a client may send (PROTOCOL.md).
const (
	// MaxFrameIn is the largest client frame; a larger one closes the
	// connection (1009). The page never sends one: it checks first.
	MaxFrameIn = 8 << 10
	// MaxText is the longest message, in characters.
	MaxText = 2000
	// maxClientID bounds a client message id.
	maxClientID = 64
	// queueLen is how many messages may wait on one connection.
	queueLen = 8
)

// Close codes the page acts on (PROTOCOL.md).
const (
	// CloseSessionEnded: the session was deleted (/forget, or it expired
	// while connected); reconnect at once for a new one.
	CloseSessionEnded websocket.StatusCode = 4000
	// CloseIdle: nothing was sent for IdleTimeout; reconnect when the
	// user comes back.
	CloseIdle websocket.StatusCode = 4001
)

const cookieName = "shebao_sid"

// tokenDomain separates the tags of session tokens from every other
// keyed tag.
const tokenDomain = "websession"

// Adapter is the web chat transport. Its Handler serves the page, its
// files and the socket.
type Adapter struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	origins map[string]bool
	fa      string // frame-ancestors of the CSP
	static  *static
	ipLimit *bot.Limit // messages per client address, this process only

	conns    atomic.Int64
	perIP    ipCounts
	locks    keylock.Locks[string] // one session's messages at a time in this process
	draining atomic.Bool
	live     sync.Map // *conn → struct{}: closed at Shutdown
	wg       sync.WaitGroup
}

// New builds an Adapter.
func New(o Options) (*Adapter, error) {
	var problems []string
	if o.Handler == nil {
		problems = append(problems, "handler is nil")
	}
	if o.Sessions == nil {
		problems = append(problems, "sessions store is nil")
	}
	if o.Keys == nil {
		problems = append(problems, "keyring is nil")
	}
	origins := map[string]bool{}
	var fa []string
	for _, s := range o.Origins {
		origin, err := ParseOrigin(s)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if !origins[origin] {
			origins[origin] = true
			fa = append(fa, origin)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("web options: %s", strings.Join(problems, "; "))
	}
	setDefault(&o.MaxConns, 5000)
	setDefault(&o.MaxConnsPerIP, 200)
	setDefault(&o.SessionTTL, 30*24*time.Hour)
	setDefault(&o.NewSessionTTL, 24*time.Hour)
	setDefault(&o.IdleTimeout, 15*time.Minute)
	setDefault(&o.PingInterval, 30*time.Second)
	setDefault(&o.HandleTimeout, 60*time.Second)
	setDefault(&o.WriteTimeout, 10*time.Second)
	setDefault(&o.TypingDelay, 300*time.Millisecond)
	if o.IPRate == nil {
		o.IPRate = &bot.RatePolicy{Burst: 60, Every: 500 * time.Millisecond, Notice: 10 * time.Second}
	}
	a := &Adapter{opts: o, log: o.Logger, now: o.Now, origins: origins, static: newStatic()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.fa = "'none'"
	if len(fa) > 0 {
		a.fa = strings.Join(fa, " ")
	}
	a.ipLimit = bot.NewLimit(bot.LimitOptions{Policy: o.IPRate})
	return a, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ParseOrigin checks an origin for WEB_ORIGINS and returns it as browsers
// send it: scheme://host[:port], lower case, without a default port.
func ParseOrigin(s string) (string, error) {
	s = strings.TrimSpace(s)
	scheme, rest, ok := strings.Cut(s, "://")
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "https" && scheme != "http") || rest == "" || strings.ContainsAny(rest, "/?#@ *") {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], such as https://ybj.example.gov.cn", s)
	}
	host := strings.ToLower(rest)
	if h, port, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
			host = h
		}
	}
	return scheme + "://" + host, nil
}

// Handler serves "/" (the page), "/static/…" (its files) and "/ws" (the
// chat socket).
func (a *Adapter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.servePage)
	mux.HandleFunc("GET /index.html", a.servePage)
	mux.HandleFunc("GET /static/{file}", a.serveStatic)
	mux.HandleFunc("GET /ws", a.serveSocket)
	return a.secure(mux)
}

// secure sets the headers every answer carries.
func (a *Adapter) secure(next http.Handler) http.Handler {
	csp := "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"frame-ancestors " + a.fa + "; base-uri 'none'; form-action 'none'; object-src 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if len(a.origins) == 0 {
			h.Set("X-Frame-Options", "DENY") // for browsers before frame-ancestors
		}
		next.ServeHTTP(w, r)
	})
}

// originAllowed: no Origin (not a browser: a browser always sends one
// with a WebSocket handshake), the page's own host, or one of Origins.
func (a *Adapter) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, err := ParseOrigin(origin)
	if err != nil {
		return false // "null" (a sandboxed frame, a file) and the like
	}
	if a.origins[o] {
		return true
	}
	_, host, _ := strings.Cut(o, "://")
	return strings.EqualFold(host, strings.ToLower(r.Host)) || strings.EqualFold(host, stripDefaultPort(strings.ToLower(r.Host)))
}

func stripDefaultPort(host string) string {
	for _, p := range []string{":80", ":443"} {
		if h, ok := strings.CutSuffix(host, p); ok {
			return h
		}
	}
	return host
}

// Shutdown stops taking connections and closes the open ones with "going
// away" (1001), so that their pages reconnect to another replica, once
// the message each is handling is answered or ctx ends.
func (a *Adapter) Shutdown(ctx context.Context) {
	a.draining.Store(true)
	a.live.Range(func(k, _ any) bool {
		go k.(*conn).goAway(ctx)
		return true
	})
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		a.live.Range(func(k, _ any) bool {
			k.(*conn).ws.CloseNow()
			return true
		})
	}
}

// Conns is the number of open chat connections, for metrics.
func (a *Adapter) Conns() int { return int(a.conns.Load()) }

func (a *Adapter) countConn(outcome string) {
	if a.opts.Metrics != nil {
		a.opts.Metrics.WebConn(outcome)
	}
}

func (a *Adapter) countMessage(kind, outcome string) {
	if a.opts.Metrics != nil {
		a.opts.Metrics.WebMessage(kind, outcome)
	}
}

// ipCounts counts the connections of each client address.
type ipCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *ipCounts) add(ip string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]int)
	}
	if c.m[ip] >= max {
		return false
	}
	c.m[ip]++
	return true
}

func (c *ipCounts) remove(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[ip]--; c.m[ip] <= 0 {
		delete(c.m, ip)
	}
}

// errSessionEnded: the session was deleted while the connection was open.
var errSessionEnded = errors.New("web session ended")
