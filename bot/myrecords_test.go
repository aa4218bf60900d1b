package bot_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
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
	store.link[tg(7)] = link
	rs := bot.ReminderSetting{Chat: tg(7), User: tg(7), Slot: bot.SlotMorning, PersonID: p.ID, Until: link.Until, Lang: "en"}
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
			msg := bot.Message{Chat: tg(7), User: tg(7), LanguageCode: "en", Time: testNow, Text: cmd}
			if !strings.HasPrefix(cmd, "/") {
				msg.Text, msg.Callback = "", cmd
			}
			replies, err := e.Handle(context.Background(), msg)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if len(replies) != 1 || !strings.Contains(bot.PlainText(replies[0]), "Your verification is kept") {
				t.Errorf("replies = %+v", replies)
			}
			if !strings.HasSuffix(m.last(), "/unavailable") {
				t.Errorf("outcome %q, want unavailable", m.last())
			}
			if got := store.link[tg(7)]; got != link {
				t.Errorf("link = %+v, want it untouched: %+v", got, link)
			}
			if got, on, _ := store.Reminder(context.Background(), tg(7), tg(7)); !on || got != rs {
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
		replies, err := e.Handle(context.Background(), bot.Message{Chat: tg(7), User: tg(7), LanguageCode: "en", Time: now, Text: "/records"})
		if err != nil || len(replies) != 1 {
			t.Fatalf("Handle: %+v, %v", replies, err)
		}
		return bot.PlainText(replies[0])
	}
	want := testNow.Add(7 * 24 * time.Hour)
	if got := ask(); !strings.Contains(got, "kept until 2026-12-03 10:00") {
		t.Errorf("reply: %q", got)
	}
	if m.last() != "records/gone" {
		t.Errorf("outcome %q", m.last())
	}
	if got := store.link[tg(7)]; got.PersonID != link.PersonID || !got.Until.Equal(want) {
		t.Errorf("link after the first miss = %+v, want %s until %s", got, link.PersonID, want)
	}
	if rs, on, _ := store.Reminder(context.Background(), tg(7), tg(7)); !on || !rs.Until.Equal(want) {
		t.Errorf("reminder setting = %+v (on %v), want it to end with the link", rs, on)
	}
	now = now.Add(3 * 24 * time.Hour)
	ask()
	if got := store.link[tg(7)]; !got.Until.Equal(want) {
		t.Errorf("asking again moved the end to %s", got.Until)
	}
	now = want
	if got := ask(); !strings.Contains(got, "/verify") {
		t.Errorf("after the grace: %q", got)
	}

	// A verification ending sooner than the grace is not lengthened.
	soon := bot.Link{PersonID: link.PersonID, Until: now.Add(24 * time.Hour)}
	store.link[tg(7)] = soon
	if got := ask(); !strings.Contains(got, "kept until 2026-12-04 10:00") {
		t.Errorf("reply: %q", got)
	}
	if got := store.link[tg(7)]; got != soon {
		t.Errorf("link = %+v, want %+v", got, soon)
	}
}

