package wechat

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/shebao/shebao/bot"
)

// The customer-service window as WeChat counts it since June 2023: a
// message from the user opens sendsAfterMessage sends for 48 hours; a
// menu click, a follow or a QR scan sendsAfterEvent for a minute. The
// latest interaction's allowance is taken to replace the one before,
// which never promises more than WeChat allows; a 45015 or 45047 answer
// corrects what the adapter believed.
const (
	sendsAfterMessage  = 5
	windowAfterMessage = 48 * time.Hour
	sendsAfterEvent    = 3
	windowAfterEvent   = time.Minute
)

// window is what may still be sent to a chat through the
// customer-service API.
type window struct {
	Until time.Time `json:"u"`
	Left  int       `json:"n"`
}

func (w window) open(now time.Time) bool { return w.Left > 0 && now.Before(w.Until) }

// part is one queued text message.
type part struct {
	Text string `json:"t"`
	Lang string `json:"l"` // of the notice added when the allowance runs out
}

// Names of the adapter's Values.
func windowName(chat string) string  { return "wx:win:" + bot.Local(chat) }
func choicesName(chat string) string { return "wx:menu:" + bot.Local(chat) }
func moreName(chat string) string    { return "wx:more:" + bot.Local(chat) }

// subTTL is how long an accepted subscription is kept without a use.
// Values are sealed under SHEBAO_KEYS and not visited by a key rotation,
// and a retired key leaves the ring 90 days after it: so a subscription
// lives less than that, and each reminder sent renews it (sealed again
// under the current key).
const subTTL = 80 * 24 * time.Hour

func subName(openid, tmpl string) string {
	return "wx:sub:" + openid + ":" + tmpl
}

func (a *Adapter) loadWindow(ctx context.Context, chat string) window {
	v, ok, err := a.opts.Store.Value(ctx, windowName(chat))
	var w window
	if err != nil {
		a.log.Warn("read reply window", "chat", chat, "err", err)
	}
	if ok {
		json.Unmarshal([]byte(v), &w)
	}
	return w
}

func (a *Adapter) saveWindow(ctx context.Context, chat string, w window) {
	ttl := w.Until.Sub(a.now()) + time.Minute
	if ttl <= time.Minute {
		ttl = time.Minute
	}
	b, _ := json.Marshal(w)
	if _, err := a.opts.Store.SetValue(ctx, windowName(chat), string(b), ttl, false); err != nil {
		a.log.Warn("save reply window", "chat", chat, "err", err)
	}
}

// grant opens the window an interaction gives.
func (a *Adapter) grant(ctx context.Context, chat string, in inbound) {
	w := window{Until: in.At.Add(windowAfterEvent), Left: sendsAfterEvent}
	if in.Type != "event" {
		w = window{Until: in.At.Add(windowAfterMessage), Left: sendsAfterMessage}
	}
	a.saveWindow(ctx, chat, w)
}

// turn handles a message under its chat's claim and returns the outcome
// for Metrics.
func (a *Adapter) turn(ctx context.Context, in inbound, id int64) string {
	chat := in.chat()
	st := a.opts.Store
	queued, err := st.Queued(ctx, chat, id)
	if err != nil {
		a.log.Warn("read queued mark", "chat", chat, "err", err)
	}
	if queued {
		// Handled before a crash: send what is left, answer nothing twice.
		a.deliver(ctx, chat, nil)
		return "handled"
	}
	switch in.kind() {
	case "unsubscribe":
		a.gone(ctx, chat)
		return "handled"
	case "subscription":
		a.subscriptions(ctx, in)
		return "handled"
	case "ignored":
		return "ignored"
	}
	a.grant(ctx, chat, in)
	if more, _, _ := st.Value(ctx, moreName(chat)); more != "" {
		st.DeleteValue(ctx, moreName(chat), "")
		if in.Type == "text" && isMore(in.Text) {
			// "继续": the rest of an answer the allowance cut short.
			a.deliver(ctx, chat, nil)
			return "handled"
		}
		// A new message: what was left of the last answer is stale.
		if n, err := st.DropParts(ctx, chat); err == nil && n > 0 {
			a.m.Send("superseded", n)
		}
	}
	m := a.message(ctx, in)
	replies, herr := a.opts.Handler.Handle(ctx, m)
	if ctx.Err() != nil {
		return "aborted"
	}
	if herr != nil {
		// The replies still hold a polite message for the user.
		a.log.Warn("handler failed", "kind", in.kind(), "err", herr)
	}
	r := render(replies)
	a.saveChoices(ctx, chat, r.choices)
	parts := make([]part, len(r.parts))
	raw := make([][]byte, len(r.parts))
	lang := "en"
	if hasHan(strings.Join(r.parts, "")) {
		lang = "zh"
	}
	for i, p := range r.parts {
		parts[i] = part{Text: p, Lang: lang}
		raw[i], _ = json.Marshal(parts[i])
	}
	if err := st.Queue(ctx, chat, id, raw); err != nil {
		a.log.Warn("queue replies; sending without the outbox", "chat", chat, "err", err)
		a.deliver(ctx, chat, parts)
	} else {
		a.deliver(ctx, chat, nil)
	}
	if herr != nil {
		return "error"
	}
	return "handled"
}

