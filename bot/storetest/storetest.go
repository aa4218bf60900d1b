// Package storetest is the conformance suite for implementations of the
// engine's store interfaces (bot.Sessions, bot.Attempts) and the adapter's
// (bot.Coordinator, bot.Blocklist). An implementation's test calls
// Run with a function that opens a fresh, empty set of stores.
//
// Expiry is tested without real waiting where the backend allows: Stores
// carries a FastForward hook (miniredis: mr.FastForward). A backend that
// cannot skip time (a real Redis) passes a FastForward that sleeps and opens
// its stores with short TTLs and a short Unit, so the suite stays quick.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shebao/shebao/bot"
)

// Blocklist is bot.Blocklist plus the read the reminder sender needs.
type Blocklist interface {
	bot.Blocklist
	Unblock(ctx context.Context, chat string) error
	Blocked(ctx context.Context, chat string) (bool, error)
}

// Stores is one set of implementations under test, sharing one backend, and
// what the suite needs to know about how they were opened.
type Stores struct {
	Sessions    bot.Sessions
	Attempts    bot.Attempts
	Coordinator bot.Coordinator
	Blocklist   Blocklist
	// Waiting returns how many updates of a chat are queued in the
	// Coordinator, including the one being handled. The ordering case
	// uses it to know that every concurrent Begin has enqueued; when nil,
	// that case checks mutual exclusion only.
	Waiting func(ctx context.Context, chat string) (int, error)

	// DialogTTL is what the stores were opened with; LockLease is the
	// longest an abandoned claim may keep its chat.
	DialogTTL time.Duration
	LockLease time.Duration
	// Unit is the smallest duration the backend's expiry resolves
	// reliably; link lifetimes and attempt windows in the suite are small
	// multiples of it.
	Unit time.Duration
	// FastForward makes the backend's clock, as seen by expiry, advance by
	// d. Nil means the backend runs on real time: the suite sleeps.
	FastForward func(d time.Duration)
}

// Run runs the suite. open is called once per case and must return empty
// stores; it registers its own cleanup with t.
func Run(t *testing.T, open func(t *testing.T) Stores) {
	cases := []struct {
		name string
		f    func(t *testing.T, s Stores)
	}{
		{"SessionsUnknownIsZero", testUnknownIsZero},
		{"SessionsRoundTrip", testRoundTrip},
		{"SessionsPartsIndependent", testPartsIndependent},
		{"SessionsZeroPartDeletes", testZeroPartDeletes},
		{"SessionsDialogExpires", testDialogExpires},
		{"SessionsLinkExpiresAtUntil", testLinkExpires},
		{"SessionsForgetDeletesAll", testForget},
		{"SessionsIsolation", testIsolation},
		{"SessionsChannels", testChannels},
		{"ThrottleFreeThenBackOff", testThrottleBackOff},
		{"ThrottleRefusalChargesNothing", testThrottleRefusal},
		{"ThrottleFinish", testThrottleFinish},
		{"ThrottleWindow", testThrottleWindow},
		{"ThrottleExpires", testThrottleExpires},
		{"ThrottleConcurrentBudgetExact", testThrottleConcurrent},
		{"CoordinatorDedupe", testCoordDedupe},
		{"CoordinatorSerialisesInOrder", testCoordOrder},
		{"CoordinatorChatsIndependent", testCoordChats},
		{"CoordinatorAbandonedClaimExpires", testCoordAbandoned},
		{"CoordinatorCancelledWaitLeaves", testCoordCancel},
		{"Blocklist", testBlocklist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			if s.FastForward == nil {
				s.FastForward = time.Sleep
			}
			c.f(t, s)
		})
	}
}

