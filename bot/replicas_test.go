package bot_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// replicaStores returns two stores over one Redis, as two replicas (or a
// process before and after a restart) would have: two connections to
// REDIS_URL when it is set, else one embedded server shared by both.
func replicaStores(t *testing.T) (*redisstore.Store, *redisstore.Store) {
	t.Helper()
	ctx := context.Background()
	if url := os.Getenv("REDIS_URL"); url != "" {
		prefix := "test-" + rand.Text()[:12]
		var ss [2]*redisstore.Store
		for i := range ss {
			s, err := redisstore.Open(ctx, redisstore.Options{URL: url, KeyPrefix: prefix, Keys: testKeys})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			ss[i] = s
		}
		return ss[0], ss[1]
	}
	s, err := redisstore.OpenEmbedded(ctx, redisstore.Options{Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s
}

// replicaEngines are engines over the two stores, with a clock the test
// moves.
func replicaEngines(t *testing.T, now *time.Time) (func(i int) *bot.Engine, *records.DB) {
	t.Helper()
	ctx := context.Background()
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := records.OpenDemo(ctx, testNow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s1, s2 := replicaStores(t)
	stores := []*redisstore.Store{s1, s2}
	return func(i int) *bot.Engine {
		s := stores[i%2]
		return bot.New(bot.Config{Sessions: s, Attempts: s, Reminders: s, FAQ: f, Records: db, Keys: s.Keys(),
			Now: func() time.Time { return *now }})
	}, db
}

// say sends text, or a contact when phone is set, and returns the replies'
// text.
func say(t *testing.T, e *bot.Engine, now time.Time, user int64, text, phone string) string {
	t.Helper()
	m := bot.Message{Chat: tg(user), User: tg(user), Text: text, Time: now}
	if phone != "" {
		m.Text, m.Contact = "", &bot.Contact{User: tg(user), Phone: phone}
	}
	replies, err := e.Handle(context.Background(), m)
	if err != nil {
		t.Error(err)
	}
	var out []string
	for _, r := range replies {
		out = append(out, bot.PlainText(r))
	}
	return strings.Join(out, "\n")
}

const (
	throttledID = "110105198803120014"
	ownerPhone  = "13900000011" // on record for throttledID
	paused      = "验证已暂停"
)

// Verification throttles hold across replicas and restarts: failures made
// through one replica throttle the ID number on another, and the user who
// made them on a restarted one.
func TestThrottleAcrossReplicas(t *testing.T) {
	now := testNow
	replica, _ := replicaEngines(t, &now)
	// Wrong phones, each step of the dialog on either replica.
	fail := func(i int) string {
		say(t, replica(i), now, 100, "/verify", "")
		say(t, replica(i+1), now, 100, throttledID, "")
		return say(t, replica(i), now, 100, "", "13800000000")
	}
	for i := range 3 {
		fail(i)
	}
	// Another user, on a restarted replica, is told to wait a minute.
	say(t, replica(3), now, 200, "/verify", "")
	if got := say(t, replica(2), now, 200, throttledID, ""); !strings.Contains(got, paused) || !strings.Contains(got, "10:01") {
		t.Errorf("ID number not throttled for another user: %q", got)
	}
	now = now.Add(time.Minute)
	fail(3)
	now = now.Add(2 * time.Minute)
	if got := fail(4); !strings.Contains(got, "11:03") {
		t.Errorf("fifth failure: %q, want a pause until 11:03", got)
	}
	if got := say(t, replica(5), now, 100, "/verify", ""); !strings.Contains(got, paused) {
		t.Errorf("user not throttled on a restarted replica: %q", got)
	}
}

// The attack of issue 12: twenty sessions get past the ID step while the
// ID number is not yet throttled, then the number is throttled, then all
// twenty send the contact at once, each with the owner's phone (a forged
// client can). The throttle is checked, and charged, at the contact:
// nobody gets in. Then twenty strangers at once on a fresh number get
// exactly the three attempts the policy admits. Both against real Redis
// when REDIS_URL is set.
func TestParallelSessionsCannotVerifyPastThrottle(t *testing.T) {
	now := testNow
	replica, _ := replicaEngines(t, &now)
	const n = 20
	users := make([]int64, n)
	for i := range users {
		users[i] = int64(1000 + i)
		say(t, replica(i), now, users[i], "/verify", "")
		if got := say(t, replica(i+1), now, users[i], throttledID, ""); !strings.Contains(got, "0014") {
			t.Fatalf("user %d at the ID step: %q", users[i], got)
		}
	}
	// Someone else fails three times: the number is throttled now.
	for i := range 3 {
		say(t, replica(i), now, 999, "/verify", "")
		say(t, replica(i), now, 999, throttledID, "")
		say(t, replica(i), now, 999, "", "13800000000")
	}
	race := func(phone string) map[string]int {
		start := make(chan struct{})
		var mu sync.Mutex
		outcomes := map[string]int{}
		var wg sync.WaitGroup
		for i, u := range users {
			wg.Go(func() {
				<-start
				got := say(t, replica(i), now, u, "", phone)
				kind := "other: " + got
				switch {
				case strings.Contains(got, "验证成功"):
					kind = "verified"
				case strings.Contains(got, "不匹配"):
					kind = "mismatch"
				case strings.Contains(got, paused):
					kind = "paused"
				}
				mu.Lock()
				outcomes[kind]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		return outcomes
	}
	if got := race(ownerPhone); got["paused"] != n {
		t.Errorf("%d sessions with the owner's phone against a throttled number: %v, want all %d paused", n, got, n)
	}
	for _, u := range users {
		if got := say(t, replica(0), now, u, "/records", ""); !strings.Contains(got, "/verify") {
			t.Errorf("user %d sees records: %q", u, got)
		}
	}

	// A fresh number (the clock moves past the window), twenty wrong
	// phones at once: three are evaluated, the rest wait.
	now = now.Add(25 * time.Hour)
	for i, u := range users {
		say(t, replica(i), now, u, "/verify", "")
		say(t, replica(i+1), now, u, throttledID, "")
	}
	got := race("13800000000")
	if got["mismatch"] != 3 || got["paused"] != n-3 {
		t.Errorf("%d concurrent wrong phones: %v, want 3 evaluated (mismatch) and %d paused", n, got, n-3)
	}
	// The owner waits a minute, not a day.
	say(t, replica(0), now, 7, "/verify", "")
	if got := say(t, replica(1), now, 7, throttledID, ""); !strings.Contains(got, "2026-11-27 11:01") {
		t.Errorf("the owner after the race: %q, want a wait until 11:01 the next day", got)
	}
	now = now.Add(time.Minute)
	say(t, replica(0), now, 7, "/verify", "")
	say(t, replica(1), now, 7, throttledID, "")
	if got := say(t, replica(0), now, 7, "", ownerPhone); !strings.Contains(got, "验证成功") {
		t.Errorf("the owner a minute later: %q", got)
	}
}
