package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/records"
)

const (
	dialogVerify = "verify"
	stepID       = "id"
	stepContact  = "contact"
	stepCode     = "code"

	// linkTTL is how long a verification holds before the user must
	// verify again.
	linkTTL = 90 * 24 * time.Hour
)

// Verification throttles. Someone who knows another person's ID number
// must not be able to lock its owner out, nor try as fast as they like
// (the trade-off is in the README, "Verification throttling"):
//
//   - per ID number: three attempts at once, then a wait after each of a
//     minute, doubling, at most a quarter of an hour. The owner waits
//     minutes at worst, never a day; a stranger gets under a hundred
//     attempts a day on one number however many accounts they use (NIST SP
//     800-63B §5.2.2 asks for at most 100 failures before anything
//     stronger).
//   - per user: five attempts at once, then an hour, doubling, at most a
//     day: an account probing ID numbers is slowed to a few a day, and it
//     locks out no one but itself.
//
// Attempts are charged at the step that decides (the contact), before it
// is evaluated, so concurrent sessions cannot exceed either budget; the
// user's first, so that an account out of attempts charges no ID number.
// A success clears the ID number's throttle and costs the user nothing.
var (
	userThrottle = ThrottlePolicy{Free: 5, Delay: time.Hour, MaxDelay: 24 * time.Hour, Window: 24 * time.Hour}
	idThrottle   = ThrottlePolicy{Free: 3, Delay: time.Minute, MaxDelay: 15 * time.Minute, Window: 24 * time.Hour}
)

// phoneDomain separates phone tags from every other keyed tag.
const phoneDomain = "phone"

// PhoneTag is the keyed tag of the phone a person verified with, as kept
// in Link.PhoneTag and ReminderSetting.PhoneTag: bound to the person, so
// that two links with one phone do not show it.
func PhoneTag(keys *keyring.Ring, personID, phone string) string {
	return keys.Tag(phoneDomain, personID+"\x00"+records.NormalizePhone(phone))
}

// PhoneMatches reports whether tag is PhoneTag of that person and phone,
// and whether it was made under the current key. A tag made under a key
// no longer in the ring cannot be checked and is an error.
func PhoneMatches(keys *keyring.Ring, tag, personID, phone string) (ok, current bool, err error) {
	return keys.Match(phoneDomain, personID+"\x00"+records.NormalizePhone(phone), tag)
}

// shanghai is where users live; times shown to them are in this zone.
var shanghai = mustZone("Asia/Shanghai")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		// The zone database is embedded by cmd/shebao (time/tzdata); a
		// fixed +08:00 is the same for Shanghai, which has no DST.
		return time.FixedZone(name, 8*3600)
	}
	return loc
}

// The throttle keys. Their spelling is what the previous release hashed
// into its attempt keys; the store's migration relies on it.
// userKey names a user's throttle. A Telegram user keeps the name of the
// release before identities were strings ("user:42"), so its throttle
// carries over.
func userKey(id string) string {
	if ChannelOf(id) == ChannelTelegram {
		return "user:" + Local(id)
	}
	return "user:" + id
}
func idKey(person string) string  { return "id:" + person }
func fmtUntil(u time.Time) string { return u.In(shanghai).Format("2006-01-02 15:04") }

func userThrottleOf(id string) Throttle   { return Throttle{Key: userKey(id), Policy: userThrottle} }
func idThrottleOf(person string) Throttle { return Throttle{Key: idKey(person), Policy: idThrottle} }

