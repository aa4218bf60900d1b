package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/records"
)

// v1Fixture is what the previous release wrote for a handful of users, by
// its own code (v1Store) against the test's Redis.
type v1Fixture struct {
	now                     time.Time
	linked, dialog, probed  string // ID numbers: linked by user 7, in user 8's dialog, failed on by user 9
	forgotten               string // reminded once; nobody links it any more
	link                    bot.Link
	setting                 bot.ReminderSetting
	lockEnd                 time.Time // users 10 (and ID dialog) locked out until then
	day, month, slotDone    string
	heldUpdate              []byte
	sentTTL, dialogTTLAfter time.Duration
}

// Users of the fixture.
const (
	fxVerified = 7  // verified as linked, language en, reminders in the evening
	fxDialog   = 8  // mid-verification: typed the ID number dialog, awaits the contact
	fxFailing  = 9  // three failed attempts on probed
	fxLocked   = 10 // five failed attempts on dialog: locked, and so is that ID number
	fxHeld     = 11 // an update in flight: typed an ID number
)

func writeV1(t *testing.T, sv *server) v1Fixture {
	t.Helper()
	ctx := context.Background()
	v1 := sv.v1()
	demo := records.Demo()
	now := time.Now().Truncate(time.Millisecond)
	fx := v1Fixture{now: now, linked: demo[0].ID, dialog: demo[1].ID, probed: demo[2].ID, forgotten: demo[3].ID,
		day: now.In(records.Shanghai).Format(time.DateOnly), month: "2026-10"}
	fx.slotDone = "done:" + fx.day + ":" + bot.SlotEvening
	fx.link = bot.Link{PersonID: fx.linked, Until: now.Add(60 * 24 * time.Hour)}
	fx.setting = bot.ReminderSetting{Chat: tg(fxVerified), User: tg(fxVerified), Slot: bot.SlotEvening, PersonID: fx.linked, Until: fx.link.Until, Lang: "en"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// User 7: verified, English, reminders on; one reminder sent today.
	must(v1.save(ctx, fxVerified, fxVerified, bot.State{Lang: "en", Link: fx.link}, bot.PartLang|bot.PartLink))
	must(v1.setReminder(ctx, fx.setting))
	_, err := v1.claim(ctx, v1SentMark(fx.linked, bot.RemindMissed, fx.month), v1SentTTL)
	must(err)
	_, err = v1.claim(ctx, v1DayMark(fx.linked, fx.day), v1DoneTTL)
	must(err)
	_, err = v1.claim(ctx, fx.slotDone, v1DoneTTL)
	must(err)
	// A person reminded before, then forgotten by the previous /forget,
	// which left the marks.
	_, err = v1.claim(ctx, v1SentMark(fx.forgotten, bot.RemindWindow, "2026-05"), v1SentTTL)
	must(err)
	// User 8: typed an ID number, the contact is next.
	must(v1.save(ctx, fxDialog, fxDialog, bot.State{Dialog: bot.Dialog{Name: "verify", Step: "contact",
		Data: map[string]string{"id": fx.dialog}}}, bot.PartDialog))
	// User 9: three failures on a number nobody links; only the chat's
	// dedupe marks say who the user is.
	for i := range 3 {
		_, err := v1.fail(ctx, []string{"user:9", "id:" + fx.probed}, now)
		must(err)
		must(v1.handled(ctx, fxFailing, int64(100+i)))
	}
	// User 10: five failures on user 8's number: both locked.
	for i := range 5 {
		end, err := v1.fail(ctx, []string{"user:10", "id:" + fx.dialog}, now)
		must(err)
		must(v1.handled(ctx, fxLocked, int64(200+i)))
		fx.lockEnd = end
	}
	// An update fetched, not handled yet, holding an ID number.
	fx.heldUpdate = []byte(`{"update_id":900,"message":{"chat":{"id":11},"from":{"id":11},"text":"` + fx.probed + `"}}`)
	must(v1.holdUpdates(ctx, now, map[int64][]byte{900: fx.heldUpdate}))
	// What the previous release left in plain text.
	var plain int
	for _, v := range sv.dump(t) {
		if strings.Contains(v, fx.linked) || strings.Contains(v, fx.dialog) || strings.Contains(v, fx.probed) {
			plain++
		}
	}
	if plain < 4 {
		t.Fatalf("fixture: only %d values hold an ID number in plain text", plain)
	}
	return fx
}

// checkV1Carried asserts that everything the previous release wrote is
// there, as the current code reads it.
func checkV1Carried(t *testing.T, s *Store, fx v1Fixture) {
	t.Helper()
	ctx := context.Background()
	eq := cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })
	st, err := s.Load(ctx, tg(fxVerified), tg(fxVerified))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(bot.State{Lang: "en", Link: bot.Link{PersonID: fx.linked, Until: fx.link.Until}}, st, eq); d != "" {
		t.Errorf("verified user (-want +got):\n%s", d)
	}
	r, on, err := s.Reminder(ctx, tg(fxVerified), tg(fxVerified))
	if err != nil || !on {
		t.Fatalf("reminder setting: on %v, %v", on, err)
	}
	if d := cmp.Diff(fx.setting, r, eq); d != "" {
		t.Errorf("reminder setting (-want +got):\n%s", d)
	}
	if got := scanAll(t, s, bot.SlotEvening); len(got) != 1 || got[0] != fxVerified {
		t.Errorf("evening slot lists %v", got)
	}
	st, err = s.Load(ctx, tg(fxDialog), tg(fxDialog))
	if err != nil {
		t.Fatal(err)
	}
	if st.Dialog.Step != "contact" || st.Dialog.Data["id"] != fx.dialog {
		t.Errorf("dialog mid-verification: %+v", st.Dialog)
	}
	if ttl := s.rdb.PTTL(ctx, s.userKey(tg(fxDialog), tg(fxDialog), dialogKey)).Val(); ttl <= 0 || ttl > v1DialogTTL {
		t.Errorf("dialog TTL %v, want what was left of %v", ttl, v1DialogTTL)
	}
	for _, m := range []struct{ person, mark string }{
		{fx.linked, "sent:missed:" + fx.month}, {fx.linked, "day:" + fx.day}, {"", fx.slotDone},
	} {
		if ok, err := s.Marked(ctx, m.person, m.mark); err != nil || !ok {
			t.Errorf("mark %q lost: %v %v", m.mark, ok, err)
		}
	}
	if ttl := s.rdb.PTTL(ctx, s.markKey(fx.linked, "sent:missed:"+fx.month)).Val(); ttl < v1SentTTL-time.Hour {
		t.Errorf("sent-mark TTL %v, want about %v", ttl, v1SentTTL)
	}
	// The lockouts, to the millisecond, and the failures that count
	// towards one.
	user := func(id string) bot.Throttle {
		return bot.Throttle{Key: id, Policy: bot.ThrottlePolicy{Free: 5, Delay: time.Hour, MaxDelay: 24 * time.Hour, Window: 24 * time.Hour}}
	}
	id := func(n string) bot.Throttle {
		return bot.Throttle{Key: "id:" + n, Policy: bot.ThrottlePolicy{Free: 3, Delay: time.Minute, MaxDelay: 15 * time.Minute, Window: 24 * time.Hour}}
	}
	for _, th := range []bot.Throttle{user("user:10"), id(fx.dialog)} {
		if got, err := s.Throttled(ctx, []bot.Throttle{th}, fx.now); err != nil || !got.Equal(fx.lockEnd) {
			kind, _, _ := strings.Cut(th.Key, ":")
			t.Errorf("lockout of %s: until %v, %v; want %v", kind, got, err, fx.lockEnd)
		}
	}
	if got, err := s.Throttled(ctx, []bot.Throttle{id(fx.probed)}, fx.now); err != nil || !got.After(fx.now) {
		t.Errorf("three failures on an ID number no longer count: throttled until %v, %v", got, err)
	}
	if got, err := s.Throttled(ctx, []bot.Throttle{user("user:9")}, fx.now); err != nil || !got.IsZero() {
		t.Errorf("user with three failures throttled until %v, %v; want two attempts left", got, err)
	}
	var held []byte
	if err := s.HeldUpdates(ctx, func(uid int64, at time.Time, raw []byte) {
		if uid == 900 && at.Equal(fx.now) {
			held = raw
		}
	}); err != nil || string(held) != string(fx.heldUpdate) {
		t.Errorf("held update: %q, %v", held, err)
	}
}

