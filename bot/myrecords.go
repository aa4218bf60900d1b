package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shebao/shebao/records"
)

// recordMonths is how far back /records looks.
const recordMonths = 24

var insuranceNames = map[records.Insurance][2]string{
	records.Medical:      {"医疗保险", "Medical insurance"},
	records.Pension:      {"养老保险", "Pension insurance"},
	records.Unemployment: {"失业保险", "Unemployment insurance"},
	records.Injury:       {"工伤保险", "Work-injury insurance"},
	records.Maternity:    {"生育保险", "Maternity insurance"},
}

func (t *turn) insName(i records.Insurance) string {
	n := insuranceNames[i]
	return t.l(n[0], n[1])
}

// notFoundGrace is how long a verification is kept once a sound record file
// no longer lists the person. A file published with someone missing by
// mistake is normally re-issued within days: a week covers a weekend and a
// working week to notice and import again, after which the user simply
// verifies again. Longer would keep an ID number linked to a chat for a
// person the records no longer know; the link shows nothing meanwhile,
// since every read finds nobody.
const notFoundGrace = 7 * 24 * time.Hour

// person returns the verified person of the turn, or ok=false after
// telling the user what to do instead.
func (t *turn) person(ctx context.Context) (records.Person, bool, error) {
	if t.e.cfg.Records == nil {
		t.say(t.l("抱歉，本服务暂未接入个人记录。", "Sorry, personal records are not available on this service."))
		return records.Person{}, false, nil
	}
	l := t.st.Link
	if !l.Valid(t.now) {
		t.outcome = "unverified"
		if l.PersonID != "" {
			t.st.Link = Link{}
			t.dirty |= PartLink
		}
		t.say(t.l(
			"查看个人记录前需要先验证身份，只有您本人能看到自己的记录。请发送 /verify 开始。",
			"To see personal records, first verify who you are: only you can see your own records. Send /verify to start."),
			[]Button{btn(t.l("🔐 验证身份", "🔐 Verify"), "verify:")})
		return records.Person{}, false, nil
	}
	p, err := t.e.cfg.Records.Person(ctx, l.PersonID)
	if err != nil {
		return records.Person{}, false, t.recordsFailed(ctx, fmt.Errorf("look up person: %w", err))
	}
	if !t.samePhone(ctx, p) {
		return records.Person{}, false, nil
	}
	return p, true, nil
}

// samePhone re-checks, at each records access, that the phone on record is
// still the one the link was verified with; when it is not, the link ends
// and the user is asked to verify again, shown nothing. A link an older
// release wrote has no tag and adopts the phone on record now: that
// release did not keep which phone it checked, and upgrading must keep
// every user. A tag made under a key since rotated out of first place is
// made again under the current one.
func (t *turn) samePhone(ctx context.Context, p records.Person) bool {
	if tag := t.st.Link.PhoneTag; tag != "" {
		ok, current, err := PhoneMatches(t.e.cfg.Keys, tag, p.ID, p.Phone)
		switch {
		case err != nil || !ok:
			// A tag whose key has left the keyring cannot be checked:
			// asking again is the safe side (README: keep a retired key
			// for the 90 days a link lasts).
			t.phoneChanged(ctx, err)
			return false
		case current:
			return true
		}
	}
	tag := PhoneTag(t.e.cfg.Keys, p.ID, p.Phone)
	t.st.Link.PhoneTag = tag
	t.dirty |= PartLink
	if rs := t.e.cfg.Reminders; rs != nil {
		s, on, err := rs.Reminder(ctx, t.msg.Chat, t.msg.User)
		if err == nil && on && s.PersonID == p.ID && s.PhoneTag != tag {
			s.PhoneTag = tag
			err = rs.SetReminder(ctx, s)
		}
		if err != nil {
			t.e.log.Warn("update the phone tag of a reminder setting", "user", t.msg.User, "err", err)
		}
	}
	return true
}

// phoneChanged ends a link whose phone is no longer the one on record,
// with the reminders that rest on it.
func (t *turn) phoneChanged(ctx context.Context, cause error) {
	t.outcome = "phone_changed"
	t.st.Link = Link{}
	t.dirty |= PartLink
	t.e.log.Info("phone on record is not the one verified; verification ended", "user", t.msg.User, "uncheckable", cause != nil)
	if rs := t.e.cfg.Reminders; rs != nil {
		if err := rs.StopReminder(ctx, t.msg.Chat, t.msg.User); err != nil {
			t.e.log.Warn("stop reminders after a phone change", "user", t.msg.User, "err", err)
		}
	}
	t.say(t.l(
		"您记录中的手机号与验证时的不同了（可能已在经办机构更新）。为保护您的信息，请重新验证身份后再查看记录：发送 /verify。",
		"The phone number on your record is not the one you verified with (it may have been updated at the bureau). To protect your data, please verify again before seeing your records: send /verify."),
		[]Button{btn(t.l("🔐 验证身份", "🔐 Verify"), "verify:")})
}

