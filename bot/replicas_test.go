package bot_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
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
			s, err := redisstore.Open(ctx, redisstore.Options{URL: url, KeyPrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			ss[i] = s
		}
		return ss[0], ss[1]
	}
	s, err := redisstore.OpenEmbedded(ctx, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s
}

// Verification lockout holds across replicas and restarts: failures made
// through one replica lock the user and the ID number on another.
func TestLockoutAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := records.OpenDemo(ctx, testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s1, s2 := replicaStores(t)
	replica := func(s *redisstore.Store) *bot.Engine {
		return bot.New(bot.Config{Sessions: s, Attempts: s, Reminders: s, FAQ: f, Records: db,
			Now: func() time.Time { return testNow }})
	}
	a, b := replica(s1), replica(s2)
	say := func(e *bot.Engine, user int64, text string, contact string) string {
		m := bot.Message{ChatID: user, UserID: user, Text: text, Time: testNow}
		if contact != "" {
			m.Text, m.Contact = "", &bot.Contact{UserID: user, Phone: contact}
		}
		replies, err := e.Handle(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range replies {
			out = append(out, r.Text)
		}
		return strings.Join(out, "\n")
	}
	const id = "110105198803120014"
	// Five wrong phones, alternating replicas: each step of the dialog may
	// land on either.
	for i := range 5 {
		e1, e2 := a, b
		if i%2 == 1 {
			e1, e2 = b, a
		}
		say(e1, 100, "/verify", "")
		say(e2, 100, id, "")
		say(e1, 100, "", "13800000000")
	}
	// A restarted replica (a new engine over a new connection) still
	// refuses the user, and the ID number for anyone else.
	c := replica(s2)
	if got := say(c, 100, "/verify", ""); !strings.Contains(got, "验证已暂停") {
		t.Errorf("user not locked on another replica: %q", got)
	}
	say(c, 200, "/verify", "")
	if got := say(a, 200, id, ""); !strings.Contains(got, "验证已暂停") {
		t.Errorf("ID number not locked for another user: %q", got)
	}
}
