package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/storetest"
	"github.com/shebao/shebao/bot/telegram"
)

var (
	_ bot.Sessions         = (*Store)(nil)
	_ bot.Attempts         = (*Store)(nil)
	_ bot.Reminders        = (*Store)(nil)
	_ telegram.Coordinator = (*Store)(nil)
	_ telegram.Blocklist   = (*Store)(nil)
	_ storetest.Blocklist  = (*Store)(nil)
)

// testStore opens a Store for one test.
//
// With REDIS_URL set it uses that server, under a key prefix of its own so
// tests never see each other's keys, and deletes its keys afterwards; it
// never flushes. A real server cannot skip time, so the store gets short
// TTLs and FastForward sleeps. Without REDIS_URL each test gets a fresh
// miniredis, whose clock FastForward moves instantly.
func testStore(t testing.TB) (*Store, storetest.Stores, *miniredis.Miniredis) {
	t.Helper()
	if url := os.Getenv("REDIS_URL"); url != "" {
		s, st := realStore(t, url)
		return s, st, nil
	}
	mr := miniredis.RunT(t)
	s, err := Open(context.Background(), Options{URL: "redis://" + mr.Addr(), Keys: testKeys})
	if err != nil {
		t.Fatalf("Open(miniredis): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, stores(s, time.Minute, mr.FastForward), mr
}

// realStore opens a Store for one test on the real server or cluster at
// url, under a key prefix of its own, with short TTLs; on a cluster every
// command is watched for keys of two slots (slotGuard).
func realStore(t testing.TB, url string) (*Store, storetest.Stores) {
	t.Helper()
	ctx := context.Background()
	opt := Options{
		URL:       url,
		Keys:      testKeys,
		KeyPrefix: "test-" + rand.Text()[:12],
		OpTimeout: time.Second,
		DialogTTL: 400 * time.Millisecond,
		LockLease: time.Second,
		MaxHold:   500 * time.Millisecond,
	}
	s, err := Open(ctx, opt)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	if _, ok := s.rdb.(*redis.ClusterClient); ok {
		guardSlots(t, s.rdb)
	}
	t.Cleanup(func() {
		deleteUnder(ctx, s.rdb, opt.KeyPrefix)
		s.Close()
	})
	return s, stores(s, 200*time.Millisecond, time.Sleep)
}

// testKeys is the keyring of the tests' stores: fixed, so that two stores
// over one server (replicas) read each other's values.
var testKeys = mustRing("k1:" + strings.Repeat("A", 43) + "=")

func mustRing(s string) *keyring.Ring {
	r, err := keyring.Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

func stores(s *Store, unit time.Duration, ff func(time.Duration)) storetest.Stores {
	return storetest.Stores{
		Sessions:    s,
		Attempts:    s,
		Coordinator: s,
		Blocklist:   s,
		Waiting:     s.Waiting,
		DialogTTL:   s.opt.DialogTTL,
		// An abandoned claim is renewed for MaxHold, then expires.
		LockLease:   s.opt.LockLease + s.opt.MaxHold,
		Unit:        unit,
		FastForward: ff,
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		_, st, _ := testStore(t)
		return st
	})
}

func TestEmbedded(t *testing.T) {
	ctx := t.Context()
	s, err := OpenEmbedded(ctx, Options{})
	if err != nil {
		t.Fatalf("OpenEmbedded: %v", err)
	}
	if err := s.Save(ctx, tg(1), tg(1), bot.State{Lang: "zh"}, bot.PartLang); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if st, err := s.Load(ctx, tg(1), tg(1)); err != nil || st.Lang != "zh" {
		t.Fatalf("Load = %+v, %v", st, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, bot.ErrUnavailable) {
		t.Errorf("Ping after Close: %v, want ErrUnavailable", err)
	}
}

// A stopped Redis must fail every call quickly with ErrUnavailable, and the
// store must work again once Redis is back.
func TestStoppedRedis(t *testing.T) {
	s, _, mr := testStore(t)
	if mr == nil {
		t.Skip("needs miniredis to stop and restart the server")
	}
	ctx := t.Context()
	if err := s.Save(ctx, tg(1), tg(1), bot.State{Lang: "en"}, bot.PartLang); err != nil {
		t.Fatalf("Save: %v", err)
	}
	mr.Close()

	calls := map[string]func() error{
		"Load":   func() error { _, err := s.Load(ctx, tg(1), tg(1)); return err },
		"Save":   func() error { return s.Save(ctx, tg(1), tg(1), bot.State{Lang: "zh"}, bot.PartLang) },
		"Forget": func() error { return s.Forget(ctx, tg(1), tg(1)) },
		"Throttled": func() error {
			_, err := s.Throttled(ctx, []bot.Throttle{testThrottle("user:1")}, time.Now())
			return err
		},
		"Reserve": func() error {
			_, err := s.Reserve(ctx, []bot.Throttle{testThrottle("user:1")}, time.Now())
			return err
		},
		"Begin":       func() error { _, _, err := s.Begin(ctx, tg(1), 1); return err },
		"MarkBlocked": func() error { return s.MarkBlocked(ctx, tg(1)) },
		"Blocked":     func() error { _, err := s.Blocked(ctx, tg(1)); return err },
		"Ping":        func() error { return s.Ping(ctx) },
		"HoldUpdates": func() error {
			return s.HoldUpdates(ctx, time.Now(), map[int64][]byte{1: []byte(`{"update_id":1}`)})
		},
		"ReleaseUpdates": func() error { return s.ReleaseUpdates(ctx, []int64{1}) },
		"HeldUpdates": func() error {
			return s.HeldUpdates(ctx, func(int64, time.Time, []byte) {})
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		// A correctness bound ("does not stall"), far above OpTimeout.
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("%s took %v with Redis down", name, elapsed)
		}
		if !errors.Is(err, bot.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
		}
	}

	if err := mr.Restart(); err != nil {
		t.Fatalf("restart miniredis: %v", err)
	}
	// After a run of failed dials go-redis fails fast and probes the
	// server once a second: recovery takes up to about a second.
	var st bot.State
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if st, err = s.Load(ctx, tg(1), tg(1)); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a condition in the test only
	}
	if err != nil {
		t.Fatalf("Load after restart: %v", err)
	}
	if st.Lang != "en" {
		t.Errorf("Lang after restart = %q, want en", st.Lang)
	}
	done, dup, err := s.Begin(ctx, tg(1), 1)
	if err != nil || dup {
		t.Fatalf("Begin after restart: dup %v, err %v", dup, err)
	}
	done(true)
}

// blackHole accepts connections and never answers: the worst case, a Redis
// that is reachable but hung.
func blackHole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().String()
}

func TestHungRedis(t *testing.T) {
	addr := blackHole(t)
	ctx := t.Context()

	start := time.Now()
	_, err := Open(ctx, Options{URL: "redis://" + addr, Keys: testKeys})
	elapsed := time.Since(start)
	t.Logf("Open against a hung server failed after %v", elapsed)
	if elapsed > 2*time.Second {
		t.Errorf("Open took %v against a hung server", elapsed)
	}
	if !errors.Is(err, bot.ErrUnavailable) {
		t.Fatalf("Open against a hung server: %v, want ErrUnavailable", err)
	}

	// A store whose Redis hangs after Open.
	opt := Options{URL: "redis://" + addr, Keys: testKeys}
	opt.setDefaults()
	rdb, err := newClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{rdb: rdb, opt: opt, log: opt.Logger, keys: opt.Keys}
	defer s.Close()
	start = time.Now()
	_, err = s.Load(ctx, tg(1), tg(1))
	elapsed = time.Since(start)
	t.Logf("Load against a hung server failed after %v", elapsed)
	if elapsed > 2*time.Second {
		t.Errorf("Load took %v against a hung server", elapsed)
	}
	if !errors.Is(err, bot.ErrUnavailable) {
		t.Errorf("Load against a hung server: %v, want ErrUnavailable", err)
	}
	start = time.Now()
	_, _, err = s.Begin(ctx, tg(1), 1)
	elapsed = time.Since(start)
	t.Logf("Begin against a hung server failed after %v", elapsed)
	if elapsed > 2*time.Second {
		t.Errorf("Begin took %v against a hung server", elapsed)
	}
	if !errors.Is(err, bot.ErrUnavailable) {
		t.Errorf("Begin against a hung server: %v, want ErrUnavailable", err)
	}
}

func TestOpenBadURLHidesPassword(t *testing.T) {
	for _, u := range []string{
		"redis://:s3cret@127.0.0.1:6379/notadb",
		"http://:s3cret@127.0.0.1:6379/0",
		"redis://:s3cret@[::1/0",
	} {
		_, err := Open(t.Context(), Options{URL: u, Keys: testKeys})
		if err == nil {
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}

func testThrottle(key string) bot.Throttle {
	return bot.Throttle{Key: key, Policy: bot.ThrottlePolicy{Free: 1, Delay: time.Hour, MaxDelay: time.Hour, Window: time.Hour}}
}

// Throttle keys carry ID numbers; none may appear in a Redis key name.
func TestNoPersonalDataInKeys(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	const id = "110105199001013418"
	if _, err := s.Reserve(ctx, []bot.Throttle{testThrottle("id:" + id), testThrottle("user:77")}, time.Now()); err != nil {
		t.Fatal(err)
	}
	st := bot.State{Link: bot.Link{PersonID: id, Until: time.Now().Add(time.Hour)}, Dialog: bot.Dialog{Name: "verify", Data: map[string]string{"id": id}}}
	if err := s.Save(ctx, tg(77), tg(77), st, bot.PartDialog|bot.PartLink); err != nil {
		t.Fatal(err)
	}
	keys, err := keysUnder(ctx, s.rdb, s.opt.KeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 4 {
		t.Fatalf("expected lock and state keys, got %q", keys)
	}
	for _, k := range keys {
		if strings.Contains(k, id) || strings.Contains(k, "user:77") || strings.Contains(k, legacyAttemptHash("id:"+id)) {
			t.Errorf("key %q holds a raw or hashed throttle key", k)
		}
	}
}

// The costs the design promises: one exchange per store call on the fast
// path.
func TestRoundTrips(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	ts := []bot.Throttle{testThrottle("user:1"), testThrottle("id:1")}
	ts[0].Policy.Free, ts[1].Policy.Free = 1000, 1000
	st := bot.State{Lang: "zh", Dialog: bot.Dialog{Name: "verify"}, Link: bot.Link{PersonID: "x", Until: time.Now().Add(time.Hour)}}
	var done func(bool)
	calls := []struct {
		name string
		call func() error
	}{
		{"Load", func() error { _, err := s.Load(ctx, tg(1), tg(1)); return err }},
		{"Save all parts", func() error { return s.Save(ctx, tg(1), tg(1), st, bot.PartLang|bot.PartDialog|bot.PartLink) }},
		{"Throttled two keys", func() error { _, err := s.Throttled(ctx, ts, time.Now()); return err }},
		{"Begin", func() error { var err error; done, _, err = s.Begin(ctx, tg(1), 1); return err }},
		{"done", func() error { done(true); return nil }},
		{"Begin dup", func() error { _, _, err := s.Begin(ctx, tg(1), 1); return err }},
	}
	// Warm up: dialing a connection costs a few exchanges of its own.
	for _, c := range calls {
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	if _, err := s.rdb.Del(ctx, s.chatKey(tg(1), "done")).Result(); err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		before := s.RoundTrips()
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := s.RoundTrips() - before; got != 1 {
			t.Errorf("%s: %d round trips, want 1", c.name, got)
		}
	}
	// Calls that read before they write: Forget reads the link and the
	// setting to learn whose marks to delete; Reserve charges the
	// throttles one after the other, so that a refusal by the first
	// spares the second.
	for _, c := range []struct {
		name string
		want int64
		call func() error
	}{
		{"Forget", 2, func() error { return s.Forget(ctx, tg(1), tg(1)) }},
		{"Reserve two keys", 2, func() error { _, err := s.Reserve(ctx, ts, time.Now()); return err }},
	} {
		before := s.RoundTrips()
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := s.RoundTrips() - before; got != c.want {
			t.Errorf("%s: %d round trips, want %d", c.name, got, c.want)
		}
	}

	// The usual update of a private chat: claim, load, answer. The state
	// comes with the claim, so the whole update costs two round trips.
	save := bot.State{Lang: "en", Dialog: bot.Dialog{Name: "verify", Step: "id"}}
	if err := s.Save(ctx, tg(7), tg(7), save, bot.PartLang|bot.PartDialog); err != nil {
		t.Fatal(err)
	}
	before := s.RoundTrips()
	done, dup, err := s.Begin(ctx, tg(7), 70)
	if err != nil || dup {
		t.Fatalf("Begin: dup %v, err %v", dup, err)
	}
	got, err := s.Load(ctx, tg(7), tg(7))
	if err != nil {
		t.Fatal(err)
	}
	done(true)
	if n := s.RoundTrips() - before; n != 2 {
		t.Errorf("claim, load and done: %d round trips, want 2", n)
	}
	if got.Lang != "en" || got.Dialog.Step != "id" {
		t.Errorf("prefetched state = %+v, want what was saved", got)
	}
	// The prefetched state is used once: a second Load reads Redis.
	before = s.RoundTrips()
	if _, err := s.Load(ctx, tg(7), tg(7)); err != nil {
		t.Fatal(err)
	}
	if n := s.RoundTrips() - before; n != 1 {
		t.Errorf("second Load: %d round trips, want 1", n)
	}
}

// Scripts are preloaded at Open; a server that lost them (restart, SCRIPT
// FLUSH) must still work.
func TestScriptsReloaded(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Reserve(ctx, []bot.Throttle{testThrottle("user:1"), testThrottle("user:2")}, time.Now()); err != nil || !r.OK || r.Until.IsZero() {
		t.Fatalf("Reserve after SCRIPT FLUSH: %+v, %v", r, err)
	}
	done, _, err := s.Begin(ctx, tg(1), 1)
	if err != nil {
		t.Fatalf("Begin after SCRIPT FLUSH: %v", err)
	}
	done(true)
}

func BenchmarkLoadSave(b *testing.B) {
	s, _, _ := testStore(b)
	ctx := b.Context()
	st := bot.State{Lang: "zh", Dialog: bot.Dialog{Name: "verify", Step: "phone", Data: map[string]string{"id": "x"}}}
	before := s.RoundTrips()
	n := 0
	for b.Loop() {
		if _, err := s.Load(ctx, tg(1), tg(1)); err != nil {
			b.Fatal(err)
		}
		if err := s.Save(ctx, tg(1), tg(1), st, bot.PartDialog); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(s.RoundTrips()-before)/float64(n), "trips/op")
}

func BenchmarkBeginDone(b *testing.B) {
	s, _, _ := testStore(b)
	ctx := b.Context()
	before := s.RoundTrips()
	var id int64
	for b.Loop() {
		id++
		done, dup, err := s.Begin(ctx, tg(1), id)
		if err != nil || dup {
			b.Fatalf("Begin: dup %v, err %v", dup, err)
		}
		done(true)
	}
	b.ReportMetric(float64(s.RoundTrips()-before)/float64(id), "trips/op")
}

// BenchmarkBeginDoneContended has every goroutine handle updates of one
// chat: the cost of serialisation, polling included.
func BenchmarkBeginDoneContended(b *testing.B) {
	s, _, _ := testStore(b)
	ctx := b.Context()
	var id atomic.Int64
	before := s.RoundTrips()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, dup, err := s.Begin(ctx, tg(1), id.Add(1))
			if err != nil || dup {
				b.Errorf("Begin: dup %v, err %v", dup, err)
				return
			}
			done(true)
		}
	})
	b.ReportMetric(float64(s.RoundTrips()-before)/float64(b.N), "trips/op")
}

func TestOpenRejectsBracedPrefix(t *testing.T) {
	mr := miniredis.RunT(t)
	if _, err := Open(t.Context(), Options{URL: "redis://" + mr.Addr(), Keys: testKeys, KeyPrefix: "app{x}"}); err == nil {
		t.Error("Open accepted a key prefix with a hash tag")
	}
}

// A claim whose handler takes longer than the lease keeps its chat: the
// claim is renewed. It needs real expiry, so it runs against REDIS_URL.
func TestClaimRenewedWhileHandled(t *testing.T) {
	if os.Getenv("REDIS_URL") == "" {
		t.Skip("needs a real Redis (REDIS_URL): miniredis expires keys only when told")
	}
	ctx := context.Background()
	prefix := "test-" + rand.Text()[:12]
	s, err := Open(ctx, Options{URL: os.Getenv("REDIS_URL"), Keys: testKeys, KeyPrefix: prefix, LockLease: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer deleteUnder(ctx, s.rdb, prefix)
	done, dup, err := s.Begin(ctx, tg(100), 1)
	if err != nil || dup {
		t.Fatalf("Begin: dup %v, err %v", dup, err)
	}
	time.Sleep(3 * time.Second) // longer than the lease: waiting for real expiry, not logic
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if d, _, err := s.Begin(wctx, tg(100), 2); err == nil {
		d(false)
		t.Fatal("update 2 took the chat while update 1 was still being handled")
	}
	done(true)
	d, dup, err := s.Begin(ctx, tg(100), 2)
	if err != nil || dup {
		t.Fatalf("after done: dup %v, err %v", dup, err)
	}
	d(true)
}

// After a call fails for want of Redis, the next calls fail at once without
// trying Redis, for the cool-down; then Redis is tried again.
func TestBreaker(t *testing.T) {
	mr := miniredis.RunT(t)
	ctx := t.Context()
	s, err := Open(ctx, Options{URL: "redis://" + mr.Addr(), Keys: testKeys, BreakerCooldown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mr.Close()
	if _, err := s.Load(ctx, tg(1), tg(1)); !errors.Is(err, bot.ErrUnavailable) {
		t.Fatalf("Load with Redis gone: %v, want ErrUnavailable", err)
	}
	before := s.RoundTrips()
	if _, _, err := s.Begin(ctx, tg(1), 1); !errors.Is(err, bot.ErrUnavailable) {
		t.Fatalf("Begin with the breaker open: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, bot.ErrUnavailable) {
		t.Fatalf("Ping with the breaker open: %v, want ErrUnavailable", err)
	}
	if n := s.RoundTrips() - before; n != 0 {
		t.Errorf("%d round trips while the breaker was open, want 0", n)
	}

	// A short cool-down: service resumes once Redis is back.
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, Options{URL: "redis://" + mr.Addr(), Keys: testKeys, BreakerCooldown: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	mr.Close()
	s2.Load(ctx, tg(1), tg(1)) // trips
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err = s2.Load(ctx, tg(1), tg(1)); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a condition in the test only
	}
	if err != nil {
		t.Fatalf("Load after Redis came back: %v", err)
	}
}
