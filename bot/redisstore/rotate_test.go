package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/records"
)

var (
	rotatedKeys = mustRing("k2:" + strings.Repeat("B", 43) + "=,k1:" + strings.Repeat("A", 43) + "=")
	newKeyOnly  = mustRing("k2:" + strings.Repeat("B", 43) + "=")
)

// sealedUnder counts the sealed values (strings and held updates) by the
// key they are sealed under.
func (sv *server) sealedUnder(t *testing.T) map[string]int {
	t.Helper()
	ctx := context.Background()
	out := map[string]int{}
	for _, k := range sv.keys(t) {
		var vals []string
		switch sv.rdb.Type(ctx, k).Val() {
		case "string":
			vals = []string{sv.rdb.Get(ctx, k).Val()}
		case "hash":
			if strings.HasSuffix(k, "{held}:updates") {
				for _, v := range sv.rdb.HGetAll(ctx, k).Val() {
					vals = append(vals, v)
				}
			}
		}
		for _, v := range vals {
			if strings.HasSuffix(k, ":chosen") {
				_, v, _ = strings.Cut(v, ".") // "<name>.<sealed>"
			}
			if id, ok := keyring.KeyOf([]byte(v)); ok {
				out[id]++
			}
		}
	}
	return out
}

func idThrottle(n string) bot.Throttle {
	return bot.Throttle{Key: "id:" + n, Policy: bot.ThrottlePolicy{Free: 3, Delay: time.Minute, MaxDelay: 15 * time.Minute, Window: 24 * time.Hour}}
}

