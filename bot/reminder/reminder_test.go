package reminder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/records"
)

// testNow is a Thursday morning in Shanghai, after the national due day
// (25th): last month counts as missed.
var testNow = time.Date(2026, 11, 26, 10, 0, 0, 0, records.Shanghai)

// The demo people by what they show (records.Demo order).
const (
	zhang = iota + 1 // employee, no gaps
	li               // Shanghai employee, one missing month at the edge of the 3-month window
	wang             // employee, employer left the last two months unpaid
	zhao             // flexible, 5-month break 6–10 months ago
	qian             // flexible, missed last month only
	sun              // resident
	zhou             // resident
)

type fixture struct {
	clock  *clock
	store  *memStore
	send   *sender
	db     *records.DB
	people []records.DemoPerson
}

// newFixture opts every demo person in (user = chat = index+1) to slot.
func newFixture(t *testing.T, slot string) *fixture {
	t.Helper()
	db, err := records.OpenDemo(context.Background(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: testNow}
	f := &fixture{clock: c, store: newMemStore(c.Now), send: &sender{clock: c}, db: db, people: records.Demo()}
	for i, p := range f.people {
		lang := "zh"
		if i%2 == 1 {
			lang = "en"
		}
		f.store.add(bot.ReminderSetting{Chat: tg(int64(i + 1)), User: tg(int64(i + 1)), Slot: slot,
			PersonID: p.ID, Until: testNow.Add(30 * 24 * time.Hour), Lang: lang})
	}
	return f
}

func (f *fixture) scheduler(mod func(*Config)) *Scheduler {
	cfg := Config{Store: f.store, Records: f.db, Sender: f.send, Now: f.clock.Now, Sleep: f.clock.Sleep,
		Blocked: func(err error) bool { return errors.Is(err, errBlocked) }, Batch: 3, ListSent: true}
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func kinds(s Summary) map[int64]string {
	out := map[int64]string{}
	for _, p := range s.Planned {
		out[untg(p.Chat)] = string(p.Kind) + " " + p.Month.String()
	}
	return out
}

func TestPassSendsEachDueReminderOnce(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	s := f.scheduler(nil)
	ctx := context.Background()

	sum, err := s.Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]string{
		li:   "window 2026-08", // most urgent first: the window ends this month
		wang: "missed 2026-10",
		zhao: "missed 2026-05",
		qian: "missed 2026-10",
	}
	if diff := cmp.Diff(want, kinds(sum)); diff != "" {
		t.Errorf("first pass (-want +got):\n%s", diff)
	}
	wantSkip := map[string]int{SkipResident: 2, SkipNothingDue: 1}
	if diff := cmp.Diff(wantSkip, sum.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if sum.Candidates != 7 || sum.Due != 4 || sum.Sent != 4 || sum.Failed != 0 || sum.Incomplete {
		t.Errorf("summary = %+v", sum)
	}

	// The same slot again that day: done, nothing read.
	sum, _ = s.Pass(ctx, false)
	if sum.Sent != 0 || sum.Skipped[SkipNothingToRun] != 1 {
		t.Errorf("second pass the same day: %+v", sum)
	}

	// Next day: the Shanghai person's missed month is the next thing;
	// everyone else was reminded of everything due.
	f.clock.Set(testNow.Add(24 * time.Hour))
	sum, _ = s.Pass(ctx, false)
	if diff := cmp.Diff(map[int64]string{li: "missed 2026-08"}, kinds(sum)); diff != "" {
		t.Errorf("next day (-want +got):\n%s", diff)
	}
	if sum.Skipped[SkipAlreadySent] != 3 {
		t.Errorf("next day already_sent = %d, want 3: %+v", sum.Skipped[SkipAlreadySent], sum)
	}
	if got := f.send.chats(); got[li] != 2 || got[wang] != 1 || got[zhang] != 0 || got[sun] != 0 {
		t.Errorf("messages per chat after two days: %v", got)
	}
}

func TestReminderMessage(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	if _, err := f.scheduler(nil).Pass(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	for _, m := range f.send.msgs {
		for _, id := range []string{f.people[m.chat-1].ID} {
			if strings.Contains(bot.PlainText(m.reply), id) {
				t.Errorf("chat %d: full ID number in the reminder", m.chat)
			}
		}
		if !strings.Contains(bot.PlainText(m.reply), records.MaskID(f.people[m.chat-1].ID)) {
			t.Errorf("chat %d: masked ID missing:\n%s", m.chat, bot.PlainText(m.reply))
		}
		var data []string
		for _, row := range m.reply.Buttons {
			for _, b := range row {
				data = append(data, b.Data)
			}
		}
		if diff := cmp.Diff([]string{"backpay:", "remind:off"}, data); diff != "" {
			t.Errorf("chat %d buttons (-want +got):\n%s", m.chat, diff)
		}
		en := (m.chat-1)%2 == 1
		if en != strings.Contains(bot.PlainText(m.reply), "reminder") && en != strings.Contains(bot.PlainText(m.reply), "deadline") {
			t.Errorf("chat %d: wrong language:\n%s", m.chat, bot.PlainText(m.reply))
		}
	}
	// The window reminder names the local rule as local.
	for _, m := range f.send.msgs {
		if m.chat == li && !strings.Contains(bot.PlainText(m.reply), "local rule") {
			t.Errorf("window reminder does not mark the local rule:\n%s", bot.PlainText(m.reply))
		}
	}
}

func TestDueSoonForFlexibleWorker(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	// The 23rd: within 3 days of the due day (25th), and before it, so
	// last month is not yet "missed".
	f.clock.Set(time.Date(2026, 11, 23, 9, 0, 0, 0, records.Shanghai))
	sum, err := f.scheduler(nil).Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(sum)
	if got[qian] != "due_soon 2026-11" {
		t.Errorf("flexible worker without this month's payment: got %q, want due_soon 2026-11 (all: %v)", got[qian], got)
	}
	if got[zhao] != "missed 2026-05" {
		t.Errorf("the other flexible worker: got %q", got[zhao])
	}
}

func TestSkipReasons(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	// An expired verification, and a person no longer on record.
	f.store.add(bot.ReminderSetting{Chat: tg(50), User: tg(50), Slot: bot.SlotMorning, PersonID: f.people[1].ID, Until: testNow.Add(-time.Hour)})
	f.store.add(bot.ReminderSetting{Chat: tg(51), User: tg(51), Slot: bot.SlotMorning, PersonID: "110105198803120019", Until: testNow.Add(time.Hour)})
	blocked := &fakeBlocklist{chats: map[int64]bool{wang: true}}
	sum, err := f.scheduler(func(c *Config) { c.Blocklist = blocked }).Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{SkipResident: 2, SkipNothingDue: 1, SkipUnverified: 1, SkipUnknown: 1, SkipBlocked: 1}
	if diff := cmp.Diff(want, sum.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if f.send.chats()[wang] != 0 || f.send.chats()[50] != 0 {
		t.Errorf("sent to a blocked or unverified chat: %v", f.send.chats())
	}
	if _, on := f.store.settings[[2]string{tg(wang), tg(wang)}]; on {
		t.Error("a blocked user's reminders stay on")
	}
}

type fakeBlocklist struct{ chats map[int64]bool }

func (b *fakeBlocklist) Blocked(ctx context.Context, chatID string) (bool, error) {
	chat := untg(chatID)
	return b.chats[chat], nil
}

func TestQuietHoursAndSlots(t *testing.T) {
	f := newFixture(t, bot.SlotEvening)
	s := f.scheduler(nil)
	ctx := context.Background()
	for _, at := range []time.Time{
		time.Date(2026, 11, 26, 7, 59, 0, 0, records.Shanghai),
		time.Date(2026, 11, 26, 21, 0, 0, 0, records.Shanghai),
		time.Date(2026, 11, 27, 2, 0, 0, 0, records.Shanghai),
	} {
		f.clock.Set(at)
		sum, err := s.Pass(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Skipped[SkipQuietHours] != 1 || len(f.send.msgs) != 0 {
			t.Errorf("pass at %s: %+v, %d sent; want quiet", at.Format("15:04"), sum, len(f.send.msgs))
		}
	}
	// Daytime before the evening slot: the evening users wait.
	f.clock.Set(time.Date(2026, 11, 26, 15, 0, 0, 0, records.Shanghai))
	if sum, _ := s.Pass(ctx, false); sum.Sent != 0 || fmt.Sprint(sum.Slots) != "[morning afternoon]" {
		t.Errorf("15:00 pass with evening users: %+v", sum)
	}
	f.clock.Set(time.Date(2026, 11, 26, 19, 0, 0, 0, records.Shanghai))
	if sum, _ := s.Pass(ctx, false); sum.Sent != 4 {
		t.Errorf("19:00 pass: %+v", sum)
	}
}

// A pass that runs into 21:00 stops sending, claims nothing it did not
// send, and the rest goes out in the next day's window.
func TestWindowEndsAndResumes(t *testing.T) {
	f := newFixture(t, bot.SlotEvening)
	start := time.Date(2026, 11, 26, 20, 59, 59, 900_000_000, records.Shanghai) // room for 2 sends at 25/s... and no more
	f.clock.Set(start)
	s := f.scheduler(func(c *Config) { c.Rate = 20 })
	sum, err := s.Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 2 || !sum.Incomplete || sum.Skipped[SkipWindowEnded] == 0 {
		t.Fatalf("pass into 21:00: %+v", sum)
	}
	for _, m := range f.send.msgs {
		if Quiet(m.at) {
			t.Errorf("message sent at %s, in quiet hours", m.at.In(records.Shanghai).Format("15:04:05.000"))
		}
	}
	f.clock.Set(time.Date(2026, 11, 27, 19, 0, 0, 0, records.Shanghai))
	sum, err = s.Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	// The two not reached yesterday, and the Shanghai person's second
	// reminder (one a day: yesterday was the window one).
	if diff := cmp.Diff(map[int64]string{li: "missed 2026-08", zhao: "missed 2026-05", qian: "missed 2026-10"}, kinds(sum)); diff != "" {
		t.Errorf("next evening (-want +got):\n%s", diff)
	}
	if got := f.send.chats(); got[wang] != 1 || got[zhao] != 1 || got[qian] != 1 {
		t.Errorf("messages per chat: %v", got)
	}
}

func TestPacing(t *testing.T) {
	db, err := records.OpenDemo(context.Background(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &clock{t: testNow}
	st := newMemStore(c.Now)
	snd := &sender{clock: c}
	// 200 users verified as the same person each get a message: sent-marks
	// are per person, so give each a person of their own kind by using
	// the demo person who missed a month, in 200 distinct chats, and
	// release the mark as a "retryable failure" would... simpler: no marks.
	qian := records.Demo()[qian-1].ID
	for i := 1; i <= 200; i++ {
		st.add(bot.ReminderSetting{Chat: tg(int64(i)), User: tg(int64(i)), Slot: bot.SlotMorning, PersonID: qian, Until: testNow.Add(time.Hour)})
	}
	forgetful := &forgetMarks{memStore: st}
	s := New(Config{Store: forgetful, Records: db, Sender: snd, Now: c.Now, Sleep: c.Sleep, Batch: 17})
	sum, err := s.Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 200 {
		t.Fatalf("sent %d, want 200", sum.Sent)
	}
	// No window of one second holds more than 25 sends.
	for i := range snd.msgs {
		j := i
		for j < len(snd.msgs) && snd.msgs[j].at.Sub(snd.msgs[i].at) < time.Second {
			j++
		}
		if j-i > 25 {
			t.Fatalf("%d sends within a second from %s", j-i, snd.msgs[i].at.Format("15:04:05.000"))
		}
	}
	if span := snd.msgs[199].at.Sub(snd.msgs[0].at); span != 199*40*time.Millisecond {
		t.Errorf("200 sends took %v of virtual time, want %v", span, 199*40*time.Millisecond)
	}
}

// forgetMarks lets every claim win, so one person can be reminded in many
// chats (for the pacing test only).
type forgetMarks struct{ *memStore }

func (forgetMarks) Claim(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}
func (forgetMarks) Marked(context.Context, string, string) (bool, error) { return false, nil }

func TestBlockedTurnsRemindersOff(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	f.send.fail = func(chat int64) error {
		if chat == wang {
			return fmt.Errorf("send: %w", errBlocked)
		}
		return nil
	}
	sum, err := f.scheduler(nil).Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 3 || sum.Failed != 1 || sum.Skipped[SkipBlocked] != 1 || sum.Incomplete {
		t.Errorf("summary: %+v", sum)
	}
	if _, on := f.store.settings[[2]string{tg(wang), tg(wang)}]; on {
		t.Error("reminders still on after a 403")
	}
}

// A channel that cannot reach the user now (WeChat outside its reply
// window, without a subscription) skips the reminder and counts it; the
// mark goes back, so a later day's pass sends it once it can.
func TestCannotPushIsSkippedAndCounted(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	reach := false
	f.send.fail = func(chat int64) error {
		if chat == wang && !reach {
			return fmt.Errorf("wechat send: outside the reply window: %w", bot.ErrCannotPush)
		}
		return nil
	}
	s := f.scheduler(nil)
	sum, err := s.Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 3 || sum.Failed != 0 || sum.Skipped[SkipCannotPush] != 1 || sum.Incomplete {
		t.Errorf("summary: %+v", sum)
	}
	if _, on := f.store.settings[[2]string{tg(wang), tg(wang)}]; !on {
		t.Error("reminders turned off for a user the channel could not reach today")
	}
	reach = true
	f.clock.Set(testNow.Add(24 * time.Hour))
	sum, _ = s.Pass(context.Background(), false)
	if kinds(sum)[wang] == "" {
		t.Errorf("next day's pass did not send the skipped reminder: %+v", sum)
	}
}

func TestRetryableFailureIsRetried(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	fails := 1
	f.send.fail = func(chat int64) error {
		if chat == wang && fails > 0 {
			fails--
			return errors.New("telegram: 502 bad gateway")
		}
		return nil
	}
	s := f.scheduler(nil)
	sum, _ := s.Pass(context.Background(), false)
	if sum.Failed != 1 || !sum.Incomplete {
		t.Fatalf("first pass: %+v", sum)
	}
	f.clock.Set(testNow.Add(10 * time.Minute)) // the next recheck
	sum, _ = s.Pass(context.Background(), false)
	if sum.Sent != 1 || kinds(sum)[wang] != "missed 2026-10" || sum.Incomplete {
		t.Errorf("recheck: %+v", sum)
	}
	for chat, n := range f.send.chats() {
		if n != 1 {
			t.Errorf("chat %d got %d messages", chat, n)
		}
	}
}

func TestDryRunSendsAndClaimsNothing(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	s := f.scheduler(nil)
	sum, err := s.Pass(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Planned) != 4 || sum.Sent != 0 || len(f.send.msgs) != 0 || len(f.store.marks) != 0 {
		t.Fatalf("dry run: %+v, %d sent, %d marks", sum, len(f.send.msgs), len(f.store.marks))
	}
	if sum, _ := s.Pass(context.Background(), false); sum.Sent != 4 {
		t.Errorf("real pass after a dry run: %+v", sum)
	}
}

// Two replicas running passes at once, the lease disabled as if it had
// expired under a stalled holder: the sent-marks alone keep every reminder
// to one message.
func TestConcurrentPassesSendOnce(t *testing.T) {
	for _, noLease := range []bool{false, true} {
		t.Run(fmt.Sprintf("noLease=%v", noLease), func(t *testing.T) {
			f := newFixture(t, bot.SlotMorning)
			f.store.noLease = noLease
			var wg sync.WaitGroup
			for r := range 4 {
				s := f.scheduler(func(c *Config) { c.Token = fmt.Sprint("replica-", r) })
				wg.Go(func() {
					for range 3 {
						if _, err := s.Pass(context.Background(), false); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			checkOnce(t, f.send, []int64{li, wang, zhao, qian})
		})
	}
}

func checkOnce(t *testing.T, s *sender, want []int64) {
	t.Helper()
	got := s.chats()
	for _, c := range want {
		if got[c] != 1 {
			t.Errorf("chat %d got %d reminders, want exactly 1 (all: %v)", c, got[c], got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("reminders went to %v, want exactly %v", got, want)
	}
}

// A pass killed after two sends, then run again: every due reminder goes
// out exactly once.
func TestKilledPassRerun(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	ctx, cancel := context.WithCancel(context.Background())
	f.send.after = func(n int) {
		if n == 2 {
			cancel()
		}
	}
	_, err := f.scheduler(func(c *Config) { c.Token = "dies" }).Pass(ctx, false)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("killed pass: err = %v, want context.Canceled", err)
	}
	// The dead replica's lease runs out before another takes over.
	f.store.Unlease(context.Background(), leaseName, "dies")
	f.send.after = nil
	sum, err := f.scheduler(nil).Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 2 {
		t.Errorf("rerun: %+v", sum)
	}
	checkOnce(t, f.send, []int64{li, wang, zhao, qian})
}

func TestLeaseHeldByAnotherReplica(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	if ok, _ := f.store.Lease(context.Background(), leaseName, "other", time.Minute); !ok {
		t.Fatal("setup: lease not taken")
	}
	sum, err := f.scheduler(nil).Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped[SkipLeaseHeld] != 1 || len(f.send.msgs) != 0 {
		t.Errorf("pass while another replica holds the lease: %+v", sum)
	}
}

// A serving pass keeps no list of what it sent: at 100k due users that was
// about 100 MB a pass, read by nobody. shebao remind --once asks for it.
func TestSentListedOnlyWhenAsked(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	sum, err := f.scheduler(func(c *Config) { c.ListSent = false }).Pass(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 4 || len(sum.Planned) != 0 {
		t.Errorf("serving pass: %d sent, %d listed; want 4 sent, none listed", sum.Sent, len(sum.Planned))
	}

	f = newFixture(t, bot.SlotMorning)
	sum, err = f.scheduler(func(c *Config) { c.ListSent = false }).Pass(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Planned) != 4 {
		t.Errorf("dry run lists %d, want 4: listing is what a dry run is for", len(sum.Planned))
	}
}

// Telegram and WeChat served by separate processes on one Redis (README):
// each process's pass sends its own channel's reminders, skips the
// other's chats without reading their records, and marks the slot done
// for its own channel only, so the other process still runs the slot that
// day. The mark the current release writes (the slot done, no channel)
// still counts as done for every channel.
func TestPassPerChannelProcesses(t *testing.T) {
	f := newFixture(t, bot.SlotMorning)
	// wang's and qian's reminders go to WeChat.
	for _, n := range []int64{wang, qian} {
		r := f.store.settings[[2]string{tg(n), tg(n)}]
		delete(f.store.settings, [2]string{tg(n), tg(n)})
		r.Chat, r.User = bot.ID(bot.ChannelWeChat, fmt.Sprint(n)), bot.ID(bot.ChannelWeChat, fmt.Sprint(n))
		f.store.add(r)
	}
	var wxSent []string
	wxSend := senderFunc(func(_ context.Context, chat string, _ []bot.Reply) error {
		wxSent = append(wxSent, chat)
		return nil
	})
	tgOnly := f.scheduler(func(c *Config) { c.Channels = []string{bot.ChannelTelegram} })
	wxOnly := f.scheduler(func(c *Config) { c.Sender, c.Channels = wxSend, []string{bot.ChannelWeChat} })
	ctx := context.Background()

	sum, err := wxOnly.Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(wxSent) != 2 || sum.Sent != 2 || sum.Skipped[SkipOtherChannel] != 5 {
		t.Errorf("WeChat process: sent to %v; summary %+v", wxSent, sum)
	}
	sum, err = tgOnly.Pass(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.send.chats(); got[li] != 1 || got[zhao] != 1 || len(got) != 2 {
		t.Errorf("the Telegram process, after the WeChat one: sent %v (want li and zhao once); summary %+v", got, sum)
	}
	if sum, _ := tgOnly.Pass(ctx, false); sum.Skipped[SkipNothingToRun] != 1 {
		t.Errorf("second Telegram pass the same day: %+v", sum)
	}

	// The next day, a store the current release marked done for the slot.
	day := testNow.Add(24 * time.Hour)
	f.clock.Set(day)
	if _, err := f.store.Claim(ctx, "", "done:"+day.Format(time.DateOnly)+":"+bot.SlotMorning, time.Hour); err != nil {
		t.Fatal(err)
	}
	if sum, _ := wxOnly.Pass(ctx, false); sum.Skipped[SkipNothingToRun] != 1 || sum.Sent != 0 {
		t.Errorf("a slot the current release marked done was run again: %+v", sum)
	}
}

type senderFunc func(context.Context, string, []bot.Reply) error

func (f senderFunc) Send(ctx context.Context, chat string, r []bot.Reply) error {
	return f(ctx, chat, r)
}
