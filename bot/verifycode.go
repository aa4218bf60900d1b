package bot

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
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
	codeTTL   = 5 * time.Minute
	codeTries = 3
	// codeSendTimeout bounds one delivery, the gateway's retries
	// included (sms.Webhook gives up within about ten seconds).
	codeSendTimeout = 20 * time.Second
	codeDomain      = "smscode"
)

// SMS costs money and SMS pumping is a fraud: sending is throttled per
// user (a web session), per client address, per ID number (so nobody can
// flood a stranger's phone) and in total. The per-address budget is
// generous because mobile carriers put many people behind one address.
var (
	smsUserThrottle = ThrottlePolicy{Free: 3, Delay: 10 * time.Minute, MaxDelay: 24 * time.Hour, Window: 24 * time.Hour}
	smsAddrThrottle = ThrottlePolicy{Free: 20, Delay: time.Minute, MaxDelay: time.Hour, Window: 24 * time.Hour}
	smsIDThrottle   = ThrottlePolicy{Free: 1, Delay: time.Minute, MaxDelay: 6 * time.Hour, Window: 24 * time.Hour}
)

// DefaultSMSHourlyCap is Config.SMSHourlyCap's default.
const DefaultSMSHourlyCap = 500

// smsThrottles are charged, in this order, for each code sent. The global
// cap is a throttle whose free budget is the cap: once an hour has seen
// that many codes, none goes out until an hour after the last one, a
// circuit breaker rather than a leak.
func (t *turn) smsThrottles(id string) []Throttle {
	ts := []Throttle{{Key: "sms-user:" + t.msg.User, Policy: smsUserThrottle}}
	if t.msg.Remote != "" {
		ts = append(ts, Throttle{Key: "sms-addr:" + t.msg.Remote, Policy: smsAddrThrottle})
	}
	hourly := t.e.cfg.SMSHourlyCap
	if hourly <= 0 {
		hourly = DefaultSMSHourlyCap
	}
	return append(ts,
		Throttle{Key: "sms-id:" + id, Policy: smsIDThrottle},
		Throttle{Key: "sms-all:", Policy: ThrottlePolicy{Free: hourly, Delay: time.Hour, MaxDelay: time.Hour, Window: time.Hour}})
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
// for it in the dialog.
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
		t.endDialog()
		t.outcome = "sms_limited"
		t.say(fmt.Sprintf(t.l(
			"验证码发送太频繁。为防止短信被滥用，请在 %s（北京时间）之后再试。",
			"Too many codes have been sent. To keep text messages from being abused, please try again after %s (Beijing time)."),
			fmtUntil(r.Until)))
		return nil
	}
	code := newCode()
	p, err := t.e.cfg.Records.Person(ctx, id)
	switch {
	case err == nil:
		sctx, cancel := context.WithTimeout(ctx, codeSendTimeout)
		err = t.e.cfg.SMS.Send(sctx, sms.Message{Phone: p.Phone, Code: code, Lang: t.lang, TTL: codeTTL})
		cancel()
		if err != nil {
			// Nothing went out: the sends are not charged.
			t.finish(context.WithoutCancel(ctx), r, NotEvaluated)
			t.e.log.Warn("send verification code", "user", t.msg.User, "err", err)
			t.endDialog()
			t.outcome = "sms_failed"
			t.say(t.l("抱歉，短信验证码暂时发送不出去，请稍后发送 /verify 再试。",
				"Sorry, the text message with your code could not be sent just now. Please send /verify again later."))
			return nil
		}
		t.e.log.Info("verification code sent", "user", t.msg.User)
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
	typed := normalizeDigits(t.msg.Text)
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
	r, err := t.e.cfg.Attempts.Reserve(ctx, []Throttle{userThrottleOf(t.msg.User), idThrottleOf(id)}, t.now)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.unavailable()
			return nil
		}
		return fmt.Errorf("reserve verification attempt: %w", err)
	}
	if !r.OK {
		t.paused(r.Until)
		return nil
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
	if !r.Until.IsZero() {
		t.paused(r.Until)
		return nil
	}
	if wrong >= codeTries {
		t.endDialog()
		t.say(t.l("验证码错误次数过多，这个验证码已作废。需要时请发送 /verify 重新开始。",
			"Too many wrong codes: this code no longer works. Send /verify to start again when you are ready."))
		return nil
	}
	d.Data["wrong"] = strconv.Itoa(wrong)
	t.setDialog(d)
	t.say(fmt.Sprintf(t.l("验证码不正确，请核对短信后重新输入（还可以再试%d次）。",
		"That code is not right. Please check the text message and type it again (%d more tries)."), codeTries-wrong), codeButtons(t)...)
	return nil
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
