package bot_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) Outcome(kind, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, kind+"/"+outcome)
}

func (o *outcomes) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) == 0 {
		return ""
	}
	return o.got[len(o.got)-1]
}

// verifiedUser is user 7, verified as the first demo person until 60 days
// after testNow, with reminders on until then.
func verifiedUser(t *testing.T, store *memStore) (bot.Link, bot.ReminderSetting) {
	t.Helper()
	p := records.Demo()[0]
	link := bot.Link{PersonID: p.ID, Until: testNow.Add(60 * 24 * time.Hour)}
	store.link[7] = link
	rs := bot.ReminderSetting{ChatID: 7, UserID: 7, Slot: bot.SlotMorning, PersonID: p.ID, Until: link.Until, Lang: "en"}
	if err := store.SetReminder(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	return link, rs
}

// A record file that cannot be read never costs a user the verification:
// every record command says the records are briefly unavailable, and the
// link and the reminder setting stay exactly as they were.
func TestRecordsUnavailableKeepsVerification(t *testing.T) {
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"/records", "/balance", "/backpay", "documents:"} {
		t.Run(cmd, func(t *testing.T) {
			store := newMemStore()
			link, rs := verifiedUser(t, store)
			var logs bytes.Buffer
			m := &outcomes{}
			e := bot.New(bot.Config{Sessions: store, Attempts: store, Reminders: store, FAQ: f, Records: closedRecords(t),
				Now: func() time.Time { return testNow }, Metrics: m, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			msg := bot.Message{ChatID: 7, UserID: 7, LanguageCode: "en", Time: testNow, Text: cmd}
			if !strings.HasPrefix(cmd, "/") {
				msg.Text, msg.Callback = "", cmd
			}
			replies, err := e.Handle(context.Background(), msg)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if len(replies) != 1 || !strings.Contains(replies[0].Text, "Your verification is kept") {
				t.Errorf("replies = %+v", replies)
			}
			if !strings.HasSuffix(m.last(), "/unavailable") {
				t.Errorf("outcome %q, want unavailable", m.last())
			}
			if got := store.link[7]; got != link {
				t.Errorf("link = %+v, want it untouched: %+v", got, link)
			}
			if got, on, _ := store.Reminder(context.Background(), 7, 7); !on || got != rs {
				t.Errorf("reminder setting = %+v (on %v), want it untouched", got, on)
			}
			if !strings.Contains(logs.String(), "records unreadable") {
				t.Errorf("the operator is not told:\n%s", logs.String())
			}
			if strings.Contains(logs.String(), link.PersonID) {
				t.Errorf("log shows the ID number:\n%s", logs.String())
			}
		})
	}
}

// A sound file without the person: the verification, and the reminder
// setting with it, is kept for a week from the first miss and never
// lengthened; the user is told until when.
func TestNotOnRecordKeepsVerificationForAWeek(t *testing.T) {
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	link, _ := verifiedUser(t, store)
	now := testNow
	m := &outcomes{}
	e := bot.New(bot.Config{Sessions: store, Attempts: store, Reminders: store, FAQ: f,
		Records: recordsWithout(t, records.Demo()[0]), Now: func() time.Time { return now }, Metrics: m})
	ask := func() string {
		replies, err := e.Handle(context.Background(), bot.Message{ChatID: 7, UserID: 7, LanguageCode: "en", Time: now, Text: "/records"})
		if err != nil || len(replies) != 1 {
			t.Fatalf("Handle: %+v, %v", replies, err)
		}
		return replies[0].Text
	}
	want := testNow.Add(7 * 24 * time.Hour)
	if got := ask(); !strings.Contains(got, "kept until 2026-12-03 10:00") {
		t.Errorf("reply: %q", got)
	}
	if m.last() != "records/gone" {
		t.Errorf("outcome %q", m.last())
	}
	if got := store.link[7]; got.PersonID != link.PersonID || !got.Until.Equal(want) {
		t.Errorf("link after the first miss = %+v, want %s until %s", got, link.PersonID, want)
	}
	if rs, on, _ := store.Reminder(context.Background(), 7, 7); !on || !rs.Until.Equal(want) {
		t.Errorf("reminder setting = %+v (on %v), want it to end with the link", rs, on)
	}
	now = now.Add(3 * 24 * time.Hour)
	ask()
	if got := store.link[7]; !got.Until.Equal(want) {
		t.Errorf("asking again moved the end to %s", got.Until)
	}
	now = want
	if got := ask(); !strings.Contains(got, "/verify") {
		t.Errorf("after the grace: %q", got)
	}

	// A verification ending sooner than the grace is not lengthened.
	soon := bot.Link{PersonID: link.PersonID, Until: now.Add(24 * time.Hour)}
	store.link[7] = soon
	if got := ask(); !strings.Contains(got, "kept until 2026-12-04 10:00") {
		t.Errorf("reply: %q", got)
	}
	if got := store.link[7]; got != soon {
		t.Errorf("link = %+v, want %+v", got, soon)
	}
}
