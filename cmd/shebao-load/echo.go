package main

// This file is the one place outside bot/telegram that imports
// github.com/go-telegram/bot: the echo baseline must be a bare bot built
// on the library alone, with none of shebao's code in its path.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

// runEcho is `shebao-load echo`: a bot that sends every text back to its
// chat. It reads the same environment as `shebao serve`
// (TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL, LISTEN_ADDR, WEBHOOK_URL,
// WEBHOOK_SECRET) and serves /healthz on LISTEN_ADDR.
func runEcho(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	token, apiURL := getenv("TELEGRAM_BOT_TOKEN"), getenv("TELEGRAM_API_URL")
	listen, hook, secret := getenv("LISTEN_ADDR"), getenv("WEBHOOK_URL"), getenv("WEBHOOK_SECRET")
	if token == "" || apiURL == "" || listen == "" {
		return errors.New("echo: TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL and LISTEN_ADDR are required")
	}
	// The same connection pool shebao's adapter uses, so the baseline is
	// not slowed by the standard library's two idle connections per host.
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 200, MaxIdleConnsPerHost: 100, IdleConnTimeout: 90 * time.Second}}
	b, err := tgbot.New(token,
		tgbot.WithServerURL(apiURL),
		tgbot.WithSkipGetMe(),
		tgbot.WithWorkers(64), // shebao polls with 64 workers too
		tgbot.WithHTTPClient(50*time.Second, client),
		tgbot.WithWebhookSecretToken(secret),
		tgbot.WithErrorsHandler(func(err error) { log.Warn("telegram library", "err", err) }),
		tgbot.WithDefaultHandler(func(ctx context.Context, b *tgbot.Bot, u *models.Update) {
			if u.Message == nil || u.Message.Text == "" {
				return
			}
			if _, err := b.SendMessage(ctx, &tgbot.SendMessageParams{ChatID: u.Message.Chat.ID, Text: u.Message.Text}); err != nil {
				log.Warn("echo", "err", err)
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("echo: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	if hook != "" {
		u, err := url.Parse(hook)
		if err != nil {
			return fmt.Errorf("echo: WEBHOOK_URL: %w", err)
		}
		mux.Handle("POST "+u.Path, b.WebhookHandler())
	}
	// Listen before registering the webhook, so the first delivery finds
	// the handler.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("echo: listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed at shutdown
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck // exiting anyway
	}()
	if hook != "" {
		if _, err := b.SetWebhook(ctx, &tgbot.SetWebhookParams{URL: hook, SecretToken: secret}); err != nil {
			return fmt.Errorf("echo: set webhook: %w", err)
		}
	} else if _, err := b.DeleteWebhook(ctx, &tgbot.DeleteWebhookParams{}); err != nil {
		return fmt.Errorf("echo: delete webhook: %w", err)
	}
	if hook != "" {
		b.StartWebhook(ctx)
	} else {
		b.Start(ctx)
	}
	return nil
}
