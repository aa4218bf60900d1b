package bot

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
	"time"

	"github.com/shebao/shebao/bot/sms"
	"github.com/shebao/shebao/records"
)

// Verification by a one-time code, for channels that cannot share a
// contact (the web chat, WeChat): the user types an ID number, a code goes
// by SMS to the phone on record for it (never to a number the user
// typed), and typing the code back is the second factor.
//
// Only a keyed tag of the code is kept, in the sealed dialog, bound to the
// user, the ID number and the phone it was sent to. Checking a code is an
// attempt under the same throttles as a shared contact (userThrottle,
// idThrottle); a code takes at most codeTries wrong guesses and lives
// codeTTL. An ID number not on record gets the same reply and a code that
// was never sent, so nobody learns which numbers are on record.
const (
	codeTTL    = 5 * time.Minute
	codeTries  = 3
	codeDomain = "smscode"
)

// SMS costs money and SMS pumping is a fraud: sending is throttled per
// user (a web session), per client address (an IPv6 client by its /64),
// per ID number (so nobody can flood a stranger's phone; at worst the
// owner waits half an hour for a code while a stranger keeps asking for
// their number) and in total. The per-address budget is generous because
// mobile carriers put many people behind one address.
var (
	smsUserThrottle = ThrottlePolicy{Free: 3, Delay: 10 * time.Minute, MaxDelay: 24 * time.Hour, Window: 24 * time.Hour}
	smsAddrThrottle = ThrottlePolicy{Free: 20, Delay: time.Minute, MaxDelay: time.Hour, Window: 24 * time.Hour}
	smsIDThrottle   = ThrottlePolicy{Free: 1, Delay: time.Minute, MaxDelay: 30 * time.Minute, Window: 24 * time.Hour}
)

// DefaultSMSHourlyCap is Config.SMSHourlyCap's default.
const DefaultSMSHourlyCap = 500

// smsThrottles are charged, in this order, for every code asked for,
// whether or not the ID number is on record.
func (t *turn) smsThrottles(id string) []Throttle {
	ts := []Throttle{{Key: "sms-user:" + t.msg.User, Policy: smsUserThrottle}}
	if a := addressKey(t.msg.Remote); a != "" {
		ts = append(ts, Throttle{Key: "sms-addr:" + a, Policy: smsAddrThrottle})
	}
	return append(ts, Throttle{Key: "sms-id:" + id, Policy: smsIDThrottle})
}

// smsCap is the total: charged only for a text that goes out, so that
// made-up ID numbers cannot spend it. Its free budget is the cap; once an
// hour has seen that many texts, none goes out until an hour after the
// last one: a fuse against pumping, logged as an error.
func (t *turn) smsCap() Throttle {
	hourly := t.e.cfg.SMSHourlyCap
	if hourly <= 0 {
		hourly = DefaultSMSHourlyCap
	}
	return Throttle{Key: "sms-all:", Policy: ThrottlePolicy{Free: hourly, Delay: time.Hour, MaxDelay: time.Hour, Window: time.Hour}}
}

// addressKey is the part of a client address its limit is kept under: an
// IPv4 address whole, an IPv6 one by its /64 (one client can hold all of
// a /64).
func addressKey(remote string) string {
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return remote
	}
	a = a.Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}

// newCode is six random digits.
func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// codeData is what a code's tag binds: who asked, for which person, sent
// to which phone.
func codeData(user, id, phone, code string) string {
	return user + "\x00" + id + "\x00" + records.NormalizePhone(phone) + "\x00" + code
}

