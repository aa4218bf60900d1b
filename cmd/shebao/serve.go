package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram"
	"github.com/shebao/shebao/bot/web"
)

// shutdownTimeout bounds how long in-flight webhook requests may take to
// finish after SIGTERM.
const shutdownTimeout = 15 * time.Second

// runServe runs the Telegram bot, and with WEB_CHAT=on the web chat on the
// same listener (or the web chat alone, without TELEGRAM_BOT_TOKEN), until
// ctx is cancelled, then finishes the updates in hand and returns nil.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("serve: unexpected argument %q (configuration comes from the environment)", args[0])
	}
	c, err := loadConfig(getenv, true)
	if err != nil {
		return err
	}
	log := newLogger(stdout, c.LogLevel)
	m := newMetrics()
	parts, err := openEngine(ctx, c, log, m, stderr)
	if err != nil {
		return err
	}
	defer parts.close()
	m.watchStore(parts.store.RoundTrips, parts.store.Errors)
	m.watchFAQ(parts.faq)
	m.watchRecords(parts.records)

	limit := bot.NewLimit(bot.LimitOptions{Store: parts.store, Policy: &c.RatePolicy, Logger: log, Count: m.RateLimit})
	handler := turnHandler(parts.records, parts.engine, m.latency)
	// Telegram unless only the web chat or WeChat is served (no token).
	var tg *telegram.Adapter
	if c.Token != "" {
		tg, err = telegram.New(telegram.Options{
			Token: c.Token, APIURL: c.APIURL, WebhookURL: c.WebhookURL, WebhookSecret: c.WebhookSecret,
			Handler: handler, Limit: limit,
			Coordinator: parts.store, Blocklist: parts.store, Handoff: parts.store, Webhooks: parts.store, Metrics: m, Logger: log,
			Budget: parts.store, SendLimits: c.sendLimits(), BudgetMetrics: newBudgetMetrics(m.reg),
		})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		m.watchTelegram(tg)
		parts.setPushLinks(func() []bot.PushLink {
			if u := tg.StartURL(); u != "" {
				return []bot.PushLink{{Channel: bot.ChannelTelegram, URL: u}}
			}
			return nil
		})
	}
	wx, err := newWeChat(c, parts, handler, limit, log, m.watchWeChat())
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	hl := newHealth(log,
		healthCheck{"redis", parts.store.Ping},
		healthCheck{"records", parts.records.Ping},
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", hl.livez)
	mux.HandleFunc("GET /readyz", hl.readyz)
	mux.HandleFunc("GET /healthz", hl.healthz)
	var chat *web.Adapter
	if c.WebChat {
		// The page, its files and the socket: every GET the probes do
		// not take.
		if chat, err = newWebChat(c, parts, handler, limit, log, m); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		mux.Handle("GET /", chat.Handler())
		m.watchWeb(chat)
	}
	if wx != nil {
		// By method, so that the path does not conflict with the web
		// chat's "GET /": WeChat checks the URL with a GET and posts
		// messages.
		h := wechatHandler(wx)
		mux.Handle("GET "+c.WeChat.Path, h)
		mux.Handle("POST "+c.WeChat.Path, h)
	}
	if tg != nil && c.WebhookURL != "" {
		u, _ := url.Parse(c.WebhookURL) // checked by loadConfig
		path := u.Path
		if path == "" {
			path = "/"
		}
		wl := webhookLimits
		mux.Handle("POST "+path, withWebhookDeadlines(tg.WebhookHandler(), wl.Body, wl.Handle, wl.WriteSlack))
	}
	ln, err := net.Listen("tcp", c.ListenAddr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", c.ListenAddr, err)
	}
	lim := publicLimits
	lim.MaxConns = c.MaxConns
	srv, sln, conns := newServer(mux, ln, lim, log)
	m.watchConns(conns)
	log.Info("listening", "addr", ln.Addr().String(), "mode", mode(c), "max_conns", c.MaxConns, "go", runtime.Version(), "version", readBuild().Version)

	g, gctx := errgroup.WithContext(ctx)
	stopWatch := watchRecords(gctx, g, c, parts.records, log, m.recordsReload)
	defer stopWatch()
	// /metrics and the profiler live on DEBUG_ADDR only: the public
	// listener serves the webhook and the probes, nothing else.
	if c.DebugAddr == "" {
		log.Info("DEBUG_ADDR not set: /metrics and /debug/pprof/ are off")
	} else {
		dln, err := net.Listen("tcp", c.DebugAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("serve: listen on DEBUG_ADDR %s: %w", c.DebugAddr, err)
		}
		debugMux := http.NewServeMux()
		debugMux.Handle("GET /metrics", m.handler())
		debugMux.HandleFunc("/debug/pprof/", pprof.Index)
		debugMux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		debugMux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		debugMux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		debugMux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		dsrv, dln, _ := newServer(debugMux, dln, debugLimits, log)
		if a, ok := dln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			log.Warn("DEBUG_ADDR is not a loopback address: /metrics and /debug/pprof/ answer anyone who can reach it; keep the port off public networks", "addr", dln.Addr().String())
		}
		log.Info("debug listener", "addr", dln.Addr().String())
		g.Go(func() error { return serveHTTP("debug server", dsrv, dln) })
		g.Go(func() error {
			<-gctx.Done()
			return dsrv.Close() // nothing there is worth waiting for
		})
	}
	g.Go(func() error { return serveHTTP("http server", srv, sln) })
	g.Go(func() error {
		<-gctx.Done()
		hl.drain() // /readyz answers 503
		if tg != nil {
			tg.Drain() // new webhook updates get 503 and are redelivered later
		}
		if wx != nil {
			wx.Drain() // WeChat retries what gets 503, here after the restart or elsewhere
		}
		if c.DrainDelay > 0 {
			// Stay reachable while load balancers notice /readyz and
			// stop sending here; what still comes is refused above.
			t := time.NewTimer(c.DrainDelay)
			<-t.C
		}
		// Webhook requests in flight are answered (200 only after the
		// update was handled) before the server returns; the web chat's
		// sockets close once their message in hand is answered.
		if chat != nil {
			return shutdownWeb(context.WithoutCancel(gctx), srv, chat, hl)
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), shutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return parts.store.Maintain(gctx) }) // key rotation, when SHEBAO_KEYS gets a new first key
	var reminders senders
	if wx != nil {
		// Handles what the route acknowledged, and what any replica held
		// but did not handle; returns once the messages in hand are done.
		g.Go(func() error { return wx.Run(gctx) }) // in-flight work cut short stays held for another replica
		reminders.wx = wx
	}
	if tg == nil {
		if wx != nil {
			g.Go(func() error {
				return newScheduler(parts.store, parts.records, reminders, log, m, nil).Run(gctx)
			})
			log.Info("TELEGRAM_BOT_TOKEN not set: serving without Telegram", "web_chat", c.WebChat, "wechat", true)
		} else {
			// The web chat alone: it cannot send reminders, so no scheduler.
			log.Info("TELEGRAM_BOT_TOKEN not set: serving the web chat only; reminders need a channel that can write first")
		}
		err = g.Wait()
		if ctx.Err() != nil && err == nil {
			log.Info("stopped cleanly")
		}
		return err
	}
	reminders.tg = tg
	g.Go(func() error {
		// The bot's profile: none of it is worth failing the start for.
		if err := tg.SetCommands(gctx, commands("zh"), commands("en")); err != nil && gctx.Err() == nil {
			log.Warn("set bot commands", "err", err)
		}
		zh, en := bot.Descriptions()
		if err := tg.SetDescriptions(gctx, zh, en); err != nil && gctx.Err() == nil {
			log.Warn("set bot descriptions", "err", err)
		}
		return nil
	})
	sched := newScheduler(parts.store, parts.records, reminders, log, m, nil)
	g.Go(func() error { return sched.Run(gctx) })
	if c.WebhookURL != "" {
		g.Go(func() error {
			if err := tg.RegisterWebhook(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("register webhook: %w", err)
			}
			return nil
		})
	} else {
		g.Go(func() error { return tg.RunPolling(gctx) })
	}
	err = g.Wait()
	if ctx.Err() != nil && err == nil {
		log.Info("stopped cleanly")
	}
	return err
}

// serveHTTP runs srv on ln until it is shut down or closed.
func serveHTTP(name string, srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func mode(c config) string {
	var parts []string
	switch {
	case c.Token != "" && c.WebhookURL != "":
		parts = append(parts, "webhook")
	case c.Token != "":
		parts = append(parts, "polling")
	}
	if c.WebChat {
		parts = append(parts, "web")
	}
	if c.WeChat.on() {
		parts = append(parts, "wechat")
	}
	return strings.Join(parts, "+")
}

// commands is the command menu in one language.
func commands(lang string) []telegram.Command {
	var cs []telegram.Command
	for _, c := range bot.Commands() {
		d := c.ZH
		if lang == "en" {
			d = c.EN
		}
		cs = append(cs, telegram.Command{Name: c.Name, Description: d})
	}
	return cs
}
