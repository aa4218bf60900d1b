package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/officialaccount/message"

	"github.com/shebao/shebao/bot"
)

// WeChat's errcodes the adapter acts on.
const (
	codeBusy          = -1    // system busy: nothing was done, try again
	codeBadToken      = 40001 // access_token invalid or not the latest
	codeBadToken2     = 40014 // access_token malformed
	codeTokenExpired  = 42001
	codeBadOpenID     = 40003
	codeFreqLimit     = 45009 // the account's daily API quota: nothing was done
	codeOutOfWindow   = 45015 // the 48-hour window is closed
	codeOverLimit     = 45047 // the window's allowance is spent
	codeUnfollowed    = 43004 // the user does not follow the account
	codeNotSubscribed = 43101 // the user did not accept (or used up) the subscription
)

// notice is what the last allowed message says when the allowance ends
// before the answer does.
func notice(lang string) string {
	if lang == "en" {
		return "(WeChat limits how many messages I may send at once. Reply \"more\" for the rest.)"
	}
	return "（微信限制了一次能发的消息条数，回复“继续”查看余下内容。）"
}

// withNotice appends the notice. When both do not fit one message the
// text is cut at a line end (or, in a line longer than that, a rune
// boundary) and tail is what did not fit: it goes back to the front of the
// outbox, so no text is lost.
func withNotice(text, lang string) (msg, tail string) {
	n := notice(lang)
	limit := MaxBytes - 1 - len(n)
	if len(text) > limit {
		cut := strings.LastIndexByte(text[:limit+1], '\n')
		if cut <= 0 {
			cut = cutAt(text, limit)
		}
		text, tail = strings.TrimRight(text[:cut], "\n"), strings.TrimLeft(text[cut:], "\n")
	}
	if text == "" {
		return n, tail
	}
	return text + "\n" + n, tail
}

// maxNotSent bounds how often one part is tried again after WeChat said
// it did nothing (-1, 45009, no connection) before it is parked.
const maxNotSent = 5