// withinTest bounds a case that could hang if an implementation is wrong.
func withinTest(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func load(t *testing.T, s Stores, chat, user int64) bot.State {
	t.Helper()
	st, err := s.Sessions.Load(withinTest(t), tg(chat), tg(user))
	if err != nil {
		t.Fatalf("Load(%d, %d): %v", chat, user, err)
	}
	return st
}

func save(t *testing.T, s Stores, chat, user int64, st bot.State, parts bot.Part) {
	t.Helper()
	if err := s.Sessions.Save(withinTest(t), tg(chat), tg(user), st, parts); err != nil {
		t.Fatalf("Save(%d, %d, parts %b): %v", chat, user, parts, err)
	}
}

// stateDiff compares states; links are compared by instant, not by
// location or monotonic reading, which a store need not preserve.
func stateDiff(want, got bot.State) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }))
}

func sampleState(now time.Time) bot.State {
	return bot.State{
		Lang:   "en",
		Dialog: bot.Dialog{Name: "verify", Step: "phone", Data: map[string]string{"id": "110105199001013418"}},
		// Whole seconds: a store may keep milliseconds only.
		Link: bot.Link{PersonID: "110105199001013418", Until: now.Add(90 * 24 * time.Hour).Truncate(time.Second)},
	}
}

const all = bot.PartLang | bot.PartDialog | bot.PartLink

func testUnknownIsZero(t *testing.T, s Stores) {
	if d := stateDiff(bot.State{}, load(t, s, 100, 100)); d != "" {
		t.Errorf("unknown user (-want +got):\n%s", d)
	}
}

func testRoundTrip(t *testing.T, s Stores) {
	want := sampleState(time.Now())
	save(t, s, 100, 100, want, all)
	if d := stateDiff(want, load(t, s, 100, 100)); d != "" {
		t.Errorf("after saving all parts (-want +got):\n%s", d)
	}
	// Each part alone.
	for _, tc := range []struct {
		part bot.Part
		st   bot.State
	}{
		{bot.PartLang, bot.State{Lang: "zh"}},
		{bot.PartDialog, bot.State{Dialog: bot.Dialog{Name: "backpay", Step: "months"}}},
		{bot.PartLink, bot.State{Link: want.Link}},
	} {
		save(t, s, 200, 200, tc.st, tc.part)
		got := load(t, s, 200, 200)
		save(t, s, 200, 200, bot.State{}, all)
		if d := stateDiff(tc.st, got); d != "" {
			t.Errorf("after saving part %b (-want +got):\n%s", tc.part, d)
		}
	}
}

func testPartsIndependent(t *testing.T, s Stores) {
	base := sampleState(time.Now())
	save(t, s, 100, 100, base, all)

	// Saving one part with other parts zero in st must not touch them.
	save(t, s, 100, 100, bot.State{Lang: "zh"}, bot.PartLang)
	want := base
	want.Lang = "zh"
	if d := stateDiff(want, load(t, s, 100, 100)); d != "" {
		t.Errorf("after saving lang only (-want +got):\n%s", d)
	}

	next := bot.Dialog{Name: "verify", Step: "code"}
	save(t, s, 100, 100, bot.State{Dialog: next}, bot.PartDialog)
	want.Dialog = next
	if d := stateDiff(want, load(t, s, 100, 100)); d != "" {
		t.Errorf("after saving dialog only (-want +got):\n%s", d)
	}

	save(t, s, 100, 100, bot.State{}, 0)
	if d := stateDiff(want, load(t, s, 100, 100)); d != "" {
		t.Errorf("after saving no parts (-want +got):\n%s", d)
	}
}

func testZeroPartDeletes(t *testing.T, s Stores) {
	base := sampleState(time.Now())
	save(t, s, 100, 100, base, all)
	save(t, s, 100, 100, bot.State{Lang: "en"}, bot.PartDialog|bot.PartLink)
	if d := stateDiff(bot.State{Lang: "en"}, load(t, s, 100, 100)); d != "" {
		t.Errorf("after saving zero dialog and link (-want +got):\n%s", d)
	}
	save(t, s, 100, 100, bot.State{}, bot.PartLang)
	if d := stateDiff(bot.State{}, load(t, s, 100, 100)); d != "" {
		t.Errorf("after saving empty lang (-want +got):\n%s", d)
	}
}