// sendCode sends a code for person id to the phone on record and waits
// for it in the dialog. Whatever happens after the send throttles admit
// it (the number is not on record, the hourly cap is spent, the gateway
// refuses), the reply is the same and takes the same time: the sender
// only queues (sms.Queue), and no branch waits on the gateway.
func (t *turn) sendCode(ctx context.Context, id string) error {
	r, err := t.e.cfg.Attempts.Reserve(ctx, t.smsThrottles(id), t.now)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.unavailable()
			return nil
		}
		return fmt.Errorf("reserve code: %w", err)
	}
	if !r.OK {
		t.outcome = "sms_limited"
		msg := fmt.Sprintf(t.l(
			"验证码发送太频繁。为防止短信被滥用，请在 %s（北京时间）之后再试。",
			"Too many codes have been asked for. To keep text messages from being abused, please try again after %s (Beijing time)."),
			fmtUntil(r.Until))
		if d := t.st.Dialog; t.pendingCode(id) {
			// The code already sent still works.
			t.setDialog(d)
			t.say(msg+t.l("\n已经发出的验证码仍然有效，收到后直接输入即可。", "\nThe code already sent still works: type it when it arrives."), codeButtons(t)...)
			return nil
		}
		t.endDialog()
		t.say(msg)
		return nil
	}
	code := newCode()
	p, err := t.e.cfg.Records.Person(ctx, id)
	switch {
	case err == nil:
		t.deliver(ctx, p.Phone, code)
	case errors.Is(err, records.ErrNotFound):
		// The same reply as for a number on record; the code goes
		// nowhere and cannot match the empty phone of a real person.
	default:
		t.finish(context.WithoutCancel(ctx), r, NotEvaluated)
		return fmt.Errorf("look up person: %w", err)
	}
	tag := t.e.cfg.Keys.Tag(codeDomain, codeData(t.msg.User, id, p.Phone, code))
	t.setDialog(Dialog{Name: dialogVerify, Step: stepCode, Data: map[string]string{
		"id": id, "code": tag, "exp": strconv.FormatInt(t.now.Add(codeTTL).Unix(), 10), "wrong": "0",
	}})
	t.outcome = "code_sent"
	var d doc
	d.text(fmt.Sprintf(t.l(
		"收到：%s。\n如果这个身份证号码在记录中，验证码已通过短信发到记录中登记的手机号，%d分钟内有效。请在这里输入6位验证码。\n没收到？请确认登记的手机号仍在使用；号码已更换的，请带身份证到参保地经办机构更新。",
		"Got it: %s.\nIf this ID number is on record, a code has been texted to the phone number on that record; it is valid for %d minutes. Please type the 6-digit code here.\nNo text? Check that the phone on record is still yours; if your number changed, update it at your local insurance office with your ID card."),
		records.MaskID(id), int(codeTTL/time.Minute)))
	t.show(&d, codeButtons(t)...)
	return nil
}

// deliver hands a code to the sender under the hourly cap. A failure is
// the operator's to see (logged); the user's reply does not change.
func (t *turn) deliver(ctx context.Context, phone, code string) {
	r, err := t.e.cfg.Attempts.Reserve(ctx, []Throttle{t.smsCap()}, t.now)
	switch {
	case err != nil:
		t.e.log.Warn("verification code not sent: cap unavailable", "user", t.msg.User, "err", err)
		return
	case !r.OK:
		t.e.log.Error("verification code not sent: SMS_HOURLY_CAP reached; texts resume at the time given", "until", r.Until)
		return
	}
	if err := t.e.cfg.SMS.Send(ctx, sms.Message{Phone: phone, Code: code, Lang: t.lang, TTL: codeTTL}); err != nil {
		t.e.log.Warn("verification code not sent", "user", t.msg.User, "err", err)
		return
	}
	t.e.log.Info("verification code sent", "user", t.msg.User)
}

// pendingCode reports whether the dialog waits for an unexpired code sent
// for person id.
func (t *turn) pendingCode(id string) bool {
	d := t.st.Dialog
	if d.Name != dialogVerify || d.Step != stepCode || d.Data["id"] != id {
		return false
	}
	exp, _ := strconv.ParseInt(d.Data["exp"], 10, 64)
	return t.now.Before(time.Unix(exp, 0))
}

// codeButtons: type the code, or have another sent.
func codeButtons(t *turn) [][]Button {
	return [][]Button{
		{{Text: t.l("输入验证码", "Enter the code"), Data: "code", Kind: Code}},
		{btn(t.l("重新发送验证码", "Send a new code"), "verify:resend")},
	}
}

