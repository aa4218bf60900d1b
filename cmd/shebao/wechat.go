package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/wechat"
)

// wechatConfig is the WeChat Official Account's configuration (WECHAT_*).
// The secrets (AppSecret, Token, AESKey) are never printed: errors name
// the variable, never its value.
type wechatConfig struct {
	AppID, AppSecret, Token string
	AESKey                  string // "": plaintext mode; set: safe mode
	Path                    string // where WeChat POSTs, on LISTEN_ADDR
	APIURL                  string // WeChat's API (a local fake in tests)
	RemindTemplate          string // subscription-message template for reminders; "": none
}

// on reports whether the Official Account is configured.
func (w wechatConfig) on() bool { return w.AppID != "" }

// loadWeChat reads WECHAT_*: the account is on when WECHAT_APP_ID,
// WECHAT_APP_SECRET and WECHAT_TOKEN are set, and any of them alone is a
// mistake reported with the others.
func (c *config) loadWeChat(getenv func(string) string) []error {
	w := wechatConfig{
		AppID:          strings.TrimSpace(getenv("WECHAT_APP_ID")),
		AppSecret:      strings.TrimSpace(getenv("WECHAT_APP_SECRET")),
		Token:          strings.TrimSpace(getenv("WECHAT_TOKEN")),
		AESKey:         strings.TrimSpace(getenv("WECHAT_AES_KEY")),
		Path:           orDefault(getenv("WECHAT_PATH"), "/wechat"),
		APIURL:         strings.TrimRight(orDefault(getenv("WECHAT_API_URL"), wechat.DefaultAPIURL), "/"),
		RemindTemplate: strings.TrimSpace(getenv("WECHAT_REMIND_TEMPLATE")),
	}
	var errs []error
	set := map[string]bool{"WECHAT_APP_ID": w.AppID != "", "WECHAT_APP_SECRET": w.AppSecret != "", "WECHAT_TOKEN": w.Token != ""}
	if set["WECHAT_APP_ID"] || set["WECHAT_APP_SECRET"] || set["WECHAT_TOKEN"] {
		var missing []string
		for _, k := range []string{"WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN"} {
			if !set[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("%s: required for the WeChat Official Account (WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_TOKEN go together)", strings.Join(missing, ", ")))
			w.AppID = "" // off: nothing half-configured runs
		}
	} else {
		for _, k := range []string{"WECHAT_AES_KEY", "WECHAT_PATH", "WECHAT_API_URL", "WECHAT_REMIND_TEMPLATE"} {
			if strings.TrimSpace(getenv(k)) != "" {
				errs = append(errs, fmt.Errorf("%s is set but WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_TOKEN are not", k))
			}
		}
	}
	if w.Token != "" && !validWeChatToken(w.Token) {
		errs = append(errs, errors.New("WECHAT_TOKEN: want 3 to 32 letters or digits, as the console takes"))
	}
	if w.AESKey != "" {
		if err := wechat.CheckAESKey(w.AESKey); err != nil {
			errs = append(errs, fmt.Errorf("WECHAT_AES_KEY: %w", err))
		}
	}
	if !strings.HasPrefix(w.Path, "/") || strings.ContainsAny(w.Path, " {}") ||
		w.Path == "/" || w.Path == "/livez" || w.Path == "/readyz" || w.Path == "/healthz" {
		errs = append(errs, errors.New("WECHAT_PATH: want a path of its own, such as /wechat"))
	}
	if err := checkURL(w.APIURL); err != nil {
		errs = append(errs, fmt.Errorf("WECHAT_API_URL: %w", err))
	}
	c.WeChat = w
	return errs
}