func testDialogExpires(t *testing.T, s Stores) {
	ttl := s.DialogTTL
	d := bot.Dialog{Name: "verify", Step: "phone"}
	save(t, s, 100, 100, bot.State{Lang: "zh", Dialog: d}, bot.PartLang|bot.PartDialog)

	// Each save restarts the inactivity timer.
	s.FastForward(ttl * 6 / 10)
	save(t, s, 100, 100, bot.State{Dialog: d}, bot.PartDialog)
	s.FastForward(ttl * 6 / 10)
	if got := load(t, s, 100, 100); got.Dialog.Name != "verify" {
		t.Fatalf("dialog gone %v after its last save, before DialogTTL %v: %+v", ttl*6/10, ttl, got)
	}

	s.FastForward(ttl*4/10 + s.Unit/4)
	if d := stateDiff(bot.State{Lang: "zh"}, load(t, s, 100, 100)); d != "" {
		t.Errorf("after DialogTTL without a save, want only the language (-want +got):\n%s", d)
	}
}

func testLinkExpires(t *testing.T, s Stores) {
	now := time.Now()
	link := bot.Link{PersonID: "110105199001013418", Until: now.Add(2 * s.Unit)}
	save(t, s, 100, 100, bot.State{Lang: "en", Link: link}, bot.PartLang|bot.PartLink)
	if got := load(t, s, 100, 100); got.Link.PersonID != link.PersonID {
		t.Fatalf("link not kept before Until: %+v", got)
	}
	s.FastForward(2*s.Unit + s.Unit/2)
	if d := stateDiff(bot.State{Lang: "en"}, load(t, s, 100, 100)); d != "" {
		t.Errorf("after Until, want only the language (-want +got):\n%s", d)
	}

	// A link saved already expired is not kept either.
	old := bot.Link{PersonID: "110105199001013418", Until: time.Now().Add(-time.Hour)}
	save(t, s, 100, 100, bot.State{Link: old}, bot.PartLink)
	if got := load(t, s, 100, 100); got.Link.Valid(time.Now()) {
		t.Errorf("expired link loaded as valid: %+v", got.Link)
	}
}

func testForget(t *testing.T, s Stores) {
	st := sampleState(time.Now())
	save(t, s, 100, 100, st, all)
	if err := s.Sessions.Forget(withinTest(t), tg(100), tg(100)); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if d := stateDiff(bot.State{}, load(t, s, 100, 100)); d != "" {
		t.Errorf("after Forget, want nothing, the language neither (-want +got):\n%s", d)
	}
	// Forgetting someone with nothing stored is not an error.
	if err := s.Sessions.Forget(withinTest(t), tg(999), tg(999)); err != nil {
		t.Errorf("Forget of unknown user: %v", err)
	}
}

func testIsolation(t *testing.T, s Stores) {
	now := time.Now()
	pairs := []struct{ chat, user int64 }{
		{100, 100},   // private chat
		{-500, 100},  // same user in a group
		{-500, 200},  // another user in that group
		{200, 200},   // that user's private chat
		{-1e12, 1e9}, // large ids
	}
	states := make([]bot.State, len(pairs))
	for i, p := range pairs {
		states[i] = bot.State{
			Lang:   []string{"zh", "en"}[i%2],
			Dialog: bot.Dialog{Name: fmt.Sprintf("dialog-%d", i)},
			Link:   bot.Link{PersonID: fmt.Sprintf("person-%d", i), Until: now.Add(time.Hour).Truncate(time.Second)},
		}
		save(t, s, p.chat, p.user, states[i], all)
	}
	if err := s.Sessions.Forget(withinTest(t), tg(pairs[1].chat), tg(pairs[1].user)); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	states[1] = bot.State{}
	for i, p := range pairs {
		if d := stateDiff(states[i], load(t, s, p.chat, p.user)); d != "" {
			t.Errorf("chat %d user %d (-want +got):\n%s", p.chat, p.user, d)
		}
	}
}