// deliver sends the chat's queued replies in order, within the window and
// its allowance, under the chat's claim (or with direct parts when the
// outbox is down). When the allowance runs out before the replies do, the
// last allowed message says so and the rest waits for "继续"; when the
// window is closed, what is queued can no longer be sent and is dropped.
// An outage of the API longer than retryFor parks the chat: its replies
// stay queued and any replica sends them when the API answers again.
func (a *Adapter) deliver(ctx context.Context, chat string, direct []part) {
	st := a.opts.Store
	w := a.loadWindow(ctx, chat)
	// The gate waits on timers: its deadline is on the wall clock, not Now.
	deadline := time.Now().Add(a.retryFor)
	notSent := 0
	for {
		var p part
		var rest int
		var raw []byte
		if direct != nil {
			if len(direct) == 0 {
				return
			}
			p, direct, rest = direct[0], direct[1:], len(direct)-1
			raw, _ = json.Marshal(p)
		} else {
			var err error
			raw, rest, err = st.PopPart(ctx, chat)
			if err != nil {
				a.log.Warn("take queued reply", "chat", chat, "err", err)
				return
			}
			if raw == nil {
				if err := st.Unpark(ctx, channel, chat); err != nil {
					a.log.Warn("unpark chat", "chat", chat, "err", err)
				}
				return
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				continue
			}
		}
		if !w.open(a.now()) {
			a.dropAll(ctx, chat, direct, "window_closed", w)
			return
		}
		text := p.Text
		last := w.Left == 1 && rest > 0
		if last {
			var tail string
			if text, tail = withNotice(text, p.Lang); tail != "" {
				// What did not fit beside the notice waits first in
				// line; this part is only what is sent.
				head := part{Text: strings.TrimSuffix(strings.TrimSuffix(text, notice(p.Lang)), "\n"), Lang: p.Lang}
				tp, _ := json.Marshal(part{Text: tail, Lang: p.Lang})
				if direct != nil {
					direct = append([]part{{Text: tail, Lang: p.Lang}}, direct...)
				} else if err := st.UnpopPart(ctx, chat, tp); err != nil {
					a.log.Warn("put back the rest of a reply", "chat", chat, "err", err)
					st.UnpopPart(ctx, chat, raw)
					return
				}
				p = head
				raw, _ = json.Marshal(head)
				rest++
			}
		}
		if err := a.gate.wait(ctx, deadline, a.probe); err != nil {
			a.park(ctx, chat, raw, direct != nil)
			return
		}
		err := a.sendText(ctx, bot.Local(chat), text)
		switch c := classify(err); c {
		case sentOK:
			a.gate.up()
			a.m.Send("sent", 1)
			w.Left--
			a.saveWindow(ctx, chat, w)
			if last {
				a.m.Send("allowance_spent", rest)
				a.log.Info("reply allowance spent; the rest waits for the user's next message", "chat", chat, "left", rest)
				if _, err := st.SetValue(ctx, moreName(chat), "1", windowAfterMessage, false); err != nil {
					a.log.Warn("mark rest of answer", "chat", chat, "err", err)
				}
				return
			}
			notSent = 0
		case outOfWindow, overLimit:
			a.gate.up()
			w.Left = 0
			if c == outOfWindow {
				w.Until = a.now()
			}
			a.saveWindow(ctx, chat, w)
			a.dropAll(ctx, chat, direct, c.String(), w)
			a.m.Send(c.String(), 0)
			return
		case gone:
			a.gate.up()
			a.gone(ctx, chat)
			return
		case refused:
			a.gate.up()
			a.m.Send("refused", 1)
			a.log.Warn("WeChat refused a reply; skipping it", "chat", chat, "err", err)
		case maybeSent:
			// It may have reached the user: never again. The gate holds
			// the next sends until the API answers a harmless probe.
			a.gate.down()
			a.m.Send("maybe", 1)
			a.log.Warn("reply may have been delivered; not sending it again", "chat", chat, "err", err)
		case notSentErr:
			a.gate.down()
			a.m.Send("retry", 1)
			if direct == nil {
				if uerr := st.UnpopPart(ctx, chat, raw); uerr != nil {
					a.log.Warn("put back unsent reply", "chat", chat, "err", uerr)
					return
				}
			} else {
				direct = append([]part{p}, direct...)
			}
			if notSent++; notSent >= maxNotSent {
				a.park(ctx, chat, nil, false)
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// park leaves the chat's replies queued for later (raw, when set, was
// taken off and goes back first).
func (a *Adapter) park(ctx context.Context, chat string, raw []byte, direct bool) {
	ctx = context.WithoutCancel(ctx)
	if direct {
		a.m.Send("lost", 1) // the outbox was down: nowhere to keep it
		return
	}
	if raw != nil {
		if err := a.opts.Store.UnpopPart(ctx, chat, raw); err != nil {
			a.log.Warn("put back unsent reply", "chat", chat, "err", err)
		}
	}
	if err := a.opts.Store.Park(ctx, channel, chat, a.now().Add(a.parkFor)); err != nil {
		a.log.Warn("park chat", "chat", chat, "err", err)
		return
	}
	a.m.Send("parked", 1)
	a.log.Info("WeChat API unavailable: replies kept for later", "chat", chat)
}

// dropAll drops what is queued for a chat that cannot take it any more.
func (a *Adapter) dropAll(ctx context.Context, chat string, direct []part, why string, w window) {
	n := 1 + len(direct)
	if direct == nil {
		m, err := a.opts.Store.DropParts(ctx, chat)
		if err != nil {
			a.log.Warn("drop queued replies", "chat", chat, "err", err)
		}
		n = 1 + m
		a.opts.Store.Unpark(ctx, channel, chat)
	}
	a.m.Send("dropped_"+why, n)
	a.log.Info("reply window closed or spent: replies dropped", "chat", chat, "why", why, "n", n, "until", w.Until, "left", w.Left)
}

// flush sends a parked chat's replies under the chat's claim (update 0:
// before any message of the chat waiting, and never marked handled).
func (a *Adapter) flush(ctx context.Context, chat string) {
	if c := a.opts.Coordinator; c != nil {
		done, _, err := c.Begin(ctx, chat, 0)
		if err != nil {
			return
		}
		defer done(false)
	}
	a.deliver(ctx, chat, nil)
}

// sendResult classifies a send's error.
type sendResult int

const (
	sentOK      sendResult = iota
	notSentErr             // WeChat did nothing: try again
	maybeSent              // a timeout or 5xx: it may have been delivered
	outOfWindow            // 45015
	overLimit              // 45047
	gone                   // the user does not follow the account
	refused                // anything else WeChat turned down
)

func (r sendResult) String() string {
	switch r {
	case outOfWindow:
		return "window_closed"
	case overLimit:
		return "allowance_spent"
	}
	return "other"
}

func classify(err error) sendResult {
	if err == nil {
		return sentOK
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Code {
		case codeBusy, codeFreqLimit, codeBadToken, codeBadToken2, codeTokenExpired:
			return notSentErr
		case codeOutOfWindow:
			return outOfWindow
		case codeOverLimit:
			return overLimit
		case codeUnfollowed, codeBadOpenID:
			return gone
		}
		return refused
	}
	if notSent(err) {
		return notSentErr
	}
	return maybeSent
}

// sendText sends one customer-service text message.
func (a *Adapter) sendText(ctx context.Context, openid, text string) error {
	return a.call(ctx, "/cgi-bin/message/custom/send", message.NewCustomerTextMessage(openid, text))
}

// probe is a harmless call that tells whether the API answers: the gate
// asks it instead of risking a real message.
func (a *Adapter) probe(ctx context.Context) error {
	var out struct {
		IPList []string `json:"ip_list"`
	}
	return a.callGet(ctx, "/cgi-bin/get_api_domain_ip", &out)
}

// Send delivers replies outside a conversation turn (a reminder), as
// bot.Sender: inside the chat's reply window as customer-service messages
// when the allowance covers them all; otherwise as a subscription message
// (RemindTemplate) if the user accepted one. With neither it sends
// nothing and returns an error wrapping bot.ErrCannotPush: WeChat allows
// nothing else. A chat whose user unfollowed wraps bot.ErrGone.
func (a *Adapter) Send(ctx context.Context, chat string, replies []bot.Reply) error {
	if bot.ChannelOf(chat) != bot.ChannelWeChat {
		return fmt.Errorf("wechat send: %q is not a WeChat chat", bot.ChannelOf(chat))
	}
	if c := a.opts.Coordinator; c != nil {
		done, _, err := c.Begin(ctx, chat, 0)
		if err != nil {
			return fmt.Errorf("wechat send: %w", err)
		}
		defer done(false)
	}
	r := render(replies)
	w := a.loadWindow(ctx, chat)
	if w.open(a.now()) && len(r.parts) <= w.Left {
		for i, p := range r.parts {
			err := a.sendText(ctx, bot.Local(chat), p)
			switch classify(err) {
			case sentOK:
				w.Left--
				a.saveWindow(ctx, chat, w)
				a.m.Send("sent", 1)
				continue
			case gone:
				a.gone(ctx, chat)
				return fmt.Errorf("wechat send: %w: %w", bot.ErrGone, err)
			case outOfWindow, overLimit:
				w.Left = 0
				a.saveWindow(ctx, chat, w)
				if i == 0 {
					return a.sendTemplate(ctx, chat, replies) // nothing went out: the other way
				}
			}
			if i == 0 && classify(err) == notSentErr {
				return fmt.Errorf("wechat send: %w", &notSentError{err})
			}
			return fmt.Errorf("wechat send part %d: %w", i, err)
		}
		return nil
	}
	return a.sendTemplate(ctx, chat, replies)
}

// ErrNoWindow is wrapped by Send when a chat can be reached neither
// inside its reply window nor by a subscription message.
var ErrNoWindow = fmt.Errorf("outside the reply window and no subscription message: %w", bot.ErrCannotPush)

// sendTemplate sends a reminder as a subscription message: the template
// must have two "thing" keywords, thing1 the subject and thing2 what to
// do (20 characters each, WeChat's limit for "thing").
func (a *Adapter) sendTemplate(ctx context.Context, chat string, replies []bot.Reply) error {
	tmpl := a.opts.RemindTemplate
	openid := bot.Local(chat)
	if tmpl == "" {
		a.m.Send("skipped", 1)
		return fmt.Errorf("wechat send: %w", ErrNoWindow)
	}
	if v, ok, err := a.opts.Store.Value(ctx, subName(openid, tmpl)); err != nil {
		return fmt.Errorf("wechat send: %w", err)
	} else if !ok || v != "1" {
		a.m.Send("skipped", 1)
		return fmt.Errorf("wechat send: %w", ErrNoWindow)
	}
	subject, todo := templateText(replies)
	msg := &message.SubscribeMessage{
		ToUser: openid, TemplateID: tmpl,
		Data: map[string]*message.SubscribeDataItem{"thing1": {Value: subject}, "thing2": {Value: todo}},
	}
	err := a.call(ctx, "/cgi-bin/message/subscribe/bizsend", msg)
	var ae *APIError
	switch {
	case err == nil:
		a.m.Send("template", 1)
		if _, err := a.opts.Store.SetValue(ctx, subName(openid, tmpl), "1", subTTL, false); err != nil {
			a.log.Warn("renew subscription", "err", err)
		}
		return nil
	case errors.As(err, &ae) && ae.Code == codeNotSubscribed:
		// Refused or used up (a one-time subscription): ask again later.
		a.opts.Store.DeleteValue(ctx, subName(openid, tmpl), "")
		a.m.Send("skipped", 1)
		return fmt.Errorf("wechat send: %w: %w", ErrNoWindow, err)
	case classify(err) == gone:
		a.gone(ctx, chat)
		return fmt.Errorf("wechat send: %w: %w", bot.ErrGone, err)
	case classify(err) == notSentErr:
		return fmt.Errorf("wechat send: %w", &notSentError{err})
	}
	return fmt.Errorf("wechat send: %w", err)
}

// templateText is a reminder as the two short fields of a subscription
// message: its first line (the subject, the ID number masked already)
// and what to do.
func templateText(replies []bot.Reply) (subject, todo string) {
	text := ""
	for _, r := range replies {
		if t := bot.PlainText(r); t != "" {
			text = t
			break
		}
	}
	line, _, _ := cutLine(text)
	subject = trimRunes(stripParens(line), 20)
	todo = "进入公众号发送 /backpay 查看"
	if !hasHan(text) {
		todo = "Open the account: /backpay"
	}
	return subject, trimRunes(todo, 20)
}

// Temporary reports whether a failed Send certainly sent nothing and may
// work later (the API did not answer or was busy). Timeouts and 5xx are
// not: the message may have gone out.
func Temporary(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}

type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }
