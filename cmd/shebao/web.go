package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/web"
)

// defaultWebAddr is where `shebao web` listens without LISTEN_ADDR: this
// machine only, for trying the chat.
const defaultWebAddr = "127.0.0.1:8080"

// newWebChat builds the web chat adapter over the engine's parts; serve
// mounts its handler on the public listener, `shebao web` serves it alone.
func newWebChat(c config, parts *engineParts, h bot.Handler, limit *bot.Limit, log *slog.Logger, m web.Metrics) (*web.Adapter, error) {
	a, err := web.New(web.Options{
		Handler: h, Sessions: parts.store, Keys: parts.store.Keys(), Coordinator: parts.store, Limit: limit,
		Origins: c.WebOrigins, TrustProxy: c.WebTrustProxy, SecureCookie: c.WebCookieSecure,
		MaxConns: c.WebMaxConns, Metrics: m, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("web chat: %w", err)
	}
	if len(c.WebOrigins) == 0 {
		log.Info("web chat on; WEB_ORIGINS not set: only this host may open the chat, and no site may frame it")
	} else {
		log.Info("web chat on", "origins", c.WebOrigins)
	}
	return a, nil
}

// runWeb serves the web chat alone on LISTEN_ADDR (127.0.0.1:8080 by
// default) with whatever is configured, the embedded defaults otherwise:
// the in-process Redis, the demo records, and verification codes printed
// to stdout, marked DEMO. It prints the address to open.
func runWeb(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("web: unexpected argument %q (configuration comes from the environment)", args[0])
	}
	env := func(k string) string {
		switch v := getenv(k); {
		case k == "WEB_CHAT":
			return "on"
		case k == "LISTEN_ADDR" && v == "":
			return defaultWebAddr
		default:
			return v
		}
	}
	c, err := loadConfig(env, false)
	if err = errors.Join(err, c.needKeys()); err != nil {
		return err
	}
	// The terminal shows the address and the demo codes; only problems
	// go to stderr.
	log := newLogger(stderr, max(c.LogLevel, slog.LevelWarn))
	m := newMetrics()
	parts, err := openEngine(ctx, c, log, m, stdout)
	if err != nil {
		return err
	}
	defer parts.close()
	limit := bot.NewLimit(bot.LimitOptions{Store: parts.store, Policy: &c.RatePolicy, Logger: log, Count: m.RateLimit})
	chat, err := newWebChat(c, parts, turnHandler(parts.records, parts.engine, m.latency), limit, log, m)
	if err != nil {
		return err
	}
	m.watchWeb(chat)
	hl := newHealth(log, healthCheck{"redis", parts.store.Ping}, healthCheck{"records", parts.records.Ping})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", hl.livez)
	mux.HandleFunc("GET /readyz", hl.readyz)
	mux.HandleFunc("GET /healthz", hl.healthz)
	mux.Handle("GET /", chat.Handler())

	ln, err := net.Listen("tcp", c.ListenAddr)
	if err != nil {
		return fmt.Errorf("web: listen on %s: %w", c.ListenAddr, err)
	}
	lim := publicLimits
	lim.MaxConns = c.MaxConns
	srv, sln, _ := newServer(mux, ln, lim, log)
	fmt.Fprintf(stdout, "shebao web chat: open http://%s/ in a browser (Ctrl-C stops it)\n", browsable(ln.Addr()))
	if c.RecordsDB == "" {
		fmt.Fprintln(stdout, "DEMO: fictional records; verification codes are printed here, not sent. Try /verify with 350102198501150037 (see README, Demo people).")
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP("http server", srv, sln) })
	g.Go(func() error {
		<-gctx.Done()
		return shutdownWeb(context.WithoutCancel(gctx), srv, chat, hl)
	})
	return g.Wait()
}

// shutdownWeb stops a server with the web chat on it: /readyz says 503,
// the chat's sockets close with "going away" once their message in hand
// is answered (pages reconnect elsewhere), and requests in flight finish.
func shutdownWeb(ctx context.Context, srv *http.Server, chat *web.Adapter, hl *health) error {
	hl.drain()
	ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		chat.Shutdown(ctx)
		close(done)
	}()
	err := srv.Shutdown(ctx)
	<-done
	return err
}

// browsable is an address to type into a browser: a wildcard host becomes
// 127.0.0.1.
func browsable(a net.Addr) string {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if t.IP == nil || t.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", t.Port)
	}
	return (&net.TCPAddr{IP: t.IP, Port: t.Port}).String()
}

// watchWeb exports the web chat's open connections.
func (m *metrics) watchWeb(a *web.Adapter) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shebao_web_connections", Help: "Web chat connections open (WEB_MAX_CONNS caps them).",
	}, func() float64 { return float64(a.Conns()) }))
}

// WebMessage and WebConn count for the web chat (web.Metrics).
func (m *metrics) WebMessage(kind, outcome string) {
	m.webMessages.WithLabelValues(kind, outcome).Inc()
}
func (m *metrics) WebConn(outcome string) { m.webConns.WithLabelValues(outcome).Inc() }