// verifyCode takes the code.
func verifyCode(ctx context.Context, t *turn) error {
	d := t.st.Dialog
	typed := codeIn(normalizeDigits(t.msg.Text))
	if !isCode(typed) {
		if hasHan(typed) {
			t.say(t.l("我正在等短信验证码（6位数字）。想先问别的问题，请发送 /cancel 退出验证。",
				"I am waiting for the 6-digit code from the text message. To ask something else first, send /cancel."), codeButtons(t)...)
			return nil
		}
		t.say(t.l("验证码是6位数字，请核对短信后重新输入，或发送 /cancel 取消。",
			"The code is 6 digits. Please check the text message and type it again, or send /cancel."), codeButtons(t)...)
		return nil
	}
	exp, _ := strconv.ParseInt(d.Data["exp"], 10, 64)
	if !t.now.Before(time.Unix(exp, 0)) {
		t.outcome = "code_expired"
		t.say(t.l("这个验证码已过期（有效期5分钟）。请点“重新发送验证码”。",
			"That code has expired (codes last 5 minutes). Tap \"Send a new code\"."),
			[]Button{btn(t.l("重新发送验证码", "Send a new code"), "verify:resend")})
		return nil
	}
	id := d.Data["id"]
	r, ok, err := t.reserveAttempt(ctx, id)
	if !ok {
		return err
	}
	p, err := t.e.cfg.Records.Person(ctx, id)
	switch {
	case err == nil:
		ok, _, merr := t.e.cfg.Keys.Match(codeDomain, codeData(t.msg.User, id, p.Phone, typed), d.Data["code"])
		if merr == nil && ok {
			t.verified(ctx, r, id, p.Phone)
			return nil
		}
	case !errors.Is(err, records.ErrNotFound):
		t.finish(context.WithoutCancel(ctx), r, NotEvaluated)
		return fmt.Errorf("look up person: %w", err)
	}
	t.finish(ctx, r, Failed)
	t.outcome = "mismatch"
	wrong, _ := strconv.Atoi(d.Data["wrong"])
	wrong++
	if wrong >= codeTries || !r.Until.IsZero() {
		t.endDialog()
		msg := t.l("验证码不正确。", "That code is not right. ")
		if wrong >= codeTries {
			msg += t.l("错误次数过多，这个验证码已作废。", "After too many wrong tries this code no longer works. ")
		}
		if !r.Until.IsZero() {
			t.outcome = "locked"
			msg += fmt.Sprintf(t.l("为保护您的信息，验证已暂停，请在 %s（北京时间）之后发送 /verify 重试。",
				"To protect your data, verification is paused: send /verify again after %s (Beijing time)."), fmtUntil(r.Until))
		} else {
			msg += t.l("需要时请发送 /verify 重新开始。", "Send /verify to start again when you are ready.")
		}
		t.replies = append(t.replies, TextReply(msg))
		return nil
	}
	d.Data["wrong"] = strconv.Itoa(wrong)
	t.setDialog(d)
	t.say(fmt.Sprintf(t.l("验证码不正确，请核对短信后重新输入；收到多条短信的，请输入最新一条中的验证码（还可以再试%d次）。",
		"That code is not right. Please check the text message and type it again; if you got several, use the newest one (%d more tries)."), codeTries-wrong), codeButtons(t)...)
	return nil
}

// codeIn finds the code in what the user typed: the text itself, or its
// one run of six digits when the text message was pasted whole
// ("【社保医保助手】您的验证码是 123456，5 分钟内有效").
func codeIn(s string) string {
	if isCode(s) {
		return s
	}
	found := ""
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			i++
			continue
		}
		if j-i == 6 {
			if found != "" {
				return s // two candidates: let the user say which
			}
			found = s[i:j]
		}
		i = j
	}
	if found == "" {
		return s
	}
	return found
}

// isCode reports whether s is six ASCII digits.
func isCode(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
