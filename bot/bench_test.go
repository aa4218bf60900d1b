package bot_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// benchPersonID is person i of the files records' benchmarks generate
// (district 110105, birth dates from 1960 on, sequence i%1000).
func benchPersonID(i int) string {
	birth := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/1000)
	body := "110105" + birth.Format("20060102") + fmt.Sprintf("%03d", i%1000)
	for _, c := range "0123456789X" {
		if id, err := records.CheckID(body + string(c)); err == nil {
			return id
		}
	}
	panic("no check character for " + body)
}

// BenchmarkBackpay measures /backpay end to end in the engine for one
// verified person: state, person, gaps, region rule and the rendered plan.
// SHEBAO_BENCH_DB names a record file built by records' BenchmarkGaps
// (SHEBAO_BENCH_PERSONS persons × 36 months); without it the demo records
// are used.
//
//	SHEBAO_BENCH_PERSONS=1000000 go test ./records -run '^$' -bench 'Gaps$' -benchtime 1x
//	SHEBAO_BENCH_DB=/tmp/shebao-bench-gaps-v1-1000000.db SHEBAO_BENCH_PERSONS=1000000 \
//	  go test ./bot -run '^$' -bench Backpay -benchtime 20000x
func BenchmarkBackpay(b *testing.B) {
	ctx := context.Background()
	f, err := faq.New(faq.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var db *records.DB
	var ids []string
	if path := os.Getenv("SHEBAO_BENCH_DB"); path != "" {
		persons, err := strconv.Atoi(os.Getenv("SHEBAO_BENCH_PERSONS"))
		if err != nil || persons <= 0 {
			b.Fatal("set SHEBAO_BENCH_PERSONS to the number of persons in SHEBAO_BENCH_DB")
		}
		if db, err = records.Open(ctx, path); err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for range 1024 {
			ids = append(ids, benchPersonID(rng.IntN(persons)))
		}
	} else {
		if db, err = records.OpenDemo(ctx, testNow); err != nil {
			b.Fatal(err)
		}
		for _, p := range records.Demo() {
			ids = append(ids, p.ID)
		}
	}
	defer db.Close()
	store := newMemStore()
	e := bot.New(bot.Config{Sessions: store, Attempts: store, FAQ: f, Records: db, Now: func() time.Time { return testNow }})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		user := int64(i%len(ids) + 1)
		b.StopTimer()
		store.link[tg(user)] = bot.Link{PersonID: ids[i%len(ids)], Until: testNow.Add(time.Hour)}
		b.StartTimer()
		t0 := time.Now()
		replies, err := e.Handle(ctx, bot.Message{Chat: tg(user), User: tg(user), Text: "/backpay", Time: testNow})
		lat = append(lat, time.Since(t0))
		if err != nil || len(replies) == 0 {
			b.Fatalf("backpay: %v", err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