func runVerify(ctx context.Context, t *turn, arg string) error {
	if t.e.cfg.Records == nil || t.e.cfg.Attempts == nil {
		t.say(t.l("抱歉，本服务暂未接入个人记录。", "Sorry, personal records are not available on this service."))
		return nil
	}
	byCode := !t.caps().Contact
	if byCode && t.e.cfg.SMS == nil {
		t.outcome = "no_sms"
		t.say(t.l(
			"抱歉，在这里验证身份需要短信验证码，本服务尚未开通短信。政策问题可以直接问我。",
			"Sorry, verifying here needs a text-message code, and this service has no text messaging set up. You can still ask me policy questions."))
		return nil
	}
	if d := t.st.Dialog; byCode && d.Name == dialogVerify && d.Step == stepCode && !t.st.Link.Valid(t.now) {
		switch {
		case arg == "resend":
			return t.sendCode(ctx, d.Data["id"])
		case arg != "restart" && t.pendingCode(d.Data["id"]):
			// /verify again while a code is on its way: keep it.
			t.say(fmt.Sprintf(t.l(
				"验证码已经发出（%s），5分钟内有效，收到后直接在这里输入即可。要换一个身份证号码，请点下方按钮。",
				"A code is on its way (%s) and is valid for 5 minutes: type it here when it arrives. To use another ID number, tap the button below."),
				records.MaskID(d.Data["id"])),
				append(codeButtons(t), []Button{btn(t.l("换一个身份证号码", "Use another ID number"), "verify:restart")})...)
			return nil
		}
	}
	if t.st.Link.Valid(t.now) {
		t.say(fmt.Sprintf(t.l(
			"您已验证为 %s（有效至 %s）。\n可以查看 /records 缴费记录、/balance 余额、/backpay 补缴方案。要解除关联请发送 /forget。",
			"You are verified as %s (until %s).\nSee /records, /balance or /backpay. To unlink, send /forget."),
			records.MaskID(t.st.Link.PersonID), fmtUntil(t.st.Link.Until)), recordButtons(t)...)
		return nil
	}
	if done, err := t.checkThrottled(ctx, userThrottleOf(t.msg.User)); done || err != nil {
		return err
	}
	t.setDialog(Dialog{Name: dialogVerify, Step: stepID})
	if byCode {
		t.say(t.l(
			"请发送您的18位居民身份证号码。\n核对后，我会向记录中登记的手机号发送短信验证码。号码只用于核对，我不会完整显示它。发送 /cancel 可随时取消。",
			"Please send your 18-character resident ID number.\nI will then text a code to the phone number on your record. The ID number is only used to match your record and is never shown in full. Send /cancel at any time to stop."))
		return nil
	}
	t.say(t.l(
		"请发送您的18位居民身份证号码。\n号码只用于和记录核对，我不会完整显示它。发送 /cancel 可随时取消。",
		"Please send your 18-character resident ID number.\nIt is only used to match your record and is never shown in full. Send /cancel at any time to stop."))
	return nil
}

// checkThrottled tells the user early when verification would be refused
// at the deciding step, and reports whether it would. It decides nothing:
// Reserve does, at the contact.
func (t *turn) checkThrottled(ctx context.Context, ts ...Throttle) (bool, error) {
	until, err := t.e.cfg.Attempts.Throttled(ctx, ts, t.now)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.unavailable()
			return true, nil
		}
		return true, fmt.Errorf("check verification throttle: %w", err)
	}
	if until.IsZero() {
		return false, nil
	}
	t.paused(until)
	return true, nil
}

// paused ends the dialog: verification is throttled until then.
func (t *turn) paused(until time.Time) {
	t.endDialog()
	t.outcome = "locked"
	t.replies = append(t.replies, Reply{RemoveKeyboard: true, Body: body(fmt.Sprintf(t.l(
		"验证失败次数过多，为保护您的信息，验证已暂停。请在 %s（北京时间）之后再试。",
		"Too many failed attempts. To protect your data, verification is paused. Please try again after %s (Beijing time)."),
		fmtUntil(until)))})
}

// finish settles a reservation; a failure to do so costs at most one
// attempt of the budget, so it is logged, not the user's problem.
func (t *turn) finish(ctx context.Context, r Reservation, o Outcome) {
	if err := t.e.cfg.Attempts.Finish(ctx, r, o); err != nil {
		t.e.log.Warn("settle verification attempt", "user", t.msg.User, "err", err)
	}
}

// stepVerify takes the ID number, then the shared contact.
func stepVerify(ctx context.Context, t *turn) error {
	switch t.st.Dialog.Step {
	case stepID:
		return verifyID(ctx, t)
	case stepContact:
		return verifyContact(ctx, t)
	case stepCode:
		return verifyCode(ctx, t)
	}
	t.endDialog()
	return runVerify(ctx, t, "")
}