// recordsWithPhone is a sound record file of the demo persons in which
// person id has another phone on record.
func recordsWithPhone(t *testing.T, id, phone string) *records.DB {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "records.db")
	w, err := records.OpenForImport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("id_number,name,phone,region,category,employer\n")
	for _, p := range records.Demo() {
		if p.ID == id {
			p.Phone = phone
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s\n", p.ID, p.Name, p.Phone, p.Region, p.Category, p.Employer)
	}
	if _, err := w.Import(ctx, records.ImportSources{Persons: &records.ImportFile{Name: "persons.csv", R: strings.NewReader(b.String())}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	db, err := records.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A phone changed in the records after verification ends the link at the
// next records access: the user is asked, politely, to verify again and
// shown nothing; the reminders stop with it.
func TestPhoneChangedOnRecordAsksToVerifyAgain(t *testing.T) {
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := records.Demo()[0]
	for _, cmd := range []string{"/records", "/balance", "/backpay", "documents:"} {
		t.Run(cmd, func(t *testing.T) {
			store := newMemStore()
			link, rs := verifiedUser(t, store)
			link.PhoneTag = bot.PhoneTag(testKeys, p.ID, p.Phone)
			store.link[tg(7)] = link
			rs.PhoneTag = link.PhoneTag
			store.SetReminder(context.Background(), rs)
			var logs bytes.Buffer
			m := &outcomes{}
			e := bot.New(bot.Config{Sessions: store, Attempts: store, Reminders: store, FAQ: f, Keys: testKeys,
				Records: recordsWithPhone(t, p.ID, "13912345678"), Now: func() time.Time { return testNow },
				Metrics: m, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			msg := bot.Message{Chat: tg(7), User: tg(7), LanguageCode: "en", Time: testNow, Text: cmd}
			if !strings.HasPrefix(cmd, "/") {
				msg.Text, msg.Callback = "", cmd
			}
			replies, err := e.Handle(context.Background(), msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(replies) != 1 || !strings.Contains(bot.PlainText(replies[0]), "please verify again") {
				t.Fatalf("replies = %+v", replies)
			}
			for _, shown := range []string{records.MaskID(p.ID), records.MaskPhone(p.Phone), records.MaskPhone("13912345678"), p.Name} {
				if strings.Contains(bot.PlainText(replies[0]), shown) {
					t.Errorf("reply shows %q: %q", shown, bot.PlainText(replies[0]))
				}
			}
			if !strings.HasSuffix(m.last(), "/phone_changed") {
				t.Errorf("outcome %q", m.last())
			}
			if got, ok := store.link[tg(7)]; ok && got.PersonID != "" {
				t.Errorf("link kept: %+v", got)
			}
			if _, on, _ := store.Reminder(context.Background(), tg(7), tg(7)); on {
				t.Error("reminders still on")
			}
			if strings.Contains(logs.String(), p.ID) || strings.Contains(logs.String(), p.Phone) {
				t.Errorf("log shows personal data:\n%s", logs.String())
			}
		})
	}
}

// A link from the previous release has no phone tag: it keeps working and
// adopts the phone on record, for the link and the reminder setting. A tag
// under a key that is no longer current is made again under the current
// one; a tag whose key has left the keyring cannot be checked, and the
// user verifies again.
func TestPhoneTagAdoptedAndRotated(t *testing.T) {
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := records.OpenDemo(ctx, testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := records.Demo()[0]
	oldKeys, _ := keyring.Parse("old:" + strings.Repeat("B", 43) + "=")
	rotated, _ := keyring.Parse("new:" + strings.Repeat("C", 43) + "=,old:" + strings.Repeat("B", 43) + "=")
	newOnly, _ := keyring.Parse("new:" + strings.Repeat("C", 43) + "=")
	ask := func(store *memStore, keys *keyring.Ring) string {
		e := bot.New(bot.Config{Sessions: store, Attempts: store, Reminders: store, FAQ: f, Keys: keys, Records: db,
			Now: func() time.Time { return testNow }})
		replies, err := e.Handle(ctx, bot.Message{Chat: tg(7), User: tg(7), LanguageCode: "en", Time: testNow, Text: "/records"})
		if err != nil || len(replies) == 0 {
			t.Fatalf("Handle: %+v, %v", replies, err)
		}
		return bot.PlainText(replies[0])
	}

	store := newMemStore()
	verifiedUser(t, store) // no tags, as the previous release wrote it
	if got := ask(store, oldKeys); !strings.Contains(got, "Contributions") {
		t.Fatalf("legacy link: %q", got)
	}
	tag := store.link[tg(7)].PhoneTag
	if ok, cur, err := bot.PhoneMatches(oldKeys, tag, p.ID, p.Phone); !ok || !cur || err != nil {
		t.Fatalf("adopted tag %q does not match the phone on record: %v %v %v", tag, ok, cur, err)
	}
	if rs, _, _ := store.Reminder(ctx, tg(7), tg(7)); rs.PhoneTag != tag {
		t.Errorf("reminder setting tag %q, want the link's %q", rs.PhoneTag, tag)
	}

	if got := ask(store, rotated); !strings.Contains(got, "Contributions") {
		t.Fatalf("after a rotation: %q", got)
	}
	if tag2 := store.link[tg(7)].PhoneTag; !strings.HasPrefix(tag2, "new.") {
		t.Errorf("tag after a rotation = %q, want it made under the new key", tag2)
	} else if rs, _, _ := store.Reminder(ctx, tg(7), tg(7)); rs.PhoneTag != tag2 {
		t.Errorf("reminder setting tag %q, want %q", rs.PhoneTag, tag2)
	}

	store = newMemStore()
	link, _ := verifiedUser(t, store)
	link.PhoneTag = bot.PhoneTag(oldKeys, p.ID, p.Phone)
	store.link[tg(7)] = link
	if got := ask(store, newOnly); !strings.Contains(got, "please verify again") {
		t.Errorf("tag under a dropped key: %q", got)
	}
}

// Throttles and reservations carry ID numbers; their log values do not.
func TestThrottleLogValues(t *testing.T) {
	var logs bytes.Buffer
	th := bot.Throttle{Key: "id:110105198803120014"}
	r := bot.Reservation{OK: true, Throttles: []bot.Throttle{th, {Key: "user:7"}}}
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "throttle", th, "reservation", r)
	if strings.Contains(logs.String(), "110105") || !strings.Contains(logs.String(), `"throttles":["id","user"]`) {
		t.Errorf("logged: %s", logs.String())
	}
}