// isMore reports whether the user asks for the rest of an answer.
func isMore(text string) bool {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(text), "。.!！")) {
	case "继续", "更多", "more", "/more", "continue":
		return true
	}
	return false
}

// message turns an inbound message into the engine's: a number picks one
// of the choices last offered in the chat, a menu click runs its command,
// a follow (or a QR scan) starts with the welcome and its next steps.
func (a *Adapter) message(ctx context.Context, in inbound) bot.Message {
	chat := in.chat()
	m := bot.Message{Chat: chat, User: chat, Time: in.At, ChatType: bot.ChatPrivate, Limited: in.limited}
	switch in.kind() {
	case "text":
		if n, ok := choiceNumber(in.Text); ok {
			if data := a.choice(ctx, chat, n); data != "" {
				m.Callback = data
				return m
			}
		}
		m.Text = in.Text
	case "click":
		m.Text = clickCommand(in.Key)
	case "subscribe":
		m.Text = "/start"
		// A QR code with a scene ("qrscene_verify" for a new follower,
		// "verify" for one who follows already) is a start payload, as
		// t.me/…?start=verify is on Telegram.
		if p := strings.TrimPrefix(in.Key, "qrscene_"); validPayload(p) {
			m.Text += " " + p
		}
	}
	return m
}

// MenuKey is the key of a menu button that runs a command ("records" for
// /records): what `shebao wechat menu` sets.
func MenuKey(command string) string { return "cmd:" + strings.TrimPrefix(command, "/") }

// clickCommand is the command a menu key runs; an unknown key gets the
// welcome.
func clickCommand(key string) string {
	if c, ok := strings.CutPrefix(key, "cmd:"); ok && validPayload(c) {
		for _, cmd := range bot.Commands() {
			if cmd.Name == c {
				return "/" + c
			}
		}
	}
	return "/start"
}

func validPayload(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// choiceNumber reads a number typed to pick a choice (full-width digits
// too, as Chinese keyboards type them).
func choiceNumber(text string) (int, bool) {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > 9 {
		return 0, false
	}
	var b strings.Builder
	for _, r := range text {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '０' && r <= '９':
			b.WriteRune('0' + r - '０')
		default:
			return 0, false
		}
	}
	n, err := strconv.Atoi(b.String())
	return n, err == nil && n >= 1
}

func (a *Adapter) choice(ctx context.Context, chat string, n int) string {
	v, ok, err := a.opts.Store.Value(ctx, choicesName(chat))
	if err != nil || !ok {
		return ""
	}
	var cs []string
	if json.Unmarshal([]byte(v), &cs) != nil || n > len(cs) {
		return ""
	}
	return cs[n-1]
}

// saveChoices keeps the turn's numbered choices for the chat's next
// message, as the terminal keeps its last buttons; a turn without
// choices clears them, so a number typed later is text again.
func (a *Adapter) saveChoices(ctx context.Context, chat string, choices []string) {
	var err error
	if len(choices) == 0 {
		_, err = a.opts.Store.DeleteValue(ctx, choicesName(chat), "")
	} else {
		b, _ := json.Marshal(choices)
		_, err = a.opts.Store.SetValue(ctx, choicesName(chat), string(b), a.menuTTL, false)
	}
	if err != nil {
		a.log.Warn("save numbered choices", "chat", chat, "err", err)
	}
}

// gone ends what the adapter does for a user who unfollowed: reminders
// off, the chat marked (bot.Blocklist) until they write again, nothing
// more queued.
func (a *Adapter) gone(ctx context.Context, chat string) {
	a.log.Info("user unfollowed the official account; reminders off", "chat", chat)
	if r := a.opts.Reminders; r != nil {
		if err := r.StopReminder(ctx, chat, chat); err != nil {
			a.log.Warn("turn reminders off after unfollow", "chat", chat, "err", err)
		}
	}
	if b := a.opts.Blocklist; b != nil {
		if err := b.MarkBlocked(ctx, chat); err != nil {
			a.log.Warn("mark unfollowed chat", "chat", chat, "err", err)
		}
	}
	st := a.opts.Store
	if n, err := st.DropParts(ctx, chat); err == nil && n > 0 {
		a.m.Send("gone", n)
	}
	st.DeleteValue(ctx, windowName(chat), "")
	st.DeleteValue(ctx, choicesName(chat), "")
	st.DeleteValue(ctx, moreName(chat), "")
}

// subscriptions records which subscription-message templates the user
// accepted or refused.
func (a *Adapter) subscriptions(ctx context.Context, in inbound) {
	for _, t := range in.Accepted {
		if _, err := a.opts.Store.SetValue(ctx, subName(in.From, t), "1", subTTL, false); err != nil {
			a.log.Warn("record subscription", "err", err)
		}
	}
	for _, t := range in.Rejected {
		if _, err := a.opts.Store.DeleteValue(ctx, subName(in.From, t), ""); err != nil {
			a.log.Warn("record refused subscription", "err", err)
		}
	}
}