func verifyID(ctx context.Context, t *turn) error {
	if t.msg.Text == "" {
		t.say(t.l("请用文字发送您的18位身份证号码，或发送 /cancel 取消。",
			"Please type your 18-character ID number, or send /cancel."))
		return nil
	}
	typed := normalizeDigits(t.msg.Text)
	if !strings.ContainsAny(typed, "0123456789") && hasHan(typed) {
		// Probably a question: the user may have forgotten the dialog.
		t.say(t.l("我正在等您的18位身份证号码。想先问别的问题，请发送 /cancel 退出验证。",
			"I am waiting for your 18-character ID number. To ask something else first, send /cancel."))
		return nil
	}
	id, err := records.CheckID(typed)
	if err != nil {
		t.outcome = "bad_id"
		t.say(idProblem(t, typed, err) + t.l("（发送 /cancel 可退出）", " (Send /cancel to stop.)"))
		return nil
	}
	if done, err := t.checkThrottled(ctx, userThrottleOf(t.msg.User), idThrottleOf(id)); done || err != nil {
		return err
	}
	if !t.caps().Contact {
		return t.sendCode(ctx, id)
	}
	t.setDialog(Dialog{Name: dialogVerify, Step: stepContact, Data: map[string]string{"id": id}})
	t.replies = append(t.replies, Reply{
		Body: body(fmt.Sprintf(t.l(
			"收到：%s。\n现在请点下方按钮“分享我的手机号”，我会核对它是否与记录中的手机号一致。",
			"Got it: %s.\nNow tap the button below to share your phone number; I will check it against your record."),
			records.MaskID(id))),
		AskContact: t.l("📱 分享我的手机号", "📱 Share my phone number"),
	})
	return nil
}

// normalizeDigits turns what people type for an ID number into its plain
// form: input methods often give full-width digits and letters, and people
// group the number with spaces or dashes ("110105 19880312 0014").
func normalizeDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '０' && r <= '９':
			b.WriteRune('0' + (r - '０'))
		case r == 'ｘ' || r == 'Ｘ':
			b.WriteRune('X')
		case r == ' ' || r == '-' || r == '\u3000' || r == '－':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func hasHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

// idProblem says exactly what is wrong with a typed ID number.
func idProblem(t *turn, typed string, err error) string {
	switch {
	case errors.Is(err, records.ErrIDLength):
		return fmt.Sprintf(t.l(
			"身份证号码应为18位，您发送的是%d位。请核对后重新发送。",
			"A resident ID number has 18 characters; yours has %d. Please check and send it again."),
			utf8.RuneCountInString(typed))
	case errors.Is(err, records.ErrIDChars):
		return t.l("身份证号码前17位应为数字，最后一位是数字或X。请核对后重新发送。",
			"The first 17 characters must be digits and the last a digit or X. Please check and send it again.")
	case errors.Is(err, records.ErrIDDate):
		return t.l("身份证号码中的出生日期（第7–14位）不是有效日期。请核对后重新发送。",
			"The birth date inside the number (characters 7–14) is not a valid date. Please check and send it again.")
	case errors.Is(err, records.ErrIDChecksum):
		return t.l("身份证号码最后一位（校验码）不对，可能有一位输错了。请核对后重新发送。",
			"The last character (the check character) does not match; one character may be mistyped. Please check and send it again.")
	}
	return t.l("这不是有效的身份证号码，请核对后重新发送。", "That is not a valid ID number. Please check and send it again.")
}

