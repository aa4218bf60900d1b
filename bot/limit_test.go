package bot_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
)

var policy = bot.RatePolicy{Burst: 3, Every: 3 * time.Second, Notice: time.Minute}

// verdicts checks n messages of one user at now and returns their verdicts.
func verdicts(l *bot.Limit, user string, n int, now time.Time) []bot.Verdict {
	users := make([]string, n)
	for i := range users {
		users[i] = user
	}
	return l.Check(context.Background(), users, now)
}

// A burst passes, the next message is refused with one notice, the rest of
// the window is skipped silently; the allowance refills one message per
// Every.
func TestLimitBurstNoticeRefill(t *testing.T) {
	l := bot.NewLimit(bot.LimitOptions{Policy: &policy})
	now := testNow
	got := verdicts(l, "tg:1", 6, now)
	want := []bot.Verdict{bot.Admit, bot.Admit, bot.Admit, bot.Notify, bot.Skip, bot.Skip}
	if !slices.Equal(got, want) {
		t.Fatalf("a burst of 6: %v, want %v", got, want)
	}
	if got := verdicts(l, "tg:2", 1, now); got[0] != bot.Admit {
		t.Errorf("another user: %v, want admitted", got)
	}
	now = now.Add(3 * time.Second)
	if got := verdicts(l, "tg:1", 2, now); !slices.Equal(got, []bot.Verdict{bot.Admit, bot.Skip}) {
		t.Errorf("3 s later: %v, want one admitted, then skipped (notified already)", got)
	}
	now = now.Add(time.Minute)
	if got := verdicts(l, "tg:1", 5, now); !slices.Equal(got, []bot.Verdict{bot.Admit, bot.Admit, bot.Admit, bot.Notify, bot.Skip}) {
		t.Errorf("a minute later: %v, want the full burst and a new notice", got)
	}
}

// failingLimiter is a shared store that is down.
type failingLimiter struct{ calls int }

func (f *failingLimiter) Take(context.Context, []string, time.Time, bot.RatePolicy) ([]bot.Charge, error) {
	f.calls++
	return nil, bot.ErrUnavailable
}

// While the shared store fails, the limit still holds, in this process,
// and the decisions are counted as local.
func TestLimitFallsBackToThisProcess(t *testing.T) {
	store := &failingLimiter{}
	var local, shared int
	l := bot.NewLimit(bot.LimitOptions{Store: store, Policy: &policy, Count: func(v bot.Verdict, isLocal bool) {
		if isLocal {
			local++
		} else {
			shared++
		}
	}})
	got := verdicts(l, "tg:1", 5, testNow)
	if want := []bot.Verdict{bot.Admit, bot.Admit, bot.Admit, bot.Notify, bot.Skip}; !slices.Equal(got, want) {
		t.Errorf("store down: %v, want %v", got, want)
	}
	if store.calls != 1 || local != 5 || shared != 0 {
		t.Errorf("store called %d times, %d local and %d shared verdicts; want 1, 5, 0", store.calls, local, shared)
	}
}

// sharedLimiter answers every message with c and counts the messages it
// was asked about.
type sharedLimiter struct {
	c     bot.Charge
	asked int
}

func (s *sharedLimiter) Take(_ context.Context, users []string, _ time.Time, _ bot.RatePolicy) ([]bot.Charge, error) {
	s.asked += len(users)
	out := make([]bot.Charge, len(users))
	for i := range out {
		out[i] = s.c
	}
	return out, nil
}

// The store decides; a refusal with a quiet time is repeated without
// asking the store until that time.
func TestLimitUsesTheSharedStoreAndItsQuietTime(t *testing.T) {
	store := &sharedLimiter{c: bot.Charge{Verdict: bot.Skip, Quiet: testNow.Add(10 * time.Second)}}
	l := bot.NewLimit(bot.LimitOptions{Store: store, Policy: &policy})
	if got := verdicts(l, "tg:1", 1, testNow); got[0] != bot.Skip {
		t.Errorf("verdict %v, want the store's", got[0])
	}
	if got := verdicts(l, "tg:1", 50, testNow.Add(9*time.Second)); store.asked != 1 || got[49] != bot.Skip {
		t.Errorf("within the quiet time: store asked about %d messages, last verdict %v; want 1 and skipped", store.asked, got[49])
	}
	if !l.Quiet("tg:1", testNow.Add(9*time.Second)) || l.Quiet("tg:2", testNow) {
		t.Error("Quiet does not match the refusal")
	}
	store.c = bot.Charge{Verdict: bot.Admit}
	if got := verdicts(l, "tg:1", 1, testNow.Add(10*time.Second)); got[0] != bot.Admit || store.asked != 2 {
		t.Errorf("after the quiet time: %v with the store asked %d times, want admitted by the store", got, store.asked)
	}
}

func TestLimitOff(t *testing.T) {
	off := bot.RatePolicy{}
	store := &failingLimiter{}
	l := bot.NewLimit(bot.LimitOptions{Store: store, Policy: &off})
	for _, v := range verdicts(l, "tg:1", 100, testNow) {
		if v != bot.Admit {
			t.Fatalf("verdict %v with the limit off", v)
		}
	}
	if store.calls != 0 {
		t.Errorf("store asked %d times with the limit off", store.calls)
	}
}
