package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shebao/shebao/records"
)

// slotNames are the reminder slots in display order, with their labels.
var slotNames = []struct {
	slot   string
	zh, en string
}{
	{SlotMorning, "上午 9:00", "morning 9:00"},
	{SlotAfternoon, "下午 14:00", "afternoon 14:00"},
	{SlotEvening, "晚上 19:00", "evening 19:00"},
}

// ValidSlot reports whether s names a reminder slot.
func ValidSlot(s string) bool {
	for _, n := range slotNames {
		if n.slot == s {
			return true
		}
	}
	return false
}

func (t *turn) slotLabel(slot string) string {
	for _, n := range slotNames {
		if n.slot == slot {
			return t.l(n.zh, n.en)
		}
	}
	return slot
}

// runRemind shows the setting ("/remind"), or changes it from a button:
// "remind:on", "remind:off", "remind:<slot>".
func runRemind(ctx context.Context, t *turn, arg string) error {
	rs := t.e.cfg.Reminders
	if rs == nil || t.e.cfg.Records == nil {
		t.say(t.l("抱歉，本服务暂不提供缴费提醒。", "Sorry, reminders are not available on this service."))
		return nil
	}
	arg = strings.ToLower(strings.TrimSpace(arg))
	if !CapsOf(ChannelOf(t.msg.User)).Push && arg != "off" && arg != "stop" {
		t.remindElsewhere()
		return nil
	}
	if arg == "off" || arg == "stop" {
		// No verification needed to stop: whoever gets reminders in
		// this chat may end them.
		if err := rs.StopReminder(ctx, t.msg.Chat, t.msg.User); err != nil {
			return t.reminderStoreErr(err)
		}
		t.outcome = "off"
		t.say(t.l("🔕 已关闭缴费提醒，不会再收到提醒消息。需要时发送 /remind 可重新开启。",
			"🔕 Reminders are off; you will get no more reminder messages. Send /remind to turn them on again."))
		return nil
	}
	cur, on, err := rs.Reminder(ctx, t.msg.Chat, t.msg.User)
	if err != nil {
		return t.reminderStoreErr(err)
	}
	if arg == "" {
		t.showReminder(cur, on)
		return nil
	}
	slot := arg
	if arg == "on" {
		slot = SlotMorning
		if on {
			slot = cur.Slot
		}
	}
	if !ValidSlot(slot) {
		t.showReminder(cur, on)
		return nil
	}
	// Reminders read the person's records, so they need a valid
	// verification, and they end when it does.
	if !t.st.Link.Valid(t.now) {
		t.outcome = "unverified"
		t.say(t.l(
			"缴费提醒需要先验证身份，这样我才知道该查看谁的记录。请发送 /verify 开始。",
			"Reminders need you to verify first, so I know whose record to watch. Send /verify to start."),
			[]Button{btn(t.l("🔐 验证身份", "🔐 Verify"), "verify:")})
		return nil
	}
	s := ReminderSetting{Chat: t.msg.Chat, User: t.msg.User, Slot: slot,
		PersonID: t.st.Link.PersonID, Until: t.st.Link.Until, Lang: t.lang, PhoneTag: t.st.Link.PhoneTag}
	if err := rs.SetReminder(ctx, s); err != nil {
		return t.reminderStoreErr(err)
	}
	t.outcome = "on"
	t.say(fmt.Sprintf(t.l(
		"🔔 已开启缴费提醒：每天%s（北京时间）检查一次，医保有未缴月份、快到缴费日还没缴，或断缴快超过补缴期限时提醒您。同一件事只提醒一次，晚上21点到早上8点不发。\n提醒到验证到期（%s）为止。",
		"🔔 Reminders are on: checked every day at %s (Beijing time). I will tell you when a medical-insurance month is unpaid, when this month's payment is close to its due day, or when a gap is about to pass the back-payment deadline. Each thing is reminded once, never between 21:00 and 8:00.\nReminders last until your verification expires (%s)."),
		t.slotLabel(slot), fmtUntil(s.Until)), t.reminderButtons(s, true)...)
	t.replacesMenu()
	return nil
}

