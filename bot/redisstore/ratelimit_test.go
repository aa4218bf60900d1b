package redisstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
)

var _ bot.RateLimiter = (*Store)(nil)

var testPolicy = bot.RatePolicy{Burst: 3, Every: 3 * time.Second, Notice: time.Minute}

func take(t *testing.T, s *Store, now time.Time, users ...string) []bot.Verdict {
	t.Helper()
	cs, err := s.Take(context.Background(), users, now, testPolicy)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	vs := make([]bot.Verdict, len(cs))
	for i, c := range cs {
		vs[i] = c.Verdict
	}
	return vs
}

// The limit counts per user: a burst, one notice, silence, a refill of one
// message per interval, and a new notice after the notice window.
func TestRateLimit(t *testing.T) {
	s, _, _ := testStore(t)
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	got := take(t, s, now, "tg:1", "tg:1", "tg:2", "tg:1", "tg:1", "tg:1")
	want := []bot.Verdict{bot.Admit, bot.Admit, bot.Admit, bot.Admit, bot.Notify, bot.Skip}
	if !slices.Equal(got, want) {
		t.Fatalf("first batch %v, want %v", got, want)
	}
	cs, err := s.Take(context.Background(), []string{"tg:1"}, now, testPolicy)
	if err != nil || cs[0].Verdict != bot.Skip || !cs[0].Quiet.Equal(now.Add(3*time.Second)) {
		t.Errorf("over the limit: %+v, %v; want skipped, quiet until the next message is allowed, 3 s on", cs, err)
	}
	now = now.Add(3 * time.Second)
	if got := take(t, s, now, "tg:1", "tg:1"); !slices.Equal(got, []bot.Verdict{bot.Admit, bot.Skip}) {
		t.Errorf("3 s later %v, want one admitted, then silence", got)
	}
	now = now.Add(time.Minute)
	if got := take(t, s, now, "tg:1", "tg:1", "tg:1", "tg:1"); !slices.Equal(got, []bot.Verdict{bot.Admit, bot.Admit, bot.Admit, bot.Notify}) {
		t.Errorf("a minute later %v, want a full burst and a new notice", got)
	}
}

// Two replicas share one limit: concurrent takes from two Stores on one
// Redis admit exactly the burst.
func TestRateLimitAcrossReplicas(t *testing.T) {
	a, _, _ := testStore(t)
	b, err := Open(context.Background(), a.opt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	count := map[bot.Verdict]int{}
	var wg sync.WaitGroup
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			cs, err := s.Take(context.Background(), []string{"tg:7"}, now, testPolicy)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			count[cs[0].Verdict]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if count[bot.Admit] != 3 || count[bot.Notify] != 1 || count[bot.Skip] != 16 {
		t.Errorf("verdicts %v, want 3 admitted, 1 notified, 16 skipped", count)
	}
}

// A server that lost its scripts (restart, SCRIPT FLUSH) gets the script
// again, and nothing is charged twice.
func TestRateLimitAfterScriptFlush(t *testing.T) {
	s, _, mr := testStore(t)
	if mr == nil {
		t.Skip("SCRIPT FLUSH would reach the other packages' tests on the shared REDIS_URL")
	}
	if err := s.rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	if got := take(t, s, now, "tg:1", "tg:1", "tg:1", "tg:1"); !slices.Equal(got, []bot.Verdict{bot.Admit, bot.Admit, bot.Admit, bot.Notify}) {
		t.Errorf("after SCRIPT FLUSH %v, want the burst and a notice", got)
	}
}

// Both keys of a user carry one hash tag, so the script works on a cluster.
func TestRateKeysShareASlot(t *testing.T) {
	s := &Store{opt: Options{KeyPrefix: "shebao"}}
	for _, user := range []string{"tg:42", "we{ird}"} {
		keys := s.rateKeys(user)
		var tags []string
		for _, k := range keys {
			open, close := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
			if open < 0 || close < open || strings.Count(k, "{") != 1 {
				t.Fatalf("key %q has no single hash tag", k)
			}
			tags = append(tags, k[open:close+1])
		}
		if tags[0] != tags[1] {
			t.Errorf("user %q: keys %v in different slots", user, keys)
		}
	}
}
