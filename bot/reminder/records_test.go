package reminder

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/records"
)

func (s *memStore) count() (settings int, done []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range s.marks {
		if strings.HasPrefix(m, "done:") {
			done = append(done, m)
		}
	}
	return len(s.settings), done
}

// A record file that stops reading under a running pass turns nobody's
// reminders off and marks nothing done: the pass fails, and the next one,
// once the file reads again, sends what was due.
func TestUnreadableRecordsKeepRemindersOn(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	broken, err := records.OpenDemo(context.Background(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	broken.Close()
	sum, err := f.scheduler(func(c *Config) { c.Records = broken }).Pass(context.Background(), false)
	if err == nil {
		t.Fatal("pass over unreadable records succeeded")
	}
	if sum.Sent != 0 || !sum.Incomplete {
		t.Errorf("summary = %+v", sum)
	}
	if n, done := f.store.count(); n != 7 || f.store.stops != 0 || len(done) != 0 {
		t.Errorf("after the failed pass: %d settings, %d stops, done marks %v", n, f.store.stops, done)
	}

	sum, err = f.scheduler(nil).Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 4 {
		t.Errorf("pass once the file reads: %+v", sum)
	}
}

// A sound file that lacks some people skips them and keeps their settings:
// when they are back in the next file, they are reminded.
func TestPeopleMissingFromRecordsAreSkippedNotDropped(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "records.db")
	w, err := records.OpenForImport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("id_number,name,phone,region,category,employer\n")
	for i, p := range f.people {
		if i+1 != li && i+1 != wang {
			fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s\n", p.ID, p.Name, p.Phone, p.Region, p.Category, p.Employer)
		}
	}
	if _, err := w.Import(ctx, records.ImportSources{Persons: &records.ImportFile{Name: "persons.csv", R: strings.NewReader(b.String())}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	partial, err := records.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	sum, err := f.scheduler(func(c *Config) { c.Records = partial }).Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped[SkipUnknown] != 2 || sum.Sent != 0 {
		t.Errorf("partial file: %+v", sum)
	}
	if n, _ := f.store.count(); n != 7 || f.store.stops != 0 {
		t.Errorf("after the partial file: %d settings, %d stops", n, f.store.stops)
	}
	// The next day, with the full file again.
	f.clock.Set(testNow.Add(24 * time.Hour))
	sum, err = f.scheduler(nil).Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	// Everything the full file makes due, as on the first day of
	// TestPassSendsEachDueReminderOnce (the partial file held persons
	// only, so nobody was reminded from it).
	want := map[int64]string{li: "window 2026-08", wang: "missed 2026-10", zhao: "missed 2026-05", qian: "missed 2026-10"}
	if diff := cmp.Diff(want, kinds(sum)); diff != "" {
		t.Errorf("back in the file (-want +got):\n%s", diff)
	}
}

// A reminder goes out only while the phone on record is the one the user
// verified with: a setting whose phone tag no longer matches turns the
// reminders off (a dry run only reports it). A setting from the previous
// release, without a tag, is not checked.
func TestPhoneChangedTurnsRemindersOff(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	keys := keyring.Generate()
	f.store.mu.Lock()
	for k, r := range f.store.settings {
		switch untg(k[0]) {
		case wang:
			r.PhoneTag = bot.PhoneTag(keys, r.PersonID, "13000000000") // verified with another phone
		case qian:
			// no tag: written by the previous release
		default:
			r.PhoneTag = bot.PhoneTag(keys, r.PersonID, f.people[untg(k[0])-1].Phone)
		}
		f.store.settings[k] = r
	}
	f.store.mu.Unlock()
	s := f.scheduler(func(c *Config) { c.Keys = keys })
	sum, err := s.Pass(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped[SkipPhoneChanged] != 1 || len(sum.Planned) != 3 || f.store.stops != 0 {
		t.Errorf("dry run: %+v, %d stops", sum, f.store.stops)
	}
	sum, err = s.Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]string{li: "window 2026-08", zhao: "missed 2026-05", qian: "missed 2026-10"}
	if diff := cmp.Diff(want, kinds(sum)); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if sum.Skipped[SkipPhoneChanged] != 1 || f.store.stops != 1 {
		t.Errorf("summary %+v, %d stops", sum, f.store.stops)
	}
	if _, on := f.store.settings[[2]string{tg(wang), tg(wang)}]; on {
		t.Error("reminders still on after the phone changed")
	}
}
