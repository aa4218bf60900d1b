package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/telegram"
	"github.com/shebao/shebao/bot/web"
)

// config is everything read from the environment.
type config struct {
	Token         string
	APIURL        string
	WebhookURL    string
	WebhookSecret string
	ListenAddr    string
	MaxConns      int           // LISTEN_MAX_CONNS: connections LISTEN_ADDR holds at once
	DrainDelay    time.Duration // DRAIN_DELAY: after SIGTERM, how long /readyz says 503 before the listener closes
	DebugAddr     string        // "": no metrics or pprof listener
	RedisURL      string
	RecordsDB     string
	RecordsPoll   time.Duration // RECORDS_POLL_INTERVAL: how often serve looks for a new RECORDS_DB; 0: on SIGHUP only
	OpenAIBaseURL string
	OpenAIKey     string
	OpenAIModel   string
	LogLevel      slog.Level
	LLMTimeout    time.Duration
	// Keys is SHEBAO_KEYS, parsed; nil when unset (see needKeys).
	Keys *keyring.Ring
	// SMSWebhookURL and SMSWebhookSecret deliver verification codes for
	// channels without a shared contact (sms.Webhook); SMSHourlyCap
	// bounds how many go out in an hour.
	SMSWebhookURL    string
	SMSWebhookSecret string
	SMSHourlyCap     int
	// RatePolicy is the per-user limit: USER_RATE_LIMIT messages a minute
	// after a burst of USER_RATE_BURST; 0 turns it off.
	RatePolicy bot.RatePolicy

	// WebChat (WEB_CHAT=on) serves the web chat on LISTEN_ADDR (bot/web).
	WebChat bool
	// WebOrigins (WEB_ORIGINS) may frame the page and open its socket
	// besides the page's own host.
	WebOrigins []string
	// WebTrustProxy (WEB_TRUST_PROXY) are the proxies whose
	// X-Forwarded-For names the client.
	WebTrustProxy []netip.Prefix
	// WebCookieSecure (WEB_COOKIE_SECURE=on) marks the session cookie
	// Secure even on plain-HTTP requests.
	WebCookieSecure bool
	// WebMaxConns (WEB_MAX_CONNS) caps the chat's connections.
	WebMaxConns int
	// WeChat is the Official Account (WECHAT_*, cmd/shebao/wechat.go).
	WeChat wechatConfig
	// SendRate is TELEGRAM_SEND_RATE: Bot API messages a second, all
	// replicas together (telegram.SendLimits); 0 paces nothing.
	SendRate float64
}

// defaultWebMaxConns is WEB_MAX_CONNS's default: the load goal of one
// replica (BENCHMARKS.md).
const defaultWebMaxConns = 5000

const defaultAPIURL = "https://api.telegram.org"

// defaultMaxConns is LISTEN_MAX_CONNS's default: ten times what Telegram
// (at most 100 webhook connections), a proxy's keep-alive pool and probes
// need. Full of connections each sending an oversized header, the process
// measured about 110 MiB (shebao-load --scenario slow-headers).
const defaultMaxConns = 1024

