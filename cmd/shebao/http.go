package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// httpLimits are the limits of one HTTP listener.
type httpLimits struct {
	ReadHeader     time.Duration // to read a request's header
	Read           time.Duration // to read a request's header and body, on routes that do not set their own
	Write          time.Duration // from the end of the header to the end of the answer, likewise
	Idle           time.Duration // a keep-alive connection waiting for its next request
	MaxHeaderBytes int
	MaxConns       int           // 0: no cap
	HeaderGrace    time.Duration // see connLimit
}

// publicLimits guard LISTEN_ADDR, which anyone on the internet can reach.
// Its legitimate clients are Telegram (webhook deliveries, at most
// setWebhook's max_connections of 100 at once), load balancers and
// probes: all of them send a whole request at once and answer at once, so
// each limit is far above what they need and far below what an attacker
// would like. MaxConns comes from LISTEN_MAX_CONNS.
var publicLimits = httpLimits{
	// A header fits in a packet or two; 5 s is ample on a congested path
	// and is the longest a connection that never finishes one holds its
	// slot (less when the cap is reached: HeaderGrace).
	ReadHeader: 5 * time.Second,
	// Header and body of every route but the webhook, which reads its
	// own body under webhookLimits. Nothing else reads a body, but the
	// server discards up to 256 KiB of one after the handler to keep the
	// connection: a trickled body would hold a slot forever without this.
	Read: 10 * time.Second,
	// Every route but the webhook answers at once (/readyz waits at most
	// for its checks, 2 s each); the webhook extends its own.
	Write: 10 * time.Second,
	// Above the 60 s after which the proxies usually in front (nginx's
	// upstream keepalive_timeout, cloud load balancers) drop an idle
	// connection, so they close it first and never send a request on a
	// connection this server has just closed. Under the cap an idle
	// connection is shed at once when a newcomer needs its slot.
	Idle: 90 * time.Second,
	// Telegram's and a proxy's headers take well under 2 KiB. (The server
	// reads up to 4 KiB beyond this before answering 431.)
	MaxHeaderBytes: 16 << 10,
	// When the cap is full, a connection that has not finished its first
	// header after 250 ms gives its slot to a newcomer. A client that
	// means it sends the header right after the handshake, and one that
	// waited in the accept queue has it buffered already. A full cap of
	// stalled connections then turns over MaxConns/HeaderGrace times a
	// second (4,096), so a probe behind them waits little: with 1 s, 3,000
	// trickling connections held /livez up to 1.7 s, with 250 ms 0.27 s.
	HeaderGrace: 250 * time.Millisecond,
}

// debugLimits guard DEBUG_ADDR, a private listener (metrics and pprof).
var debugLimits = httpLimits{
	ReadHeader: 5 * time.Second,
	Read:       10 * time.Second,
	// /debug/pprof/profile and /trace stream for the ?seconds asked, and
	// refuse a duration longer than this.
	Write:          5 * time.Minute,
	Idle:           90 * time.Second,
	MaxHeaderBytes: 16 << 10,
}

// webhookLimits are the webhook route's deadlines, which replace the
// server's for it.
var webhookLimits = struct {
	Body, Handle, WriteSlack time.Duration
}{
	// Telegram sends an update (at most 1 MiB, usually a few KiB) with its
	// header; a body still arriving after 10 s is not Telegram.
	Body: 10 * time.Second,
	// The handler answers 200 only after the update was handled and its
	// replies sent: an LLM phrasing takes up to 15 s (LLMTimeout), and a
	// Bot API send may wait out a 429's retry_after. After 60 s the
	// handling is cancelled and the update answered 503, so Telegram
	// delivers it again.
	Handle: 60 * time.Second,
	// Time to write that answer once the handling ends.
	WriteSlack: 5 * time.Second,
}

// newServer builds an http.Server with lim for h, and the listener it must
// serve on: ln itself, or ln under a connection cap.
func newServer(h http.Handler, ln net.Listener, lim httpLimits, log *slog.Logger) (*http.Server, net.Listener, *connLimit) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if lim.MaxConns <= 0 {
		return srv, ln, nil
	}
	cl := newConnLimit(ln, lim.MaxConns, lim.HeaderGrace)
	srv.ConnState = cl.track
	return srv, cl, cl
}

// withWebhookDeadlines gives the webhook route its own deadlines in place
// of the server's: body within body, handling within handle (the request's
// context ends then), the answer written within writeSlack after that.
// Once the body has been read to its end the server lifts the read
// deadline itself, so a body deadline passing during the handling does not
// cancel it (TestWebhookHandlingOutlivesBodyDeadline).
func withWebhookDeadlines(next http.Handler, body, handle, writeSlack time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rc := http.NewResponseController(w)
		// Both calls fail only for a ResponseWriter without a connection
		// (a test recorder); the server's deadlines then stay.
		_ = rc.SetReadDeadline(start.Add(body))
		_ = rc.SetWriteDeadline(start.Add(handle + writeSlack))
		ctx, cancel := context.WithTimeout(r.Context(), handle)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