// Identities of different channels never share state, even when their
// local ids look alike, and a web or WeChat identity (which holds a ':' of
// its own) works everywhere a Telegram one does.
func testChannels(t *testing.T, s Stores) {
	ctx := withinTest(t)
	ids := []string{tg(42), "web:42", "wx:42", "web:3f9c0d:x", "wx:oAbC-_9z"}
	for i, id := range ids {
		st := bot.State{Lang: []string{"zh", "en"}[i%2], Dialog: bot.Dialog{Name: fmt.Sprintf("dialog-%d", i)}}
		if err := s.Sessions.Save(ctx, id, id, st, bot.PartLang|bot.PartDialog); err != nil {
			t.Fatalf("Save(%s): %v", id, err)
		}
	}
	if err := s.Sessions.Forget(ctx, "web:42", "web:42"); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	for i, id := range ids {
		got, err := s.Sessions.Load(ctx, id, id)
		if err != nil {
			t.Fatalf("Load(%s): %v", id, err)
		}
		want := fmt.Sprintf("dialog-%d", i)
		if id == "web:42" {
			want = ""
		}
		if got.Dialog.Name != want {
			t.Errorf("%s: dialog %q, want %q", id, got.Dialog.Name, want)
		}
	}
	done, dup, err := s.Coordinator.Begin(ctx, "web:3f9c0d:x", 1)
	if err != nil || dup {
		t.Fatalf("Begin(web): dup %v, err %v", dup, err)
	}
	done(true)
	if _, dup, err := s.Coordinator.Begin(ctx, "web:3f9c0d:x", 1); err != nil || !dup {
		t.Errorf("a handled web update again: dup %v, err %v", dup, err)
	}
	if _, dup, err := s.Coordinator.Begin(ctx, tg(42), 1); err != nil || dup {
		t.Errorf("Telegram update 1 after web update 1: dup %v, err %v", dup, err)
	}
}

// msNow is now at the millisecond precision a store may keep.
func msNow() time.Time { return time.Now().Truncate(time.Millisecond) }

// throttle is a policy in the backend's units: three at once, then one
// unit, doubling, at most four.
func throttle(s Stores, key string) bot.Throttle {
	u := s.Unit
	return bot.Throttle{Key: key, Policy: bot.ThrottlePolicy{Free: 3, Delay: u, MaxDelay: 4 * u, Window: 40 * u}}
}

func reserve(t *testing.T, s Stores, now time.Time, ts ...bot.Throttle) bot.Reservation {
	t.Helper()
	r, err := s.Attempts.Reserve(withinTest(t), ts, now)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	return r
}

func throttled(t *testing.T, s Stores, now time.Time, ts ...bot.Throttle) time.Time {
	t.Helper()
	until, err := s.Attempts.Throttled(withinTest(t), ts, now)
	if err != nil {
		t.Fatalf("Throttled: %v", err)
	}
	return until
}

func finish(t *testing.T, s Stores, r bot.Reservation, o bot.Outcome) {
	t.Helper()
	if err := s.Attempts.Finish(withinTest(t), r, o); err != nil {
		t.Fatalf("Finish: %v", err)
	}
}

func testThrottleBackOff(t *testing.T, s Stores) {
	th := throttle(s, "id:110105199001013418")
	u := s.Unit
	t0 := msNow()
	if got := throttled(t, s, t0, th); !got.IsZero() {
		t.Fatalf("fresh throttle: until %v", got)
	}
	for i := range 3 {
		r := reserve(t, s, t0, th)
		want := time.Time{}
		if i == 2 {
			want = t0.Add(u) // the third admitted attempt starts the wait
		}
		if !r.OK || !r.Until.Equal(want) {
			t.Fatalf("attempt %d: %+v, want admitted, next at %v", i+1, r, want)
		}
	}
	// The wait doubles with each attempt, up to the cap, counted from
	// the latest attempt.
	at := t0
	for i, wait := range []time.Duration{u, 2 * u, 4 * u, 4 * u} {
		if r := reserve(t, s, at.Add(wait-time.Millisecond), th); r.OK || !r.Until.Equal(at.Add(wait)) {
			t.Fatalf("step %d: just before the wait ends: %+v, want refused until %v", i, r, at.Add(wait))
		}
		if got := throttled(t, s, at.Add(wait-time.Millisecond), th); !got.Equal(at.Add(wait)) {
			t.Fatalf("step %d: Throttled = %v, want %v", i, got, at.Add(wait))
		}
		at = at.Add(wait)
		r := reserve(t, s, at, th)
		next := []time.Duration{2 * u, 4 * u, 4 * u, 4 * u}[i]
		if !r.OK || !r.Until.Equal(at.Add(next)) {
			t.Fatalf("step %d: when the wait ends: %+v, want admitted, next at %v", i, r, at.Add(next))
		}
	}
	if got := throttled(t, s, at, throttle(s, "id:110105199001013426")); !got.IsZero() {
		t.Errorf("another key is throttled until %v", got)
	}
}