// loadConfig reads the environment and reports every problem at once.
// need says which settings the subcommand requires.
func loadConfig(getenv func(string) string, serve bool) (config, error) {
	c := config{
		Token:         strings.TrimSpace(getenv("TELEGRAM_BOT_TOKEN")),
		APIURL:        strings.TrimRight(orDefault(getenv("TELEGRAM_API_URL"), defaultAPIURL), "/"),
		WebhookURL:    strings.TrimSpace(getenv("WEBHOOK_URL")),
		WebhookSecret: getenv("WEBHOOK_SECRET"),
		ListenAddr:    orDefault(getenv("LISTEN_ADDR"), ":8080"),
		DebugAddr:     strings.TrimSpace(getenv("DEBUG_ADDR")),
		RedisURL:      strings.TrimSpace(getenv("REDIS_URL")),
		RecordsDB:     strings.TrimSpace(getenv("RECORDS_DB")),
		OpenAIBaseURL: strings.TrimSpace(getenv("OPENAI_BASE_URL")),
		OpenAIKey:     getenv("OPENAI_API_KEY"),
		OpenAIModel:   strings.TrimSpace(getenv("OPENAI_MODEL")),
		LLMTimeout:    15 * time.Second,

		SMSWebhookURL:    strings.TrimSpace(getenv("SMS_WEBHOOK_URL")),
		SMSWebhookSecret: getenv("SMS_WEBHOOK_SECRET"),
	}
	var errs []error
	errs = append(errs, c.loadWeb(getenv)...)
	errs = append(errs, c.loadWeChat(getenv)...)
	c.MaxConns = defaultMaxConns
	if c.WebChat {
		// Each chat connection holds a listener slot for as long as it
		// is open; the webhook and the probes keep the usual room.
		c.MaxConns = min(c.WebMaxConns+defaultMaxConns, 65536)
	}
	if v := strings.TrimSpace(getenv("LISTEN_MAX_CONNS")); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 16 || n > 65536:
			errs = append(errs, errors.New("LISTEN_MAX_CONNS: want a number from 16 to 65536"))
		case c.WebChat && n <= c.WebMaxConns:
			errs = append(errs, fmt.Errorf("LISTEN_MAX_CONNS: want more than WEB_MAX_CONNS (%d): each web chat connection holds a slot", c.WebMaxConns))
		}
		c.MaxConns = n
	}
	if v := strings.TrimSpace(getenv("DRAIN_DELAY")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			errs = append(errs, errors.New("DRAIN_DELAY: want a duration from 0s to 1m, such as 5s"))
		}
		c.DrainDelay = d
	}
	c.RecordsPoll = defaultRecordsPoll
	if v := strings.TrimSpace(getenv("RECORDS_POLL_INTERVAL")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (d > 0 && d < 100*time.Millisecond) || d > 24*time.Hour {
			errs = append(errs, errors.New("RECORDS_POLL_INTERVAL: want a duration from 100ms to 24h, such as 10s, or 0 to reload on SIGHUP only"))
		}
		c.RecordsPoll = d
	}
	if c.SMSWebhookURL != "" {
		if err := checkURL(c.SMSWebhookURL); err != nil {
			errs = append(errs, fmt.Errorf("SMS_WEBHOOK_URL: %w", err))
		} else if !httpsOrLoopback(c.SMSWebhookURL) {
			errs = append(errs, errors.New("SMS_WEBHOOK_URL: want https (phone numbers and codes travel in it); plain http only to a loopback address"))
		}
		if len(c.SMSWebhookSecret) < 32 {
			errs = append(errs, errors.New("SMS_WEBHOOK_SECRET: required with SMS_WEBHOOK_URL, at least 32 characters (e.g. openssl rand -hex 32)"))
		}
	} else if c.SMSWebhookSecret != "" {
		errs = append(errs, errors.New("SMS_WEBHOOK_SECRET is set but SMS_WEBHOOK_URL is not"))
	}
	c.SMSHourlyCap = bot.DefaultSMSHourlyCap
	if v := strings.TrimSpace(getenv("SMS_HOURLY_CAP")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			errs = append(errs, errors.New("SMS_HOURLY_CAP: want codes an hour, 1 or more"))
		}
		c.SMSHourlyCap = n
	}
	if c.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			errs = append(errs, errors.New("DEBUG_ADDR: want host:port, such as 127.0.0.1:6060"))
		}
	}
	c.RatePolicy = bot.DefaultRatePolicy
	if v := strings.TrimSpace(getenv("USER_RATE_LIMIT")); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0:
			errs = append(errs, errors.New("USER_RATE_LIMIT: want messages a minute per user, 0 to turn the limit off"))
		case n == 0:
			c.RatePolicy.Every = 0
		default:
			c.RatePolicy.Every = time.Minute / time.Duration(n)
		}
	}
	if v := strings.TrimSpace(getenv("USER_RATE_BURST")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, errors.New("USER_RATE_BURST: want 1 or more messages"))
		} else {
			c.RatePolicy.Burst = n
		}
	}
	c.SendRate = telegram.DefaultSendRate
	if v := strings.TrimSpace(getenv("TELEGRAM_SEND_RATE")); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1000 || math.IsNaN(r) {
			errs = append(errs, errors.New("TELEGRAM_SEND_RATE: want messages a second for all replicas together, up to 1000 (Telegram allows 30), or 0 to pace nothing"))
		}
		c.SendRate = r
	}
	if err := c.LogLevel.UnmarshalText([]byte(orDefault(getenv("LOG_LEVEL"), "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error"))
	}
	if serve && c.Token == "" && !c.WebChat && !c.WeChat.on() {
		errs = append(errs, errors.New("TELEGRAM_BOT_TOKEN is required for serve (or WEB_CHAT=on, or WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_TOKEN, to serve those alone)"))
	}
	if serve && c.Token == "" && c.WebhookURL != "" {
		errs = append(errs, errors.New("WEBHOOK_URL: set TELEGRAM_BOT_TOKEN too, or unset it to serve the web chat or WeChat alone"))
	}
	if c.WeChat.on() && c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err == nil && (u.Path == c.WeChat.Path || u.Path == "" && c.WeChat.Path == "/") {
			errs = append(errs, errors.New("WECHAT_PATH: Telegram's WEBHOOK_URL uses the same path"))
		}
	}
	if c.WeChat.on() && c.WebChat && (c.WeChat.Path == "/ws" || strings.HasPrefix(c.WeChat.Path, "/static/")) {
		errs = append(errs, errors.New("WECHAT_PATH: the web chat uses that path"))
	}
	if err := checkURL(c.APIURL); err != nil {
		errs = append(errs, fmt.Errorf("TELEGRAM_API_URL: %w", err))
	}
	if c.WebhookURL != "" {
		if err := checkURL(c.WebhookURL); err != nil {
			errs = append(errs, fmt.Errorf("WEBHOOK_URL: %w", err))
		}
		if serve && len(c.WebhookSecret) < 16 {
			errs = append(errs, errors.New("WEBHOOK_SECRET: required with WEBHOOK_URL, at least 16 characters of A-Z a-z 0-9 _ -"))
		}
	}
	if c.WebhookSecret != "" && !validSecret(c.WebhookSecret) {
		errs = append(errs, errors.New("WEBHOOK_SECRET: only A-Z a-z 0-9 _ - allowed, at most 256 characters"))
	}
	if v := strings.TrimSpace(getenv("SHEBAO_KEYS")); v != "" {
		k, err := keyring.Parse(v)
		if err != nil {
			// The error names entries and ids, never a key.
			errs = append(errs, fmt.Errorf("SHEBAO_KEYS: %w", err))
		}
		c.Keys = k
	} else if serve && c.RecordsDB != "" {
		errs = append(errs, errors.New("SHEBAO_KEYS is required for serve with RECORDS_DB: it keeps ID numbers unreadable in Redis; "+
			"set it to id:base64key with a 32-byte key, e.g. k1:$(openssl rand -base64 32)"))
	} else if serve {
		if err := c.needKeys(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.OpenAIBaseURL != "" || c.OpenAIModel != "" {
		if c.OpenAIBaseURL == "" || c.OpenAIModel == "" {
			errs = append(errs, errors.New("OPENAI_BASE_URL and OPENAI_MODEL: set both to use an LLM, or neither"))
		} else if err := checkURL(c.OpenAIBaseURL); err != nil {
			errs = append(errs, fmt.Errorf("OPENAI_BASE_URL: %w", err))
		}
	}
	return c, errors.Join(errs...)
}

// loadWeb reads the web chat's settings.
func (c *config) loadWeb(getenv func(string) string) []error {
	var errs []error
	var err error
	if c.WebChat, err = onOff(getenv("WEB_CHAT")); err != nil {
		errs = append(errs, fmt.Errorf("WEB_CHAT: %w", err))
	}
	if c.WebCookieSecure, err = onOff(getenv("WEB_COOKIE_SECURE")); err != nil {
		errs = append(errs, fmt.Errorf("WEB_COOKIE_SECURE: %w", err))
	}
	for _, o := range strings.FieldsFunc(getenv("WEB_ORIGINS"), func(r rune) bool { return r == ',' || r == ' ' }) {
		origin, err := web.ParseOrigin(o)
		if err != nil {
			errs = append(errs, fmt.Errorf("WEB_ORIGINS: %w", err))
			continue
		}
		c.WebOrigins = append(c.WebOrigins, origin)
	}
	if c.WebTrustProxy, err = web.ParseProxies(getenv("WEB_TRUST_PROXY")); err != nil {
		errs = append(errs, fmt.Errorf("WEB_TRUST_PROXY: %w", err))
	}
	c.WebMaxConns = defaultWebMaxConns
	if v := strings.TrimSpace(getenv("WEB_MAX_CONNS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 60000 {
			errs = append(errs, errors.New("WEB_MAX_CONNS: want a number from 1 to 60000"))
		} else {
			c.WebMaxConns = n
		}
	}
	return errs
}

// onOff reads a switch: on, off or unset (off).
func onOff(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "off", "false", "0", "no":
		return false, nil
	case "on", "true", "1", "yes":
		return true, nil
	}
	return false, fmt.Errorf("want on or off, not %q", v)
}

// sendLimits are the Bot API send limits of SendRate.
func (c config) sendLimits() telegram.SendLimits {
	return telegram.SendLimits{Rate: c.SendRate, Off: c.SendRate == 0}
}

// needKeys reports a shared Redis without SHEBAO_KEYS, for every command
// that opens the store (serve checks it in loadConfig, chat and remind
// after it). A key made up for one run would seal whatever it
// writes unreadably for every later run, and could not read what serve
// wrote: the store refuses such a keyring at open anyway, this says so
// before anything starts. The embedded Redis lives and dies with the
// process, so a key made for the process suits it.
func (c config) needKeys() error {
	if c.Keys == nil && c.RedisURL != "" {
		return errors.New("SHEBAO_KEYS is required with REDIS_URL: the store's values are sealed under it; " +
			"use the same value as serve (make one with: openssl rand -base64 32, written k1:<key>)")
	}
	return nil
}

func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v == "" {
		return def
	}
	return v
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http(s) URL")
	}
	return nil
}

// httpsOrLoopback reports whether s is an https URL, or an http one to a
// loopback address (a gateway on the same host).
func httpsOrLoopback(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validSecret follows Telegram's rule for secret_token.
func validSecret(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