// Upgrading keeps every user: a store the previous release wrote (links,
// language, reminder settings and their index, a dialog mid-verify,
// failure counters and lockouts, sent-marks, a held update) is converted
// at Open, and afterwards no key or value holds an ID number, a phone or
// the previous release's reversible hashes of them.
func TestMigrateFromPreviousRelease(t *testing.T) {
	sv := newServer(t)
	fx := writeV1(t, sv)
	s := sv.open(t, Options{})
	if v := s.rdb.HGet(context.Background(), s.metaKey("schema"), "version").Val(); v != "2" {
		t.Fatalf("schema version %q after Open", v)
	}
	checkV1Carried(t, s, fx)
	hashes := []string{v1PersonHash(fx.linked), v1PersonHash(fx.forgotten), legacyAttemptHash("id:" + fx.dialog),
		legacyAttemptHash("user:9"), legacyAttemptHash("user:10"), legacyAttemptHash("id:" + fx.probed)}
	sv.assertNoPersonalData(t, hashes...)
	// The forgotten person's old mark is gone, not moved.
	if ok, _ := s.Marked(context.Background(), fx.forgotten, "sent:window:2026-05"); ok {
		t.Error("a forgotten person's mark was carried over")
	}

	// Converting again changes nothing.
	before := sv.dump(t)
	if err := s.migrate(context.Background(), "again"); err != nil {
		t.Fatal(err)
	}
	after := sv.dump(t)
	for k, v := range before {
		if after[k] != v && !strings.Contains(k, "{meta}") && !strings.Contains(k, "{t:") {
			t.Errorf("second conversion changed %s", k)
		}
	}
	checkV1Carried(t, s, fx)
}