func testThrottleRefusal(t *testing.T, s Stores) {
	user, id := throttle(s, "user:100"), throttle(s, "id:110105199001013418")
	now := msNow()
	// A user out of attempts charges the ID number nothing.
	for range 3 {
		reserve(t, s, now, user)
	}
	for range 5 {
		if r := reserve(t, s, now, user, id); r.OK {
			t.Fatal("admitted past the user's budget")
		}
	}
	if got := throttled(t, s, now, id); !got.IsZero() {
		t.Fatalf("refused attempts charged the ID number: throttled until %v", got)
	}
	// An ID number out of attempts: the user's charge is withdrawn.
	other := throttle(s, "user:200")
	for range 3 {
		reserve(t, s, now, id)
	}
	for range 5 {
		if r := reserve(t, s, now, other, id); r.OK || !r.Until.Equal(now.Add(s.Unit)) {
			t.Fatalf("past the ID number's budget: %+v, want refused until %v", r, now.Add(s.Unit))
		}
	}
	for i := range 3 {
		if r := reserve(t, s, now, other); !r.OK {
			t.Fatalf("user attempt %d after refusals by the ID number: refused", i+1)
		}
	}
}

func testThrottleFinish(t *testing.T, s Stores) {
	user, id := throttle(s, "user:100"), throttle(s, "id:110105199001013418")
	now := msNow()
	var last bot.Reservation
	for range 3 {
		last = reserve(t, s, now, user, id)
		finish(t, s, last, bot.Failed)
	}
	if throttled(t, s, now, user, id).IsZero() {
		t.Fatal("failures did not count")
	}
	// An attempt that could not be evaluated is withdrawn.
	finish(t, s, last, bot.NotEvaluated)
	if got := throttled(t, s, now, user, id); !got.IsZero() {
		t.Fatalf("after withdrawing the third attempt: throttled until %v", got)
	}
	// A success clears both throttles entirely.
	r := reserve(t, s, now, user, id)
	finish(t, s, r, bot.Succeeded)
	for i := range 3 {
		if r := reserve(t, s, now, user, id); !r.OK {
			t.Fatalf("attempt %d after a success refused", i+1)
		}
	}
}

func testThrottleWindow(t *testing.T, s Stores) {
	th := throttle(s, "user:100")
	t0 := msNow()
	for range 3 {
		reserve(t, s, t0, th)
	}
	// An attempt counts for the window, not longer: just inside it, a
	// fourth attempt is admitted (its wait is long over) but makes the
	// next one wait.
	end := t0.Add(th.Policy.Window)
	if r := reserve(t, s, end.Add(-time.Millisecond), th); !r.OK || r.Until.IsZero() {
		t.Fatalf("inside the window the attempts did not count: %+v", r)
	}
	for i := range 3 {
		if r := reserve(t, s, end.Add(th.Policy.Window), th); !r.OK || (i < 2 && !r.Until.IsZero()) {
			t.Fatalf("attempt %d after the window: %+v, want admitted at once", i+1, r)
		}
	}
}

