package redisstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// BenchmarkMemory measures what Redis keeps per verified user and per
// handled update: b.N users, each verified (language and link) with
// reminders on, then memUpdates handled updates in each user's chat. It
// reports the growth of INFO memory's used_memory per user and per update,
// and logs MEMORY USAGE of each kind of key on a sample. It needs a real
// Redis (REDIS_URL) that nothing else writes to while it runs. At 1 M
// users:
//
//	go test -run '^$' -bench BenchmarkMemory -benchtime 1000000x ./bot/redisstore/
func BenchmarkMemory(b *testing.B) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		b.Skip("needs a real Redis (REDIS_URL): memory is the server's")
	}
	ctx := context.Background()
	// As long as the default prefix "shebao", so that key names are as
	// long as in production.
	prefix := "m" + strings.ToLower(rand.Text()[:5])
	s, err := Open(ctx, Options{URL: url, Keys: testKeys, KeyPrefix: prefix, OpTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		deleteUnder(ctx, s.rdb, prefix)
		s.Close()
	}()
	users := b.N
	until := time.Now().Add(180 * 24 * time.Hour)

	base := usedMemory(b, s.rdb)
	b.ResetTimer()
	parallel(b, users, func(i int) error {
		chat := tg(memUserID(i))
		person := memPersonID(i)
		tag := bot.PhoneTag(s.Keys(), person, "1380013"+fmt.Sprintf("%04d", i%10000))
		st := bot.State{Lang: "zh", Link: bot.Link{PersonID: person, Until: until, PhoneTag: tag}}
		if err := s.Save(ctx, chat, chat, st, bot.PartLang|bot.PartLink); err != nil {
			return err
		}
		return s.SetReminder(ctx, bot.ReminderSetting{Chat: chat, User: chat, Slot: bot.SlotMorning,
			PersonID: person, Until: until, Lang: "zh", PhoneTag: tag})
	})
	afterUsers := usedMemory(b, s.rdb)
	const memUpdates = 3
	parallel(b, users*memUpdates, func(j int) error {
		i := j % users
		chat := tg(memUserID(i))
		done, dup, err := s.Begin(ctx, chat, 800_000_000+int64(j))
		if err != nil || dup {
			return err
		}
		done(true)
		return nil
	})
	b.StopTimer()
	afterUpdates := usedMemory(b, s.rdb)
	// Held updates (the polling hand-off), as a getUpdates batch of 100
	// holds them, in a typical private message's JSON.
	held := min(users, 10_000)
	for first := 0; first < held; first += 100 {
		batch := map[int64][]byte{}
		for j := first; j < min(first+100, held); j++ {
			batch[int64(900_000_000+j)] = memUpdateJSON(900_000_000+j, memUserID(j))
		}
		if err := s.HoldUpdates(ctx, time.Now(), batch); err != nil {
			b.Fatal(err)
		}
	}
	afterHeld := usedMemory(b, s.rdb)
	perHeld := float64(afterHeld-afterUpdates) / float64(held)
	b.ReportMetric(perHeld, "B/held")

	perUser := float64(afterUsers-base) / float64(users)
	perUpdate := float64(afterUpdates-afterUsers) / float64(users*memUpdates)
	b.ReportMetric(perUser, "B/user")
	b.ReportMetric(perUpdate, "B/update")
	b.ReportMetric(0, "ns/op")
	if users < 1000 {
		return // too few for the sample below to mean anything
	}
	b.Logf("%d users, %d updates, %d held: used_memory %d -> %d -> %d -> %d bytes; %.0f B per verified user, "+
		"%.0f B per handled update, %.0f B per held update of %d B JSON",
		users, users*memUpdates, held, base, afterUsers, afterUpdates, afterHeld, perUser, perUpdate, perHeld,
		len(memUpdateJSON(900_000_000, memUserID(0))))
	// MEMORY USAGE of each kind of key, on the first 1000 users: what
	// a key costs alone (the server's dictionaries and expiry entries
	// are not in it). A chat's done set holds its memUpdates updates.
	kinds := map[string][]string{}
	for i := range 1000 {
		chat := tg(memUserID(i))
		kinds["lang"] = append(kinds["lang"], s.userKey(chat, chat, langKey))
		kinds["link"] = append(kinds["link"], s.userKey(chat, chat, linkKey))
		kinds["remind"] = append(kinds["remind"], s.userKey(chat, chat, reminderKey))
		kinds["chosen"] = append(kinds["chosen"], s.chosenKey(memPersonID(i)))
		kinds["done set"] = append(kinds["done set"], s.chatKey(chat, "done"))
	}
	for _, kind := range []string{"lang", "link", "remind", "chosen", "done set"} {
		var sum, n int64
		for _, k := range kinds[kind] {
			v, err := s.rdb.MemoryUsage(ctx, k).Result()
			if err != nil {
				continue
			}
			sum += v
			n++
		}
		if n > 0 {
			b.Logf("MEMORY USAGE %-8s %4.0f B (mean of %d keys)", kind, float64(sum)/float64(n), n)
		}
	}
	slot, err := s.rdb.MemoryUsage(ctx, s.slotKey(bot.SlotMorning), 0).Result()
	if err == nil {
		b.Logf("MEMORY USAGE slot set of %d members %d B (%.0f B per member)", users, slot, float64(slot)/float64(users))
	}
}

func memUserID(i int) int64 { return 7_000_000_000 + int64(i) }

// memUpdateJSON is a private text message as the Bot API sends it.
func memUpdateJSON(id int, user int64) []byte {
	return fmt.Appendf(nil, `{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,`+
		`"first_name":"张","language_code":"zh-hans"},"chat":{"id":%d,"first_name":"张","type":"private"},`+
		`"date":1764633600,"text":"我的社保断缴了三个月，现在补缴需要带什么材料？"}}`, id, id%100000, user, user)
}

// memPersonID is a resident ID number's shape: 18 characters, distinct
// per i.
func memPersonID(i int) string { return fmt.Sprintf("1101011990%08d", i) }

// usedMemory is INFO memory's used_memory summed over the primaries.
func usedMemory(b *testing.B, rdb redis.UniversalClient) int64 {
	b.Helper()
	ctx := context.Background()
	var total atomic.Int64
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return err
				}
				total.Add(n)
			}
		}
		return nil
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, read)
	case *redis.Client:
		err = read(ctx, c)
	default:
		b.Fatalf("client %T", rdb)
	}
	if err != nil {
		b.Fatal(err)
	}
	return total.Load()
}

// parallel runs f(0..n-1) on 32 workers and fails the benchmark on the
// first error.
func parallel(b *testing.B, n int, f func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}