func validWeChatToken(s string) bool {
	if len(s) < 3 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// caps is what each channel can do as configured: WeChat writes first
// (reminders) only with a subscription-message template.
func (c config) caps(channel string) bot.Caps {
	caps := bot.CapsOf(channel)
	if channel == bot.ChannelWeChat && c.WeChat.on() && c.WeChat.RemindTemplate != "" {
		caps.Push = true
	}
	return caps
}

// newWeChat builds the Official Account's adapter over the engine and the
// shared store; nil when WECHAT_* is not set.
func newWeChat(c config, parts *engineParts, h bot.Handler, limit wechat.Limit, log *slog.Logger, m wechat.Metrics) (*wechat.Adapter, error) {
	if !c.WeChat.on() {
		return nil, nil
	}
	w := c.WeChat
	mode := "plaintext"
	if w.AESKey != "" {
		mode = "safe"
	}
	log.Info("WeChat Official Account on", "path", w.Path, "mode", mode, "remind_template", w.RemindTemplate != "")
	return wechat.New(wechat.Options{
		AppID: w.AppID, AppSecret: w.AppSecret, Token: w.Token, AESKey: w.AESKey, APIURL: w.APIURL,
		RemindTemplate: w.RemindTemplate,
		Handler:        h, Store: parts.store, Coordinator: parts.store, Blocklist: parts.store, Reminders: parts.store,
		Limit: limit, Metrics: m, Logger: log,
	})
}

// wechatHandler is the route WeChat calls: signed GETs (the console's URL
// check) and POSTs, acknowledged well within WeChat's 5 seconds.
func wechatHandler(wx *wechat.Adapter) http.Handler {
	return withWebhookDeadlines(wx.Handler(), 5*time.Second, 4*time.Second, time.Second)
}

// senders routes a reminder to its chat's channel.
type senders struct {
	tg, wx bot.Sender // nil when off
}

// channels are the channels s reaches.
func (s senders) channels() []string {
	var out []string
	if s.tg != nil {
		out = append(out, bot.ChannelTelegram)
	}
	if s.wx != nil {
		out = append(out, bot.ChannelWeChat)
	}
	return out
}

func (s senders) Send(ctx context.Context, chat string, replies []bot.Reply) error {
	var to bot.Sender
	switch bot.ChannelOf(chat) {
	case bot.ChannelTelegram:
		to = s.tg
	case bot.ChannelWeChat:
		to = s.wx
	}
	if to == nil {
		// This process does not run the chat's channel: another may.
		return fmt.Errorf("send to %s: %w", bot.ChannelOf(chat), bot.ErrCannotPush)
	}
	return to.Send(ctx, chat, replies)
}

// wechatMetrics counts the adapter's updates and sends.
type wechatMetrics struct{ updates, sends *prometheus.CounterVec }

func (m *metrics) watchWeChat() wechatMetrics {
	w := wechatMetrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shebao_wechat_updates_total", Help: "WeChat messages and events by kind and outcome (held, handled, duplicate, refused, …).",
		}, []string{"kind", "outcome"}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shebao_wechat_sends_total", Help: "WeChat customer-service and subscription sends by outcome (sent, retry, maybe, window_closed, allowance_spent, parked, template, skipped, …).",
		}, []string{"outcome"}),
	}
	m.reg.MustRegister(w.updates, w.sends)
	return w
}

func (w wechatMetrics) Update(kind, outcome string) { w.updates.WithLabelValues(kind, outcome).Inc() }
func (w wechatMetrics) Send(outcome string, n int) {
	w.sends.WithLabelValues(outcome).Add(float64(max(n, 1)))
}

// runWeChatCmd is `shebao wechat menu`: it sets the Official Account's
// default menu (政策问答, 我的记录, 提醒设置) through the access token serve
// shares in Redis.
func runWeChatCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wechat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("wechat: %w", err)
	}
	if fs.NArg() != 1 || fs.Arg(0) != "menu" {
		return errors.New("wechat: usage: shebao wechat menu")
	}
	c, err := loadConfig(getenv, false)
	if err = errors.Join(err, c.needKeys()); err != nil {
		return err
	}
	if !c.WeChat.on() {
		return errors.New("wechat menu: set WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_TOKEN (and REDIS_URL, SHEBAO_KEYS as for serve, to share its access token)")
	}
	log := newLogger(stderr, c.LogLevel)
	store, stop, err := openStore(ctx, c, log)
	if err != nil {
		return fmt.Errorf("wechat menu: %w", err)
	}
	defer stop()
	w := c.WeChat
	wx, err := wechat.New(wechat.Options{
		AppID: w.AppID, AppSecret: w.AppSecret, Token: w.Token, AESKey: w.AESKey, APIURL: w.APIURL,
		Handler: noHandler{}, Store: store, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("wechat menu: %w", err)
	}
	menu := wechat.DefaultMenu()
	if err := wx.SetMenu(ctx, menu); err != nil {
		return err
	}
	var names []string
	for _, b := range menu {
		names = append(names, b.Name+" (/"+b.Command+")")
	}
	fmt.Fprintln(stdout, "menu set:", strings.Join(names, ", "))
	return nil
}
