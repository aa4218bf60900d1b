package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/sms"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// MaxInput is the longest text the engine reads; Telegram's own limit is
// 4096 characters, so anything longer comes from another transport.
const MaxInput = 4096

// Config wires an Engine. Sessions and FAQ are required.
type Config struct {
	Sessions Sessions
	Attempts Attempts
	// Reminders keeps reminder settings; nil disables /remind.
	Reminders Reminders
	// FAQ answers policy questions and renders every citation the
	// engine's replies carry. It is concrete, like Records: the real one is
	// fast and tests use it.
	FAQ *faq.FAQ
	// Records holds the agency's records; nil disables the record
	// commands (they then say so).
	Records *records.DB
	// SMS delivers one-time codes to the phone on record, for channels
	// that cannot share a contact (CapsOf); nil means verification there
	// is not offered. bot/sms has a signed webhook and a demo printer.
	SMS CodeSender
	// SMSHourlyCap is how many codes may go out in an hour, all users
	// together (SMS_HOURLY_CAP); 0 means DefaultSMSHourlyCap.
	SMSHourlyCap int
	// PushLinks lists, for a channel that cannot write first (the web
	// chat), where this service runs on channels that can: each link opens
	// the bot there when a start payload is appended
	// ("https://t.me/ShebaoBot?start="). Called at each use, so a link
	// learnt after start-up (the Telegram bot's name) shows; nil means none.
	PushLinks func() []PushLink
	// Caps says what each channel can do when that depends on how it is
	// configured (WeChat pushes only with a subscription-message
	// template); nil means CapsOf.
	Caps func(channel string) Caps
	// Keys tags the phone a link was verified with (SHEBAO_KEYS); nil
	// means a key made for this Engine, so that tags do not survive it.
	Keys *keyring.Ring
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics receives counts of what happened; nil discards them.
	Metrics Metrics
}

// PushLink is where a channel that can send reminders opens the bot.
type PushLink struct {
	Channel string // ChannelTelegram, ChannelWeChat
	URL     string // a start payload is appended
}

// CodeSender delivers a one-time verification code (sms.Webhook,
// sms.Demo).
type CodeSender interface {
	Send(ctx context.Context, m sms.Message) error
}

// Metrics is told what the engine did, for /metrics.
type Metrics interface {
	// Outcome counts one handled message by route kind ("start", "faq",
	// "verify", …) and outcome ("ok", "abstain", "unavailable", "error").
	Outcome(kind, outcome string)
}

type noMetrics struct{}

func (noMetrics) Outcome(string, string) {}

// Engine is the conversation engine. It is safe for concurrent use; the
// transport must not handle two messages of one chat at the same time.
type Engine struct {
	cfg Config
	log *slog.Logger
}

// New returns an Engine for cfg.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Keys == nil {
		cfg.Keys = keyring.Generate()
	}
	if cfg.Caps == nil {
		cfg.Caps = CapsOf
	}
	return &Engine{cfg: cfg, log: cfg.Logger}
}

// turn is one message being handled: the message, the state loaded for it,
// what changed, and the replies collected so far.
type turn struct {
	e       *Engine
	msg     Message
	now     time.Time
	day     faq.Date // the day in China that answers are for
	st      State
	stateOK bool // false when the store could not be read: answer statelessly
	dirty   Part
	lang    string
	replies []Reply
	kind    string
	outcome string
}

// caps is what the user's channel can do.
func (t *turn) caps() Caps { return t.e.cfg.Caps(ChannelOf(t.msg.User)) }

// l picks the text for the turn's language.
func (t *turn) l(zh, en string) string {
	if t.lang == "en" {
		return en
	}
	return zh
}

// say appends a plain reply.
func (t *turn) say(text string, rows ...[]Button) {
	r := TextReply(text)
	r.Buttons = rows
	t.replies = append(t.replies, r)
}

// show appends a reply built with doc.
func (t *turn) show(d *doc, rows ...[]Button) { t.replies = append(t.replies, d.reply(rows...)) }

func (t *turn) setDialog(d Dialog) {
	t.st.Dialog = d
	t.dirty |= PartDialog
}

func (t *turn) endDialog() {
	if t.st.Dialog.Name != "" {
		t.setDialog(Dialog{})
	}
}

// Handle answers one message. The error is for the operator only: when it
// is non-nil the replies still hold a polite message for the user.
func (e *Engine) Handle(ctx context.Context, m Message) ([]Reply, error) {
	now := m.Time
	if now.IsZero() {
		now = e.cfg.Now()
	}
	t := &turn{e: e, msg: m, now: now, day: faq.DateOf(now), kind: "other", outcome: "ok"}
	t.msg.Text = cleanInput(m.Text)
	t.lang = langFromCode(m.LanguageCode)

	st, err := e.cfg.Sessions.Load(ctx, m.Chat, m.User)
	switch {
	case err == nil:
		t.st, t.stateOK = st, true
		if st.Lang != "" {
			t.lang = st.Lang
		}
	case ctx.Err() != nil:
		return nil, fmt.Errorf("load state for chat %s: %w", m.Chat, err)
	default:
		e.log.Warn("state unavailable, answering without it", "chat", m.Chat, "err", err)
	}

	herr := e.dispatch(ctx, t)
	if herr != nil {
		t.outcome = "error"
		t.replies = append(t.replies[:0:0], TextReply(t.l(
			"抱歉，系统出了点问题，请稍后再试。您的信息没有丢失。",
			"Sorry, something went wrong on our side. Please try again in a moment; nothing you sent was lost.")))
	}
	var serr error
	if t.dirty != 0 && t.stateOK && herr == nil {
		if serr = e.cfg.Sessions.Save(ctx, m.Chat, m.User, t.st, t.dirty); serr != nil {
			t.outcome = "error"
			t.replies = []Reply{TextReply(t.l(
				"抱歉，暂时无法保存您的进度，请稍后再试。",
				"Sorry, I could not save your progress just now. Please try again in a moment."))}
			serr = fmt.Errorf("save state for chat %s: %w", m.Chat, serr)
		}
	}
	e.cfg.Metrics.Outcome(t.kind, t.outcome)
	return t.replies, errors.Join(herr, serr)
}

// unavailable tells the user that a feature needing state is down.
func (t *turn) unavailable() {
	t.outcome = "unavailable"
	t.say(t.l(
		"抱歉，这项功能暂时不可用，请几分钟后再试。政策问题仍可直接提问。",
		"Sorry, this is briefly unavailable. Please try again in a few minutes. You can still ask policy questions."))
}

// cleanInput trims the text, drops control and invisible format characters
// that only confuse matching, and caps its length.
func cleanInput(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= MaxInput {
			break
		}
		switch {
		case r == '\n' || r == '\t':
			r = ' '
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			continue
		case r == 0x200b || r == 0x200c || r == 0x200d || r == 0x2060 || r == 0xfeff,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e || r == 0x200f:
			continue
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// langFromCode maps a client language tag to "zh" or "en"; Chinese when
// unknown, since most users are.
func langFromCode(code string) string {
	code = strings.ToLower(code)
	if strings.HasPrefix(code, "en") {
		return "en"
	}
	return "zh"
}
