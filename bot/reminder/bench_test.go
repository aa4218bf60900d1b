package reminder

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/records"
)

// BenchmarkPassScan measures a dry pass — scan the opted-in users, read
// their standings, find what is due, check the sent-marks — over a record
// file of SHEBAO_BENCH_PERSONS persons (default 20,000; the goal is stated
// for 1,000,000) of whom a tenth opted in. Sending is paced at 25/s and
// not measured: this is the time to enqueue. Against REDIS_URL when set,
// else an in-process miniredis (whose data then counts in the heap).
//
//	SHEBAO_BENCH_PERSONS=1000000 go test ./bot/reminder -run '^$' -bench PassScan -benchtime 1x
func BenchmarkPassScan(b *testing.B) {
	persons := 20000
	if v := os.Getenv("SHEBAO_BENCH_PERSONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			b.Fatalf("SHEBAO_BENCH_PERSONS=%q: want a number ≥ 10", v)
		}
		persons = n
	}
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, records.Shanghai)
	db := benchRecords(b, persons, now)
	store := benchStore(b)
	optIn := persons / 10
	setup := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(optIn) {
					return
				}
				// A tenth of the persons opt in, spread over the file
				// (7919 is prime: i → i·7919 mod n is one-to-one).
				r := bot.ReminderSetting{Chat: tg(i + 1), User: tg(i + 1), Slot: bot.SlotMorning,
					PersonID: benchID(int(i * 7919 % int64(persons))), Until: now.Add(1000 * time.Hour), Lang: "zh"}
				if err := store.SetReminder(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.Logf("setup: %d persons, %d opted in; opt-ins took %v", persons, optIn, time.Since(setup))

	s := New(Config{Store: store, Records: db, Now: func() time.Time { return now }})
	b.ResetTimer()
	var sum Summary
	var peak uint64
	// The import's garbage is not the pass's: start from a collected heap.
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	for range b.N {
		stop := samplePeakHeap(&peak)
		start := time.Now()
		var err error
		sum, err = s.Pass(ctx, true)
		elapsed := time.Since(start)
		stop()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(sum.Candidates)/elapsed.Seconds(), "candidates/s")
		b.ReportMetric(elapsed.Seconds(), "scan-s")
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(peak-min(peak, base.HeapInuse))/(1<<20), "pass-heap-MB")
	b.Logf("last pass: %d candidates, %d due, %d planned, skipped %v", sum.Candidates, sum.Due, len(sum.Planned), sum.Skipped)
	if sum.Candidates != optIn {
		b.Errorf("pass read %d candidates, want %d", sum.Candidates, optIn)
	}
}

// samplePeakHeap records the largest HeapInuse seen until stop is called.
func samplePeakHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// benchID is a valid, distinct ID number for person i.
func benchID(i int) string {
	birth := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/1000)
	body := fmt.Sprintf("110105%s%03d", birth.Format("20060102"), i%1000)
	w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for k, c := range body {
		sum += int(c-'0') * w[k]
	}
	return body + string("10X98765432"[sum%11])
}

// benchRecords imports n persons: most paid through last month; every
// tenth missed last month (a reminder is due); every hundredth has an
// unpaid row (read from the rows, not the summary).
func benchRecords(b *testing.B, n int, now time.Time) *records.DB {
	b.Helper()
	start := time.Now()
	ctx := context.Background()
	db, err := records.OpenForImport(ctx, b.TempDir()+"/records.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	cur := records.MonthOf(now)
	pr, pw := io.Pipe()
	cr, cw := io.Pipe()
	go func() {
		fmt.Fprintln(pw, "id_number,name,phone,region,category,employer")
		for i := range n {
			fmt.Fprintf(pw, "%s,测试,139%08d,北京市朝阳区,flexible,\n", benchID(i), i)
		}
		pw.Close()
	}()
	go func() {
		fmt.Fprintln(cw, "id_number,month,insurance,base,personal,employer,status")
		for i := range n {
			id := benchID(i)
			last, status := cur.Add(-1), "paid"
			switch {
			case i%100 == 2:
				status = "unpaid"
			case i%10 == 1:
				last = cur.Add(-2)
			}
			fmt.Fprintf(cw, "%s,%s,medical,500000,40000,0,paid\n", id, last.Add(-1))
			fmt.Fprintf(cw, "%s,%s,medical,500000,40000,0,%s\n", id, last, status)
		}
		cw.Close()
	}()
	if _, err := db.Import(ctx, records.ImportSources{
		Persons:       &records.ImportFile{Name: "persons.csv", R: pr},
		Contributions: &records.ImportFile{Name: "contributions.csv", R: cr},
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("import of %d persons took %v", n, time.Since(start))
	return db
}

func benchStore(b *testing.B) *redisstore.Store {
	b.Helper()
	ctx := context.Background()
	opt := redisstore.Options{OpTimeout: 5 * time.Second, Keys: keyring.Generate()}
	if url := os.Getenv("REDIS_URL"); url != "" {
		opt.URL, opt.KeyPrefix = url, "bench-"+rand.Text()[:12]
	} else {
		mr := miniredis.RunT(b)
		opt.URL = "redis://" + mr.Addr()
	}
	s, err := redisstore.Open(ctx, opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
