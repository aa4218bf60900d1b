package reminder

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/records"
)

func month(s string) records.Month {
	m, err := records.ParseMonth(s)
	if err != nil {
		panic(err)
	}
	return m
}

func gap(from, to string, windowEnds string) records.Gap {
	g := records.Gap{From: month(from), To: month(to), InWindow: true}
	for m := g.From; !m.After(g.To); m = m.Add(1) {
		g.Months = append(g.Months, m)
	}
	if windowEnds != "" {
		g.WindowEnds = month(windowEnds)
	}
	return g
}

func TestDueReminders(t *testing.T) {
	rule := records.RegionRule{DueDay: 25, BackpayMonths: 3}
	flex := records.Standing{Category: records.Flexible, HasMedical: true, Medical: records.Summary{LastPaid: month("2026-10")}}
	emp := records.Standing{Category: records.Employee, HasMedical: true}
	at := func(day int) time.Time { return time.Date(2026, 11, day, 10, 0, 0, 0, records.Shanghai) }
	type got struct {
		Kind  bot.ReminderKind
		Month string
	}
	for _, c := range []struct {
		name string
		st   records.Standing
		gaps []records.Gap
		now  time.Time
		want []got
	}{
		{"no gap", emp, nil, at(26), nil},
		{"last month missed, after the due day", emp, []records.Gap{gap("2026-10", "2026-10", "2027-01")}, at(26),
			[]got{{bot.RemindMissed, "2026-10"}}},
		// Before the due day, last month is given time to be posted.
		{"last month missed, before the due day", emp, []records.Gap{gap("2026-10", "2026-10", "2027-01")}, at(10), nil},
		{"older months are due before the due day", emp, []records.Gap{gap("2026-08", "2026-10", "2026-11")}, at(10),
			[]got{{bot.RemindWindow, "2026-08"}, {bot.RemindMissed, "2026-09"}}},
		{"window ends next month", emp, []records.Gap{gap("2026-09", "2026-09", "2026-12")}, at(26),
			[]got{{bot.RemindWindow, "2026-09"}, {bot.RemindMissed, "2026-09"}}},
		{"window ends in two months: not yet", emp, []records.Gap{gap("2026-10", "2026-10", "2027-01")}, at(26),
			[]got{{bot.RemindMissed, "2026-10"}}},
		{"window already passed", emp, []records.Gap{{From: month("2026-01"), To: month("2026-01"), Months: []records.Month{month("2026-01")}, WindowEnds: month("2026-04")}}, at(26),
			[]got{{bot.RemindMissed, "2026-01"}}},
		{"flexible, 3 days before the due day", flex, nil, at(22), []got{{bot.RemindDueSoon, "2026-11"}}},
		{"flexible, on the due day", flex, nil, at(25), []got{{bot.RemindDueSoon, "2026-11"}}},
		{"flexible, 4 days before", flex, nil, at(21), nil},
		{"flexible, after the due day", flex, nil, at(26), nil},
		{"flexible, this month already paid", records.Standing{Category: records.Flexible, HasMedical: true,
			Medical: records.Summary{LastPaid: month("2026-11")}}, nil, at(23), nil},
		{"employee: no due-soon", emp, nil, at(23), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out []got
			for _, d := range dueReminders(c.st, c.gaps, rule, c.now) {
				out = append(out, got{d.kind, d.month.String()})
			}
			if diff := cmp.Diff(c.want, out); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// Run wakes at the slot starts on its own (virtual time in a synctest
// bubble), sends in the morning, never at night, and returns when ctx ends.
func TestRunLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble's clock starts at 2000-01-01 00:00 UTC; work in an
		// offset from it so the demo months line up with testNow.
		f := newFixture(t, bot.SlotMorning)
		offset := time.Date(2026, 11, 26, 2, 0, 0, 0, records.Shanghai).Sub(time.Now()) // 02:00 in Shanghai
		now := func() time.Time { return time.Now().Add(offset) }
		f.store.now = now
		f.send.clock = nil
		snd := &timedSender{now: now}
		s := New(Config{Store: f.store, Records: f.db, Sender: snd, Now: now})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(30 * time.Hour) // virtual
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run returned %v", err)
		}
		if len(snd.at) != 4 {
			t.Fatalf("sent %d reminders over 30 hours, want 4", len(snd.at))
		}
		for _, at := range snd.at {
			if l := at.In(records.Shanghai); l.Day() != 26 || l.Hour() != 9 {
				t.Errorf("reminder sent at %s, want the morning slot of the 26th", l.Format(time.DateTime))
			}
		}
	})
}

type timedSender struct {
	now func() time.Time
	at  []time.Time
}

func (s *timedSender) Send(ctx context.Context, chat string, replies []bot.Reply) error {
	s.at = append(s.at, s.now())
	return nil
}