// remindElsewhere answers /remind on a channel that cannot write first
// (the web chat): it says so and links to the channels that can.
func (t *turn) remindElsewhere() {
	t.outcome = "cannot_push"
	var links []PushLink
	if t.e.cfg.PushLinks != nil {
		links = t.e.cfg.PushLinks()
	}
	msg := t.l("这里只能回答您发来的消息，不能主动给您发消息，所以在这里无法开启缴费提醒。",
		"Here I can only answer what you send; I cannot write to you first, so reminders cannot be turned on here.")
	if len(links) == 0 {
		t.say(msg + t.l("\n您可以随时回来发送 /backpay，看看有没有未缴月份和补缴期限。",
			"\nYou can come back any time and send /backpay to see missed months and back-payment deadlines."))
		return
	}
	var row []Button
	for _, l := range links {
		name := channelName(t, l.Channel)
		row = append(row, Button{Text: t.l("在"+name+"开启提醒", "Reminders on "+name), Data: l.URL + "remind", Kind: URL})
	}
	t.say(msg+t.l("\n可以在下面的渠道开启（在那里验证身份后发送 /remind）：",
		"\nYou can turn them on in one of these instead (verify there, then send /remind):"), row)
}

// channelName is a channel as users know it.
func channelName(t *turn, ch string) string {
	switch ch {
	case ChannelTelegram:
		return "Telegram"
	case ChannelWeChat:
		return t.l("微信", "WeChat")
	case ChannelWeb:
		return t.l("网页", "the web chat")
	}
	return ch
}

func (t *turn) reminderStoreErr(err error) error {
	if errors.Is(err, ErrUnavailable) {
		t.unavailable()
		return nil
	}
	return fmt.Errorf("reminder setting: %w", err)
}

func (t *turn) showReminder(cur ReminderSetting, on bool) {
	var d doc
	if !on {
		d.line(txt(t.l("缴费提醒：", "Reminders: ")), bold(t.l("未开启", "off")), txt(t.l("。", ".")))
		d.line(txt(t.l("开启后，医保有未缴月份、快到缴费日还没缴，或断缴快超过补缴期限时，我会提醒您（每件事只提醒一次）。",
			"When on, I tell you when a medical-insurance month is unpaid, when this month's payment is close to its due day, or when a gap is about to pass the back-payment deadline (each thing once).")))
		t.show(&d, t.reminderButtons(cur, false)...)
		return
	}
	d.line(txt(t.l("缴费提醒：", "Reminders: ")), bold(t.l("已开启", "on")),
		txtf(t.l("，每天%s（北京时间）。可以改时间或关闭：", ", daily at %s (Beijing time). Change the time or turn them off:"), t.slotLabel(cur.Slot)))
	t.show(&d, t.reminderButtons(cur, true)...)
}

// replacesMenu marks the turn's last reply as replacing the menu whose
// button was pressed, so that a button flow edits its message instead of
// stacking new ones.
func (t *turn) replacesMenu() {
	if t.msg.Callback != "" && len(t.replies) > 0 {
		t.replies[len(t.replies)-1].Replaces = true
	}
}

// reminderButtons offers the slots (the current one marked) and on/off.
func (t *turn) reminderButtons(cur ReminderSetting, on bool) [][]Button {
	var slots []Button
	for _, n := range slotNames {
		label := t.l(n.zh, n.en)
		if on && n.slot == cur.Slot {
			label = "✓ " + label
		}
		slots = append(slots, btn(label, "remind:"+n.slot))
	}
	if on {
		return [][]Button{slots, {btn(t.l("🔕 关闭提醒", "🔕 Stop reminders"), "remind:off")}}
	}
	return [][]Button{{btn(t.l("🔔 开启提醒（上午 9:00）", "🔔 Turn on (morning 9:00)"), "remind:on")}, slots}
}

// offerReminders follows a successful verification when reminders exist.
func (t *turn) offerReminders() {
	if t.e.cfg.Reminders == nil || !CapsOf(ChannelOf(t.msg.User)).Push {
		return
	}
	t.say(t.l("要我在医保断缴、快到缴费日或补缴期限将到时提醒您吗？随时可以关闭。",
		"Shall I remind you when medical insurance is missed, a payment is nearly due, or a back-payment deadline is close? You can stop any time."),
		[]Button{btn(t.l("🔔 开启提醒", "🔔 Turn on reminders"), "remind:on")})
}

// ReminderKind is what a reminder is about.
type ReminderKind string

// The kinds of reminder, in the order a pass prefers them when several are
// due for one person.
const (
	// RemindWindow: a gap is about to leave the region's back-payment
	// window. Once per gap.
	RemindWindow ReminderKind = "window"
	// RemindMissed: a medical month is missing or unpaid after it fell
	// due. Once per person and month.
	RemindMissed ReminderKind = "missed"
	// RemindDueSoon: a flexible worker's current month is not posted a
	// few days before the region's due day. Once per person and month.
	RemindDueSoon ReminderKind = "due_soon"
)