func testThrottleExpires(t *testing.T, s Stores) {
	th := throttle(s, "user:100")
	th.Policy.Window = 4 * s.Unit
	for range 4 {
		reserve(t, s, msNow(), th)
	}
	if got := throttled(t, s, msNow(), th); got.IsZero() {
		t.Fatal("not throttled after the budget")
	}
	s.FastForward(th.Policy.Window + s.Unit/4)
	// The backend's expiry, not only the now argument, must forget them:
	// the zero time counts every attempt still stored.
	if got := throttled(t, s, time.UnixMilli(1), th); !got.IsZero() {
		t.Errorf("attempts still stored after the window: throttled until %v", got)
	}
}

func testThrottleConcurrent(t *testing.T, s Stores) {
	const n = 20
	th := throttle(s, "id:110105199001013418")
	now := msNow()
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r, err := s.Attempts.Reserve(withinTest(t), []bot.Throttle{th}, now)
			if err != nil {
				t.Errorf("Reserve: %v", err)
				return
			}
			if r.OK {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != int32(th.Policy.Free) {
		t.Errorf("%d concurrent attempts on a budget of %d: %d admitted", n, th.Policy.Free, got)
	}
}

func begin(t *testing.T, s Stores, chat, update int64) (func(bool), bool) {
	t.Helper()
	done, dup, err := s.Coordinator.Begin(withinTest(t), tg(chat), update)
	if err != nil {
		t.Fatalf("Begin(%d, %d): %v", chat, update, err)
	}
	if dup != (done == nil) {
		t.Fatalf("Begin(%d, %d): dup %v with done %v", chat, update, dup, done != nil)
	}
	return done, dup
}

func testCoordDedupe(t *testing.T, s Stores) {
	done, dup := begin(t, s, 100, 1)
	if dup {
		t.Fatal("first Begin reported dup")
	}
	done(false)
	done, dup = begin(t, s, 100, 1)
	if dup {
		t.Fatal("Begin after done(false) reported dup; an unanswered update must be handled again")
	}
	done(true)
	if _, dup = begin(t, s, 100, 1); !dup {
		t.Fatal("Begin after done(true) did not report dup")
	}
	// Another update and another chat are not affected.
	if done, dup = begin(t, s, 100, 2); dup {
		t.Fatal("next update reported dup")
	}
	done(true)
	if done, dup = begin(t, s, 200, 1); dup {
		t.Fatal("same update id in another chat reported dup")
	}
	done(true)
	// The dedupe mark lasts long after the lease.
	s.FastForward(s.LockLease + s.Unit)
	if _, dup = begin(t, s, 100, 1); !dup {
		t.Error("handled update not dup after LockLease")
	}
}

func testCoordOrder(t *testing.T, s Stores) {
	const chat, n = 100, 20
	ctx := withinTest(t)
	hold, _ := begin(t, s, chat, 0)

	ids := rand.Perm(n)
	var (
		active  atomic.Int32
		overlap atomic.Bool
		mu      sync.Mutex
		order   []int64
		wg      sync.WaitGroup
	)
	for _, i := range ids {
		id := int64(i + 1)
		wg.Go(func() {
			done, dup, err := s.Coordinator.Begin(ctx, tg(chat), id)
			if err != nil || dup {
				t.Errorf("Begin(%d): dup %v, err %v", id, dup, err)
				return
			}
			if active.Add(1) > 1 {
				overlap.Store(true)
			}
			mu.Lock()
			order = append(order, id)
			mu.Unlock()
			// Give a broken implementation a chance to let another in.
			for range 20 {
				runtime.Gosched()
			}
			active.Add(-1)
			done(true)
		})
	}
	if s.Waiting == nil {
		hold(true)
		wg.Wait()
		if overlap.Load() {
			t.Error("two updates of one chat were handled at the same time")
		}
		if len(order) != n {
			t.Errorf("%d of %d updates handled", len(order), n)
		}
		t.Skip("no Waiting hook: handling order not checked")
	}
	// Release the chat only when every Begin has enqueued, so the order of
	// all of them is defined.
	for {
		q, err := s.Waiting(ctx, tg(chat))
		if err != nil {
			t.Fatalf("Waiting: %v", err)
		}
		if q == n+1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d updates enqueued", q, n+1)
		}
		time.Sleep(time.Millisecond) // polling a condition in the test only
	}
	hold(true)
	wg.Wait()
	if overlap.Load() {
		t.Error("two updates of one chat were handled at the same time")
	}
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if d := cmp.Diff(want, order); d != "" {
		t.Errorf("handling order (-want +got):\n%s", d)
	}
	if q, err := s.Waiting(ctx, tg(chat)); err != nil || q != 0 {
		t.Errorf("after all done: %d waiting, err %v", q, err)
	}
}

