package reminder

import (
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/records"
)

const (
	// dueSoonDays: a flexible worker hears about the current month from
	// this many days before the region's due day until the due day.
	dueSoonDays = 3
	// windowWarnMonths: a gap is "about to leave" the back-payment window
	// when the window ends this month or within this many months.
	windowWarnMonths = 1
)

// candidate is one reminder that is due for a person.
type candidate struct {
	kind  bot.ReminderKind
	month records.Month // what the sent-mark is keyed by
	gap   records.Gap   // RemindMissed, RemindWindow: the gap, cut at the last month due
}

// Skip reasons for a person with nothing to send, as counted in Summary.
const (
	SkipUnverified   = "unverified"     // the verification behind the setting expired
	SkipUnknown      = "unknown_person" // the person is no longer in the records
	SkipResident     = "resident"       // residents enrol yearly; monthly reminders do not fit
	SkipNoMedical    = "no_medical"     // no medical-insurance row at all: never joined, no gap
	SkipNothingDue   = "nothing_due"
	SkipAlreadySent  = "already_sent"   // every due reminder was sent before
	SkipToday        = "reminded_today" // one reminder a day at most; the next waits
	SkipBlocked      = "blocked"        // the user blocked the bot: reminders turned off
	SkipPhoneChanged = "phone_changed"  // the phone on record is not the one verified: reminders turned off
	SkipWindowEnded  = "window_ended"   // due, but the sending window closed first: next window
	SkipCannotPush   = "cannot_push"    // the channel cannot reach the user now (WeChat: no window, no subscription)
	SkipOtherChannel = "other_channel"  // a channel this process does not run (Config.Channels): its own process sends it
	SkipQuietHours   = "quiet_hours"    // the whole pass: 21:00–08:00
	SkipLeaseHeld    = "lease_held"     // the whole pass: another replica runs it
	SkipNothingToRun = "slots_done"     // the whole pass: every started slot is done today
)

// dueReminders lists what is due for a person at now, most urgent first:
// a gap about to pass its back-payment window, then the newest missed
// month, then the current month of a flexible worker. gaps are the
// person's medical gaps at now, oldest first.
func dueReminders(st records.Standing, gaps []records.Gap, rule records.RegionRule, now time.Time) []candidate {
	cur := records.MonthOf(now)
	day := now.In(records.Shanghai).Day()
	var out []candidate
	for _, g := range gaps {
		if g.InWindow && !g.WindowEnds.IsZero() && g.WindowEnds.Sub(cur) <= windowWarnMonths {
			out = append(out, candidate{kind: bot.RemindWindow, month: g.From, gap: g})
		}
	}
	// A month counts as missed from the region's due day of the month
	// after it: records are imported with a lag, and a payment made in
	// the last days must not draw a reminder it does not deserve.
	dueThrough := cur.Add(-1)
	if day < rule.DueDay {
		dueThrough = cur.Add(-2)
	}
	for i := len(gaps) - 1; i >= 0; i-- {
		g := gaps[i]
		if g.From.After(dueThrough) {
			continue
		}
		if g.To.After(dueThrough) {
			g = cutGap(g, dueThrough)
		}
		out = append(out, candidate{kind: bot.RemindMissed, month: g.To, gap: g})
		break
	}
	if st.Category == records.Flexible && rule.DueDay > 0 &&
		day >= rule.DueDay-dueSoonDays && day <= rule.DueDay && st.Medical.LastPaid.Before(cur) {
		out = append(out, candidate{kind: bot.RemindDueSoon, month: cur})
	}
	return out
}

// cutGap keeps the months of g up to last.
func cutGap(g records.Gap, last records.Month) records.Gap {
	g.To = last
	var ms, un []records.Month
	for _, m := range g.Months {
		if !m.After(last) {
			ms = append(ms, m)
		}
	}
	for _, m := range g.Unpaid {
		if !m.After(last) {
			un = append(un, m)
		}
	}
	g.Months, g.Unpaid = ms, un
	return g
}