func verifyContact(ctx context.Context, t *turn) error {
	c := t.msg.Contact
	if c == nil {
		t.replies = append(t.replies, Reply{
			Body: body(t.l("请点下方按钮分享您的手机号，或发送 /cancel 取消。",
				"Please tap the button below to share your phone number, or send /cancel.")),
			AskContact: t.l("📱 分享我的手机号", "📱 Share my phone number"),
		})
		return nil
	}
	if c.User != t.msg.User {
		t.outcome = "foreign_contact"
		t.replies = append(t.replies, Reply{
			Body: body(t.l("这不是您本人的联系人。请点下方按钮分享您自己的手机号。",
				"That is not your own contact. Please tap the button below to share your own number.")),
			AskContact: t.l("📱 分享我的手机号", "📱 Share my phone number"),
		})
		return nil
	}
	id := t.st.Dialog.Data["id"]
	// The decision: charge the attempt first, atomically per throttle, so
	// that sessions racing each other cannot evaluate more attempts than
	// the throttles allow, whatever they were told at the ID step.
	r, ok, err := t.reserveAttempt(ctx, id)
	if !ok {
		return err
	}
	p, err := t.e.cfg.Records.Person(ctx, id)
	switch {
	case err == nil && records.NormalizePhone(c.Phone) == records.NormalizePhone(p.Phone):
		t.verified(ctx, r, id, p.Phone)
		return nil
	case err != nil && !errors.Is(err, records.ErrNotFound):
		t.finish(context.WithoutCancel(ctx), r, NotEvaluated)
		return fmt.Errorf("look up person: %w", err)
	}
	// Unknown ID and wrong phone get the same answer, so nobody can
	// probe which ID numbers are on record. The attempt was charged.
	t.outcome = "mismatch"
	t.finish(ctx, r, Failed)
	t.endDialog()
	if until := r.Until; !until.IsZero() {
		t.outcome = "locked"
		t.replies = append(t.replies, Reply{RemoveKeyboard: true, Body: body(fmt.Sprintf(t.l(
			"身份证号码与手机号不匹配。失败次数过多，验证已暂停，请在 %s（北京时间）之后再试。",
			"The ID number and phone number do not match. Too many failed attempts: verification is paused until %s (Beijing time)."),
			fmtUntil(until)))})
		return nil
	}
	t.replies = append(t.replies, Reply{RemoveKeyboard: true, Body: body(t.l(
		"身份证号码与手机号不匹配，无法验证。请确认号码无误、分享的是登记时留的手机号，然后发送 /verify 重试。",
		"The ID number and phone number do not match, so I cannot verify you. Check the number and share the phone you registered with, then send /verify to try again."))})
	return nil
}

// verified links the user to the person whose second factor they just
// gave, settling reservation r of [user, ID number] throttles. The owner
// proved themselves: the ID number's throttle is cleared, whoever charged
// it. The user's earlier failures still count for the day (else verifying
// oneself would reset a budget for probing others); only this attempt's
// charge is withdrawn.
func (t *turn) verified(ctx context.Context, r Reservation, id, phone string) {
	t.finish(ctx, Reservation{OK: true, Throttles: r.Throttles[1:], Token: r.Token}, Succeeded)
	t.finish(ctx, Reservation{OK: true, Throttles: r.Throttles[:1], Token: r.Token}, NotEvaluated)
	t.st.Link = Link{PersonID: id, Until: t.now.Add(linkTTL), PhoneTag: PhoneTag(t.e.cfg.Keys, id, phone)}
	t.dirty |= PartLink
	t.endDialog()
	t.outcome = "verified"
	t.e.log.Info("user verified", "user", t.msg.User)
	done := fmt.Sprintf(t.l(
		"✅ 验证成功：%s。\n验证有效期90天。现在可以查看您的缴费记录、医保账户余额和补缴方案。",
		"✅ Verified: %s.\nThe verification holds for 90 days. You can now see your contributions, medical-account balance and back-payment plan."),
		records.MaskID(id))
	if t.caps().Contact {
		// The contact keyboard goes with a message of its own: a
		// Telegram message removes a reply keyboard or carries inline
		// buttons, not both.
		t.replies = append(t.replies, Reply{RemoveKeyboard: true, Body: body(done)})
		t.say(t.l("想先看哪一项？", "What would you like to see first?"), recordButtons(t)...)
	} else {
		t.say(done, recordButtons(t)...)
	}
	t.offerReminders()
}

// recordButtons are the record commands as buttons.
func recordButtons(t *turn) [][]Button {
	return [][]Button{
		{btn(t.l("缴费记录", "Records"), "records:"), btn(t.l("账户余额", "Balance"), "balance:")},
		{btn(t.l("补缴方案", "Back-payment plan"), "backpay:"), btn(t.l("所需材料", "Documents"), "documents:")},
	}
}

// reserveAttempt charges one verification attempt to the user and to the
// ID number, the step that decides (the contact, or the code). When it
// cannot go on, ok is false and the user has been told why (Redis away,
// or the attempts paused); err is what the caller returns.
func (t *turn) reserveAttempt(ctx context.Context, id string) (r Reservation, ok bool, err error) {
	r, err = t.e.cfg.Attempts.Reserve(ctx, []Throttle{userThrottleOf(t.msg.User), idThrottleOf(id)}, t.now)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.unavailable()
			return r, false, nil
		}
		return r, false, fmt.Errorf("reserve verification attempt: %w", err)
	}
	if !r.OK {
		t.paused(r.Until)
		return r, false, nil
	}
	return r, true, nil
}