// recordsFailed answers a failed read of the verified person's records. Only
// a positive "not found" from the record file (which Open checked at start)
// touches the verification, and then only to end it after notFoundGrace;
// any other failure leaves it as it is. It returns an error only when the
// turn itself was cancelled.
func (t *turn) recordsFailed(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return err
	case errors.Is(err, records.ErrNotFound):
		t.notOnRecord(ctx)
	default:
		t.outcome = "unavailable"
		t.e.log.Warn("records unreadable; verification kept", "user", t.msg.User, "err", err)
		t.say(t.l(
			"抱歉，个人记录暂时无法读取，请稍后再试。您的身份验证仍然有效，无需重新验证。",
			"Sorry, the records cannot be read just now. Please try again later. Your verification is kept: there is no need to verify again."))
	}
	return nil
}

// notOnRecord keeps the verification of a person the record file no longer
// lists for notFoundGrace (never longer than it had), together with their
// reminder setting, which expires with it.
func (t *turn) notOnRecord(ctx context.Context) {
	t.outcome = "gone"
	until := t.now.Add(notFoundGrace)
	if t.st.Link.Until.After(until) {
		t.st.Link.Until = until
		t.dirty |= PartLink
		t.e.log.Info("verified person not in the records; verification kept for the grace period",
			"user", t.msg.User, "until", until.UTC().Format(time.RFC3339))
		if rs := t.e.cfg.Reminders; rs != nil {
			s, on, err := rs.Reminder(ctx, t.msg.Chat, t.msg.User)
			if err == nil && on && s.Until.After(until) {
				s.Until = until
				err = rs.SetReminder(ctx, s)
			}
			if err != nil {
				t.e.log.Warn("shorten reminder setting of a person not in the records", "user", t.msg.User, "err", err)
			}
		}
	}
	t.say(fmt.Sprintf(t.l(
		"当前记录中找不到您的信息，可能是记录正在更新。您的身份验证保留到 %s（北京时间），在此之前可以随时再试；如一直找不到，请咨询参保地经办机构。",
		"Your details are not in the current records; they may be being updated. Your verification is kept until %s (Beijing time), so you can try again until then. If they stay missing, please ask your local bureau."),
		fmtUntil(t.st.Link.Until)))
}

func runRecords(ctx context.Context, t *turn, _ string) error {
	p, ok, err := t.person(ctx)
	if !ok {
		return err
	}
	cur := records.MonthOf(t.now)
	from := cur.Add(1 - recordMonths)
	rows, err := t.e.cfg.Records.Contributions(ctx, p.ID, from, cur)
	if err != nil {
		return t.recordsFailed(ctx, fmt.Errorf("read contributions: %w", err))
	}
	var d doc
	d.line(boldf(t.l("%s 近%d个月缴费记录", "Contributions of %s, last %d months"), records.MaskID(p.ID), recordMonths),
		txtf(t.l("（%s 至 %s）", " (%s to %s)"), from, cur))
	if len(rows) == 0 {
		d.line(txt(t.l("这段时间没有缴费记录。", "No contributions on record in this period.")))
	}
	byIns := map[records.Insurance][]records.Contribution{}
	for _, c := range rows {
		byIns[c.Insurance] = append(byIns[c.Insurance], c)
	}
	anyProblem := false
	for _, ins := range records.Insurances() {
		cs := byIns[ins]
		if len(cs) == 0 {
			continue
		}
		var paid, unpaid []records.Month
		seen := map[records.Month]bool{}
		first := cs[0].Month
		for _, c := range cs {
			seen[c.Month] = true
			if c.Month.Before(first) {
				first = c.Month
			}
			if c.Status == records.StatusPaid {
				paid = append(paid, c.Month)
			} else {
				unpaid = append(unpaid, c.Month)
			}
		}
		// Months before the first contribution in the window are not
		// "missing": the person may not have been insured then. The
		// current month is not due yet.
		var missing []records.Month
		for m := first; m.Before(cur); m = m.Add(1) {
			if !seen[m] {
				missing = append(missing, m)
			}
		}
		d.blank()
		d.line(bold(t.insName(ins)))
		if len(paid) > 0 {
			d.line(txtf(t.l("✅ 已缴：%s", "✅ Paid: %s"), monthRanges(paid, t)))
		}
		if len(unpaid) > 0 {
			anyProblem = true
			d.line(txtf(t.l("⚠️ 欠缴（应缴未缴）：%s", "⚠️ Unpaid (due but not paid): %s"), monthRanges(unpaid, t)))
		}
		if len(missing) > 0 {
			anyProblem = true
			d.line(txtf(t.l("❌ 无缴费记录：%s", "❌ No record: %s"), monthRanges(missing, t)))
		}
	}
	d.blank()
	d.line(txt(t.l("以上为记录数据，实际以参保地经办机构系统为准。",
		"This is what the record shows; the local bureau's system is authoritative.")))
	var rows2 [][]Button
	if anyProblem {
		rows2 = append(rows2, []Button{btn(t.l("怎么补缴", "How to make it up"), "backpay:")})
	}
	t.show(&d, rows2...)
	return nil
}

