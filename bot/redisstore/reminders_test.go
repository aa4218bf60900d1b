package redisstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
)

func TestReminderSettingRoundTripAndForget(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	r := bot.ReminderSetting{Chat: tg(7), User: tg(7), Slot: bot.SlotEvening, PersonID: "110105198803120014", Until: until, Lang: "en"}
	if _, on, err := s.Reminder(ctx, tg(7), tg(7)); err != nil || on {
		t.Fatalf("before opt-in: on=%v err=%v", on, err)
	}
	if err := s.SetReminder(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, on, err := s.Reminder(ctx, tg(7), tg(7))
	if err != nil || !on {
		t.Fatalf("after opt-in: on=%v err=%v", on, err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("setting (-set +loaded):\n%s", diff)
	}
	// Changing the slot moves the user between indexes.
	r.Slot = bot.SlotMorning
	if err := s.SetReminder(ctx, r); err != nil {
		t.Fatal(err)
	}
	if n := scanAll(t, s, bot.SlotEvening); len(n) != 0 {
		t.Errorf("evening still lists %v after moving to morning", n)
	}
	if n := scanAll(t, s, bot.SlotMorning); len(n) != 1 {
		t.Errorf("morning lists %v", n)
	}
	// /forget deletes the setting; the next scan drops the index entry.
	if err := s.Forget(ctx, tg(7), tg(7)); err != nil {
		t.Fatal(err)
	}
	if _, on, _ := s.Reminder(ctx, tg(7), tg(7)); on {
		t.Error("reminders on after Forget")
	}
	if n := scanAll(t, s, bot.SlotMorning); len(n) != 0 {
		t.Errorf("scan after Forget: %v", n)
	}
	if n, _ := s.rdb.SCard(ctx, s.slotKey(bot.SlotMorning)).Result(); n != 0 {
		t.Errorf("stale index entries left: %d", n)
	}
}

func TestReminderStopAndExpiry(t *testing.T) {
	s, st, _ := testStore(t)
	ctx := context.Background()
	for i := int64(1); i <= 2; i++ {
		if err := s.SetReminder(ctx, bot.ReminderSetting{Chat: tg(i), User: tg(i), Slot: bot.SlotAfternoon,
			PersonID: "x", Until: time.Now().Add(3 * st.Unit)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.StopReminder(ctx, tg(1), tg(1)); err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, s, bot.SlotAfternoon); fmt.Sprint(got) != "[2]" {
		t.Errorf("after stopping user 1: %v", got)
	}
	// The setting expires with the verification.
	st.FastForward(4 * st.Unit)
	if got := scanAll(t, s, bot.SlotAfternoon); len(got) != 0 {
		t.Errorf("after the link expired: %v", got)
	}
}

func scanAll(t *testing.T, s *Store, slot string) []int64 {
	t.Helper()
	var users []int64
	var cursor uint64
	for {
		batch, next, err := s.ScanReminders(context.Background(), slot, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range batch {
			users = append(users, untg(r.User))
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	sort.Slice(users, func(i, j int) bool { return users[i] < users[j] })
	return users
}

func TestReminderScanManyWithoutLoss(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	const n = 2500
	for i := int64(1); i <= n; i++ {
		if err := s.SetReminder(ctx, bot.ReminderSetting{Chat: tg(i), User: tg(i), Slot: bot.SlotMorning, PersonID: fmt.Sprint("p", i), Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]bool{}
	for _, u := range scanAll(t, s, bot.SlotMorning) {
		seen[u] = true
	}
	if len(seen) != n {
		t.Errorf("scan found %d distinct users, want %d", len(seen), n)
	}
}

func TestClaimIsExclusive(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			ok, err := s.Claim(ctx, "110105198803120014", "sent:missed:2026-10", time.Hour)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent claims won, want 1", wins.Load())
	}
	if ok, _ := s.Marked(ctx, "110105198803120014", "sent:missed:2026-10"); !ok {
		t.Error("claimed mark not marked")
	}
	if err := s.Release(ctx, "110105198803120014", "sent:missed:2026-10"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Claim(ctx, "110105198803120014", "sent:missed:2026-10", time.Hour); !ok {
		t.Error("released mark cannot be claimed again")
	}
}

func TestLease(t *testing.T) {
	s, st, _ := testStore(t)
	ctx := context.Background()
	ttl := 2 * st.Unit
	if ok, err := s.Lease(ctx, "pass", "a", ttl); !ok || err != nil {
		t.Fatalf("a takes free lease: %v %v", ok, err)
	}
	if ok, _ := s.Lease(ctx, "pass", "b", ttl); ok {
		t.Fatal("b took a's lease")
	}
	if ok, _ := s.Lease(ctx, "pass", "a", ttl); !ok {
		t.Fatal("a cannot renew")
	}
	if err := s.Unlease(ctx, "pass", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Lease(ctx, "pass", "b", ttl); ok {
		t.Fatal("b's Unlease released a's lease")
	}
	st.FastForward(3 * st.Unit)
	if ok, _ := s.Lease(ctx, "pass", "b", ttl); !ok {
		t.Fatal("b cannot take an expired lease")
	}
	if err := s.Unlease(ctx, "pass", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Lease(ctx, "pass", "a", ttl); !ok {
		t.Fatal("a cannot take a released lease")
	}
}

// A setting of a web or WeChat identity, whose key name holds a ':' of its
// own, is listed, found and stopped like a Telegram one.
func TestReminderOfOtherChannels(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, id := range []string{"wx:oAbC-9z", tg(5)} {
		if err := s.SetReminder(ctx, bot.ReminderSetting{Chat: id, User: id, Slot: bot.SlotMorning, PersonID: "350203199309200053/" + id,
			Until: until, Lang: "zh"}); err != nil {
			t.Fatal(err)
		}
	}
	batch, _, err := s.ScanReminders(ctx, bot.SlotMorning, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range batch {
		got = append(got, r.Chat+"/"+r.User)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "tg:5/tg:5 wx:oAbC-9z/wx:oAbC-9z" {
		t.Errorf("scanned %v", got)
	}
	if err := s.StopReminder(ctx, "wx:oAbC-9z", "wx:oAbC-9z"); err != nil {
		t.Fatal(err)
	}
	if _, on, _ := s.Reminder(ctx, "wx:oAbC-9z", "wx:oAbC-9z"); on {
		t.Error("stopped setting still on")
	}
	if batch, _, _ := s.ScanReminders(ctx, bot.SlotMorning, 0, 100); len(batch) != 1 || batch[0].Chat != tg(5) {
		t.Errorf("after stop: %+v", batch)
	}
}

// A person verified in two chats is reminded in one: where they last
// turned reminders on. Forgetting that chat lets the other be chosen.
func TestReminderOneChatPerPerson(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	person := "350203199309200053"
	web := bot.ID(bot.ChannelWeb, "abc")
	set := func(chat, person string) {
		t.Helper()
		if err := s.SetReminder(ctx, bot.ReminderSetting{Chat: chat, User: chat, Slot: bot.SlotMorning, PersonID: person, Until: until}); err != nil {
			t.Fatal(err)
		}
	}
	on := func(chat string) bool {
		t.Helper()
		_, on, err := s.Reminder(ctx, chat, chat)
		if err != nil {
			t.Fatal(err)
		}
		return on
	}
	set(tg(1), person)
	set(web, person)
	if on(tg(1)) || !on(web) {
		t.Errorf("after turning on in a second chat: first on=%v, second on=%v; want only the second", on(tg(1)), on(web))
	}
	if got := scanAll(t, s, bot.SlotMorning); len(got) != 1 {
		t.Errorf("morning lists %v, want one setting", got)
	}
	// Changing the slot in the chosen chat keeps it chosen.
	set(web, person)
	// Another person in another chat is not affected.
	set(tg(2), "110105198803120014")
	if !on(web) || !on(tg(2)) {
		t.Error("a setting of someone else was stopped")
	}
	// A chat that verified as someone else since is left alone.
	set(tg(1), person)
	if err := s.SetReminder(ctx, bot.ReminderSetting{Chat: tg(1), User: tg(1), Slot: bot.SlotMorning, PersonID: "11010819750630006X", Until: until}); err != nil {
		t.Fatal(err)
	}
	set(web, person)
	if !on(tg(1)) {
		t.Error("a chat now reminding another person was stopped")
	}
	// Forgetting the chosen chat deletes the pointer, nothing else.
	set(tg(3), person)
	if err := s.Forget(ctx, tg(3), tg(3)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.rdb.Exists(ctx, s.chosenKey(person)).Result(); n != 0 {
		t.Error("the chosen-chat pointer outlived Forget of that chat")
	}
	set(web, person)
	if !on(web) {
		t.Error("turning on again after Forget failed")
	}
	// Turning reminders off in the chosen chat drops the pointer too.
	if err := s.StopReminder(ctx, web, web); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.rdb.Exists(ctx, s.chosenKey(person)).Result(); n != 0 {
		t.Error("the chosen-chat pointer outlived StopReminder of that chat")
	}
}

// Rewriting a chat's own setting (a language change, a phone-tag refresh)
// is not turning reminders on: it stops no other chat, even with two
// chats on and no pointer, as the previous release left them.
func TestReminderRewriteStopsNoOtherChat(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	person := "350203199309200053"
	a, b := tg(1), tg(2)
	// As the previous release wrote them: settings and index, no pointer.
	for _, chat := range []string{a, b} {
		k := s.userKey(chat, chat, reminderKey)
		v, err := s.sealJSON(k, reminderJSON{Slot: bot.SlotMorning, PersonID: person, Until: until})
		if err != nil {
			t.Fatal(err)
		}
		s.rdb.Set(ctx, k, v, time.Hour)
		s.rdb.SAdd(ctx, s.slotKey(bot.SlotMorning), member(chat, chat))
	}
	for _, chat := range []string{a, b} {
		r, on, err := s.Reminder(ctx, chat, chat)
		if err != nil || !on {
			t.Fatalf("%s: %v %v", chat, on, err)
		}
		r.Lang = "en"
		if err := s.SetReminder(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, chat := range []string{a, b} {
		if r, on, _ := s.Reminder(ctx, chat, chat); !on || r.Lang != "en" {
			t.Errorf("%s after rewrites: on=%v lang=%q; a rewrite stopped it", chat, on, r.Lang)
		}
	}
}