// ReminderNote is everything a reminder message says.
type ReminderNote struct {
	Kind     ReminderKind
	Lang     string // "zh" or "en"
	PersonID string // shown masked
	// Month is the month reminded about: the newest missed month
	// (RemindMissed), the current month (RemindDueSoon) or the first month
	// of the gap (RemindWindow).
	Month records.Month
	// Gap is the whole run of missed months Month belongs to (RemindMissed,
	// RemindWindow); Unpaid counts those with an unpaid row.
	Gap    records.Gap
	DueDay int // RemindDueSoon: the region's due day
	Rule   records.RegionRule
}

// ReminderReply renders one reminder: what is missing, what it means, and
// buttons to the back-payment plan and to stop reminders.
func ReminderReply(n ReminderNote) Reply {
	t := &turn{lang: n.Lang}
	if t.lang != "en" {
		t.lang = "zh"
	}
	var d doc
	id := records.MaskID(n.PersonID)
	span := gapSpan(n.Gap)
	switch n.Kind {
	case RemindMissed:
		d.line(txt("🔔 "), bold(t.l("医保缴费提醒", "Medical insurance reminder")), txtf(t.l("（%s）", " (%s)"), id))
		if len(n.Gap.Months) > 1 {
			d.line(txtf(t.l("记录显示 %s 共%d个月的医疗保险没有缴上（最近的是 %s）。",
				"Your record shows %s, %d months of medical insurance, as not paid (the latest is %s)."),
				span, len(n.Gap.Months), n.Month))
		} else {
			d.line(txtf(t.l("记录显示 %s 的医疗保险没有缴上。", "Your record shows %s medical insurance as not paid."), n.Month))
		}
		// The same consequence /backpay gives, from the region's rule.
		d.line(txt(consequence(t, len(n.Gap.Months), n.Rule)))
		if w := windowLine(t, n); w != "" {
			d.line(txt(w))
		}
	case RemindDueSoon:
		d.line(txt("🔔 "), bold(t.l("本月医保缴费提醒", "This month's medical insurance")), txtf(t.l("（%s）", " (%s)"), id))
		d.line(txtf(t.l("%s 的医疗保险还没有到账记录。当地缴费截止日约为每月%d日（地方规定）。",
			"No payment for %s has been posted yet. The local due day is about the %s of each month (local rule)."),
			n.Month, dueDayArg(t, n.DueDay)))
		d.line(txt(t.l("如已缴费可忽略本提醒（到账可能有延迟）；如未缴，请在截止日前缴费，以免断缴。",
			"If you have paid, ignore this (posting can lag); if not, pay before the due day to avoid a break.")))
	case RemindWindow:
		d.line(txt("⏳ "), bold(t.l("补缴期限提醒", "Back-payment deadline")), txtf(t.l("（%s）", " (%s)"), id))
		d.line(txtf(t.l("%s 的医疗保险断缴（%d个月），当地补缴期限约到 %s（地方规定）。",
			"Medical insurance for %s is missing (%d months); the local back-payment window ends about %s (local rule)."),
			span, len(n.Gap.Months), n.Gap.WindowEnds))
		d.line(txt(t.l("过了期限可能无法再补缴，断缴时间长还可能有待遇等待期。",
			"After that it may no longer be possible to make up, and a long break can bring a waiting period.")))
	}
	d.blank()
	last := t.l("以上依据记录数据，以参保地医保部门为准。", "Based on your record; your local bureau's system decides.")
	if n.Rule.Example {
		last += t.l("（本地区规则为示例，未经核实。）", " (This region's rule is an example, not verified.)")
	}
	d.line(txt(last))
	return d.reply([]Button{
		btn(t.l("怎么补缴", "How to make it up"), "backpay:"),
		btn(t.l("🔕 停止提醒", "🔕 Stop reminders"), "remind:off"),
	})
}

func windowLine(t *turn, n ReminderNote) string {
	if n.Rule.BackpayMonths == 0 || n.Gap.WindowEnds.IsZero() {
		return ""
	}
	return fmt.Sprintf(t.l("当地补缴期限约到 %s（地方规定）。", "The local back-payment window ends about %s (local rule)."), n.Gap.WindowEnds)
}

func dueDayArg(t *turn, d int) any {
	if t.lang != "en" {
		return d
	}
	suffix := "th"
	switch {
	case d%10 == 1 && d != 11:
		suffix = "st"
	case d%10 == 2 && d != 12:
		suffix = "nd"
	case d%10 == 3 && d != 13:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", d, suffix)
}