// A new first key in SHEBAO_KEYS: everything stays readable at once, new
// writes use the new key, names derived from an ID number are found under
// either key while the rotation runs, and the background pass re-seals
// every value and moves every person's marks; then the old key can go.
func TestRotation(t *testing.T) {
	sv := newServer(t)
	ctx := context.Background()
	s1 := sv.open(t, Options{Keys: testKeys})
	fl := newFlow(t, s1)
	fl.run()
	demo := records.Demo()
	person, probed := demo[1].ID, demo[3].ID
	// Two more failures: the probed number is throttled under k1's tag.
	for range 2 {
		fl.send(flowFailed, "/verify")
		fl.send(flowFailed, probed)
		fl.send(flowFailed, "{13800000000}")
	}
	throttledUntil := flowNow.Add(time.Minute)
	if got, _ := s1.Throttled(ctx, []bot.Throttle{idThrottle(probed)}, flowNow); !got.Equal(throttledUntil) {
		t.Fatalf("before the rotation: throttled until %v, want %v", got, throttledUntil)
	}
	if got := sv.sealedUnder(t); got["k1"] < 4 || got["k2"] != 0 {
		t.Fatalf("before the rotation, sealed under %v", got)
	}

	// A replica starts with the new ring. Before any pass:
	s2 := sv.open(t, Options{Keys: rotatedKeys, MaintainPause: -1})
	if st, err := s2.Load(ctx, tg(flowVerified), tg(flowVerified)); err != nil || st.Link.PersonID != person {
		t.Fatalf("link under the old key: %+v, %v", st.Link, err)
	}
	if got, _ := s2.Throttled(ctx, []bot.Throttle{idThrottle(probed)}, flowNow); !got.Equal(throttledUntil) {
		t.Errorf("throttle under the old tag: until %v, want %v", got, throttledUntil)
	}
	// New writes use the new key.
	fl2 := newFlow(t, s2)
	fl2.update = 1000
	fl2.send(20, "/verify")
	fl2.send(20, demo[4].ID)
	if v := s2.rdb.Get(ctx, s2.userKey(tg(20), tg(20), dialogKey)).Val(); !strings.HasPrefix(v, "e1:k2:") {
		t.Errorf("a new dialog is sealed as %.8q, want under k2", v)
	}

	// Not at once: replicas still on the old keyring seal under k1 until
	// the rolling restart reaches them.
	if done, err := s2.rotate(ctx, "replica-a"); done || err != nil {
		t.Fatalf("a rotation right after the new key: done %v, %v", done, err)
	}
	s2.opt.RotateAfter = -1
	// The pass, in small batches; cut short after the first, then
	// resumed where it stopped. (miniredis answers a SCAN in one batch
	// whatever its COUNT, so only a real Redis can cut a pass short.)
	if sv.mr == nil {
		s2.opt.scanCount = 2
		s2.opt.MaintainPause = time.Hour
		cut, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if done, err := s2.rotate(cut, "replica-a"); done || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a pass cut short: done %v, %v", done, err)
		}
		saved := false
		for f, c := range s2.rdb.HGetAll(ctx, s2.metaKey("schema")).Val() {
			// "rotate:values", or "rotate:values:<node>" on a cluster.
			saved = saved || strings.HasPrefix(f, "rotate:values") && c != "0"
		}
		if !saved {
			t.Fatal("no cursor saved after the first batch")
		}
		s2.unlease("replica-a") // the cut replica is gone; its lease would run out
		s2.opt.scanCount = 50
	}
	s2.opt.MaintainPause = -1
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	s2.opt.MaintainEvery = 10 * time.Millisecond
	maintained := make(chan struct{})
	go func() {
		defer close(maintained)
		s2.Maintain(mctx)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if s2.rdb.HGet(ctx, s2.metaKey("schema"), "retired:k1").Val() != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotation did not finish")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition in the test only
	}
	stop()
	<-maintained
	if got := sv.sealedUnder(t); got["k1"] != 0 || got["k2"] < 5 {
		t.Errorf("after the rotation, sealed under %v; want all under k2", got)
	}
	oldTag, newTag := testKeys.Name(personDomain, person), newKeyOnly.Name(personDomain, person)
	for _, k := range sv.keys(t) {
		if strings.Contains(k, oldTag) {
			t.Errorf("a mark under the old tag: %s", k)
		}
	}
	if n := s2.rdb.Exists(ctx, s2.personKey(newTag, "m:day:"+flowNow.Format(time.DateOnly))).Val(); n != 1 {
		t.Error("the person's mark was not moved to the new tag")
	}
	sv.assertNoPersonalData(t, everyNumber()...)

	// Now the old key can go: a replica with the new key alone reads it all.
	s3 := sv.open(t, Options{Keys: newKeyOnly})
	st, err := s3.Load(ctx, tg(flowVerified), tg(flowVerified))
	if err != nil || st.Link.PersonID != person || st.Lang != "en" {
		t.Errorf("link after the old key went: %+v, %v", st, err)
	}
	if r, on, err := s3.Reminder(ctx, tg(flowVerified), tg(flowVerified)); err != nil || !on || r.PersonID != person {
		t.Errorf("reminder setting: %+v, %v, %v", r, on, err)
	}
	if st, _ := s3.Load(ctx, tg(flowPending), tg(flowPending)); st.Dialog.Data["id"] != demo[2].ID {
		t.Errorf("dialog: %+v", st.Dialog)
	}
	for _, mark := range []string{"day:" + flowNow.Format(time.DateOnly), "sent:window:2026-08"} {
		if ok, err := s3.Marked(ctx, person, mark); err != nil || !ok {
			t.Errorf("mark %s after the old key went: %v, %v", mark, ok, err)
		}
	}
	var held int
	if err := s3.HeldUpdates(ctx, func(int64, time.Time, []byte) { held++ }); err != nil || held != 1 {
		t.Errorf("held updates: %d, %v", held, err)
	}
	// The throttle was merged into the new tag when s2 looked at it.
	if got, _ := s3.Throttled(ctx, []bot.Throttle{idThrottle(probed)}, flowNow); !got.Equal(throttledUntil) {
		t.Errorf("throttle after the old key went: until %v, want %v", got, throttledUntil)
	}
	// And a replica still on the old key alone is refused: k2 seals values.
	if _, err := Open(ctx, Options{URL: sv.url, KeyPrefix: sv.prefix, Keys: testKeys}); err == nil || !strings.Contains(err.Error(), "lacks key k2") {
		t.Errorf("Open with the old key alone: %v", err)
	}
}