// A failure counter of an ID number no value names is converted when the
// number is next used, and until then keeps its previous-release name.
func TestMigrateLeavesUnknownAttemptsForLater(t *testing.T) {
	sv := newServer(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	const stranger = "110105198803120014"
	if _, err := sv.v1().fail(ctx, []string{"id:" + stranger}, now); err != nil {
		t.Fatal(err)
	}
	s := sv.open(t, Options{})
	legacy := legacyAttemptKey(sv.prefix, "id:"+stranger, "n")
	if n := s.rdb.Exists(ctx, legacy).Val(); n != 1 {
		t.Fatal("the unattributable counter was dropped")
	}
	th := bot.Throttle{Key: "id:" + stranger, Policy: bot.ThrottlePolicy{Free: 2, Delay: time.Minute, MaxDelay: time.Minute, Window: 24 * time.Hour}}
	// One failure carried over: one attempt left before the wait.
	r, err := s.Reserve(ctx, []bot.Throttle{th}, now)
	if err != nil || !r.OK || r.Until.IsZero() {
		t.Fatalf("Reserve: %+v, %v; want admitted with a wait next", r, err)
	}
	if n := s.rdb.Exists(ctx, legacy).Val(); n != 0 {
		t.Error("the counter kept its reversible name after its first use")
	}
	if r, _ := s.Reserve(ctx, []bot.Throttle{th}, now); r.OK {
		t.Error("the carried-over failure did not count")
	}
	sv.assertNoPersonalData(t, legacyAttemptHash("id:"+stranger))
}

// A conversion cut short (here: after the values were sealed, before the
// marks and attempts were moved) completes at the next Open.
func TestMigrateResumesAfterACrash(t *testing.T) {
	sv := newServer(t)
	fx := writeV1(t, sv)
	raw := &Store{rdb: sv.rdb, opt: Options{KeyPrefix: sv.prefix}, keys: testKeys, log: testLogger(t)}
	raw.opt.setDefaults()
	p := &pass{s: raw, token: "crashed", counts: map[string]int{}}
	if ok, err := raw.lease(context.Background(), "crashed"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := p.scan(context.Background(), "{u:*", nil, func(keys []string) error { return p.reseal(context.Background(), keys, nil) }, nil); err != nil {
		t.Fatal(err)
	}
	// The crashed replica's lease runs out; the next Open converts.
	raw.unlease("crashed")
	s := sv.open(t, Options{})
	checkV1Carried(t, s, fx)
	sv.assertNoPersonalData(t, v1PersonHash(fx.linked))
}

// Replicas starting together: one converts, the others wait for it, and
// all of them then read the converted store.
func TestMigrateOnceAcrossReplicas(t *testing.T) {
	sv := newServer(t)
	fx := writeV1(t, sv)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	for i := range stores {
		wg.Go(func() {
			s, err := Open(context.Background(), Options{URL: sv.url, KeyPrefix: sv.prefix, Keys: testKeys, OpTimeout: time.Second})
			if err != nil {
				t.Error(err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			checkV1Carried(t, s, fx)
			s.Close()
		}
	}
}

// Open refuses a keyring that cannot read the store, with a message naming
// the key, never its contents.
func TestOpenRefusesWrongKeys(t *testing.T) {
	sv := newServer(t)
	sv.open(t, Options{}).Close()
	for _, tc := range []struct {
		keys string
		want string
	}{
		{"k1:" + strings.Repeat("Z", 43) + "=", `key "k1" is not the key this store was written with`},
		{"k2:" + strings.Repeat("Y", 43) + "=", "lacks key k1"},
	} {
		ring, err := keyring.Parse(tc.keys)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Open(context.Background(), Options{URL: sv.url, KeyPrefix: sv.prefix, Keys: ring})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open with %s: %v, want %q", tc.keys[:2], err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), tc.keys[3:13]) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
	// The right key after a new one is fine: a rotation starts.
	ring, _ := keyring.Parse("k2:" + strings.Repeat("Y", 43) + "=,k1:" + strings.Repeat("A", 43) + "=")
	s := sv.open(t, Options{Keys: ring})
	s.Close()
}

// The previous release's plain values also sit in Redis's append-only
// file; the conversion has it rewritten. Needs the server's AOF directory:
// SHEBAO_TEST_AOF_DIR, for a REDIS_URL started with --appendonly yes.
func TestMigrateRewritesTheAOF(t *testing.T) {
	dir := os.Getenv("SHEBAO_TEST_AOF_DIR")
	if dir == "" || os.Getenv("REDIS_URL") == "" {
		t.Skip("set REDIS_URL and SHEBAO_TEST_AOF_DIR (its appendonlydir) to check the file on disk")
	}
	aof := func() string {
		var b strings.Builder
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			raw, _ := os.ReadFile(f)
			b.Write(raw)
		}
		return b.String()
	}
	sv := newServer(t)
	fx := writeV1(t, sv)
	if !strings.Contains(aof(), fx.linked) {
		t.Fatal("the fixture's plain values are not in the AOF: is SHEBAO_TEST_AOF_DIR the server's?")
	}
	sv.open(t, Options{})
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; {
		info := sv.rdb.Info(ctx, "persistence").Val()
		if strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the AOF rewrite did not finish")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition in the test only
	}
	text := aof()
	for _, n := range []string{fx.linked, fx.dialog, fx.probed, v1PersonHash(fx.linked)} {
		if strings.Contains(text, n) {
			t.Errorf("the AOF still holds %q after the conversion", n[:6])
		}
	}
}

// BenchmarkMigrateV1 converts a store the previous release wrote for
// SHEBAO_BENCH_USERS users (default 2,000), each verified with language,
// reminder setting, two sent-marks and a failed attempt: about seven keys
// a user. Against REDIS_URL when set.
//
//	REDIS_URL=redis://127.0.0.1:6379/0 SHEBAO_BENCH_USERS=100000 go test ./bot/redisstore -run '^$' -bench MigrateV1 -benchtime 1x
func BenchmarkMigrateV1(b *testing.B) {
	users := 2000
	if v := os.Getenv("SHEBAO_BENCH_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SHEBAO_BENCH_USERS=%q", v)
		}
		users = n
	}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		sv := newServer(b)
		v1 := sv.v1()
		now := time.Now()
		pipe := sv.rdb.Pipeline()
		for i := range users {
			u := int64(i + 1)
			id := fmt.Sprintf("%018d", 110105198803120000+i) // the store does not check the checksum
			link, _ := json.Marshal(v1LinkJSON{PersonID: id, Until: now.Add(time.Hour).UTC()})
			rem, _ := json.Marshal(v1ReminderJSON{Slot: bot.SlotMorning, PersonID: id, Until: now.Add(time.Hour).UTC(), Lang: "zh"})
			pipe.Set(ctx, v1.userKey(u, u, "lang"), "zh", 0)
			pipe.Set(ctx, v1.userKey(u, u, "link"), link, time.Hour)
			pipe.Set(ctx, v1.userKey(u, u, "remind"), rem, time.Hour)
			pipe.SAdd(ctx, sv.prefix+":{remind}:slot:morning", fmt.Sprintf("%d:%d", u, u))
			pipe.Set(ctx, sv.prefix+":{m:"+v1SentMark(id, bot.RemindMissed, "2026-09")+"}", "1", time.Hour)
			pipe.Set(ctx, sv.prefix+":{m:"+v1SentMark(id, bot.RemindMissed, "2026-10")+"}", "1", time.Hour)
			pipe.Set(ctx, v1.attemptKey("id:"+id, "n"), "1", time.Hour)
			if pipe.Len() > 5000 {
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		keys := len(sv.keys(b))
		b.StartTimer()
		start := time.Now()
		s, err := Open(ctx, Options{URL: sv.url, KeyPrefix: sv.prefix, Keys: testKeys, OpTimeout: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.StopTimer()
		s.Close()
		b.ReportMetric(float64(keys)/took.Seconds(), "keys/s")
		b.ReportMetric(float64(users)/took.Seconds(), "users/s")
		b.StartTimer()
	}
}