// monthRanges compresses sorted-or-not months into "2024-01～2024-06、2024-09".
func monthRanges(ms []records.Month, t *turn) string {
	sorted := slices.Clone(ms)
	slices.SortFunc(sorted, func(a, b records.Month) int { return a.Sub(b) })
	var parts []string
	for i := 0; i < len(sorted); {
		j := i
		for j+1 < len(sorted) && sorted[j+1] == sorted[j].Add(1) {
			j++
		}
		if i == j {
			parts = append(parts, sorted[i].String())
		} else {
			parts = append(parts, sorted[i].String()+"～"+sorted[j].String())
		}
		i = j + 1
	}
	return strings.Join(parts, t.l("、", ", "))
}

func runBalance(ctx context.Context, t *turn, _ string) error {
	p, ok, err := t.person(ctx)
	if !ok {
		return err
	}
	bal, moves, err := t.e.cfg.Records.Balance(ctx, p.ID, 5)
	if err != nil {
		return t.recordsFailed(ctx, fmt.Errorf("read balance: %w", err))
	}
	var d doc
	d.line(boldf(t.l("医保个人账户余额：¥%s", "Medical personal-account balance: ¥%s"), bal))
	if len(moves) == 0 {
		d.line(txt(t.l("暂无账户收支记录。", "No account movements on record.")))
	} else {
		d.line(txt(t.l("最近几笔：", "Latest movements:")))
		for _, m := range moves {
			sign := "+"
			amt := m.Amount
			if amt < 0 {
				sign, amt = "−", -amt
			}
			d.line(txtf("%s  %s¥%s  %s", m.Date.Format("2006-01-02"), sign, amt, m.Description))
		}
	}
	d.blank()
	d.line(txt(t.l(
		"余额多少取决于参保类型、缴费情况和当地划入政策，以医保部门系统为准；也可在“国家医保服务平台”App或微信/支付宝的医保电子凭证里查询，或拨打12393。",
		"The balance depends on your scheme, your contributions and local crediting rules; the medical-insurance bureau's system is authoritative. You can also check it in the 国家医保服务平台 app, the 医保电子凭证 (e-voucher) in WeChat/Alipay, or call 12393.")))
	t.show(&d)
	return nil
}

func runForget(ctx context.Context, t *turn, arg string) error {
	switch arg {
	case "yes":
		if err := t.e.cfg.Sessions.Forget(ctx, t.msg.Chat, t.msg.User); err != nil {
			if errors.Is(err, ErrUnavailable) {
				t.unavailable()
				return nil
			}
			return fmt.Errorf("forget user: %w", err)
		}
		// Forget wrote everything; nothing is left to save. This reply
		// is still in the language the user chose.
		t.st, t.dirty = State{}, 0
		t.outcome = "forgotten"
		r := TextReply(t.l(
			"已删除：身份验证关联、进行中的操作、提醒设置和语言选择。需要时可以重新 /verify。",
			"Deleted: your verification link, any step in progress, your reminder settings and your language choice. You can /verify again any time."))
		r.RemoveKeyboard, r.EndSession = true, true
		t.replies = append(t.replies, r)
	case "no":
		t.say(t.l("好的，什么都没有删除。", "OK, nothing was deleted."))
	default:
		t.say(t.l(
			"确定要删除您的身份验证关联、进行中的操作、提醒设置和语言选择吗？（不会影响社保部门的任何记录）",
			"Delete your verification link, any step in progress, your reminder settings and your language choice? (Nothing at the insurance bureau changes.)"),
			[]Button{btn(t.l("确定删除", "Yes, delete"), "forget:yes"), btn(t.l("取消", "No, keep"), "forget:no")})
	}
	return nil
}