func testCoordChats(t *testing.T, s Stores) {
	doneA, _ := begin(t, s, 100, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	doneB, dup, err := s.Coordinator.Begin(ctx, tg(200), 1)
	if err != nil || dup {
		t.Fatalf("chat 200 while chat 100 is busy: dup %v, err %v", dup, err)
	}
	doneB(true)
	doneA(true)
}

func testCoordAbandoned(t *testing.T, s Stores) {
	// A replica claims update 1 and dies without calling done.
	if _, dup := begin(t, s, 100, 1); dup {
		t.Fatal("dup")
	}
	s.FastForward(s.LockLease + s.Unit/4)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done, dup, err := s.Coordinator.Begin(ctx, tg(100), 2)
	if err != nil || dup {
		t.Fatalf("update 2 after the lease of an abandoned claim: dup %v, err %v", dup, err)
	}
	done(true)
	// Update 1 was never answered, so its redelivery is handled.
	done, dup = begin(t, s, 100, 1)
	if dup {
		t.Fatal("abandoned update reported dup")
	}
	done(true)
}

func testCoordCancel(t *testing.T, s Stores) {
	hold, _ := begin(t, s, 100, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, _, err := s.Coordinator.Begin(ctx, tg(100), 2)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Begin waiting on a busy chat with an ending context: err %v, want DeadlineExceeded", err)
	}
	hold(true)
	// The cancelled update 2 must not hold up update 3 until its lease.
	ctx, cancel = context.WithTimeout(t.Context(), s.LockLease/2)
	defer cancel()
	done, dup, err := s.Coordinator.Begin(ctx, tg(100), 3)
	if err != nil || dup {
		t.Fatalf("update 3 after a cancelled wait: dup %v, err %v", dup, err)
	}
	done(true)
}

func testBlocklist(t *testing.T, s Stores) {
	ctx := withinTest(t)
	check := func(chat int64, want bool) {
		t.Helper()
		got, err := s.Blocklist.Blocked(ctx, tg(chat))
		if err != nil {
			t.Fatalf("Blocked(%d): %v", chat, err)
		}
		if got != want {
			t.Errorf("Blocked(%d) = %v, want %v", chat, got, want)
		}
	}
	check(100, false)
	if err := s.Blocklist.MarkBlocked(ctx, tg(100)); err != nil {
		t.Fatalf("MarkBlocked: %v", err)
	}
	if err := s.Blocklist.MarkBlocked(ctx, tg(100)); err != nil {
		t.Fatalf("MarkBlocked twice: %v", err)
	}
	check(100, true)
	check(200, false)
	s.FastForward(2 * s.Unit)
	check(100, true)
	if err := s.Blocklist.Unblock(ctx, tg(100)); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	check(100, false)
	if err := s.Blocklist.Unblock(ctx, tg(300)); err != nil {
		t.Errorf("Unblock of a chat never blocked: %v", err)
	}

	// A message from a blocked chat clears the mark when it is claimed.
	if err := s.Blocklist.MarkBlocked(ctx, tg(400)); err != nil {
		t.Fatalf("MarkBlocked: %v", err)
	}
	done, dup, err := s.Coordinator.Begin(ctx, tg(400), 1)
	if err != nil || dup {
		t.Fatalf("Begin = dup %v, err %v", dup, err)
	}
	check(400, false)
	done(true)
}

// tg is the identity of a Telegram chat or user id.
func tg(id int64) string { return bot.ID(bot.ChannelTelegram, fmt.Sprint(id)) }
