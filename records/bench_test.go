package records

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// genPersonID returns a valid, unique, obviously synthetic ID number for
// person i (district 110105, birth dates from 1960 on, sequence i%1000).
func genPersonID(i int) string {
	birth := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/1000)
	body := "110105" + birth.Format("20060102") + fmt.Sprintf("%03d", i%1000)
	return body + string(idCheckChar(body))
}

// genCSV writes a persons file and a contributions file for persons
// first..first+n-1, each with `months` medical rows ending the month before
// end. Every 10th person misses one month and every 7th has an unpaid month,
// so gap detection has something to find.
func genCSV(first, n, months int, end Month) (persons, contribs []byte) {
	var pb, cb bytes.Buffer
	pb.Grow(n * 64)
	cb.Grow(n * months * 48)
	pb.WriteString(personsHead)
	cb.WriteString(contribHead)
	var num []byte
	for i := first; i < first+n; i++ {
		id := genPersonID(i)
		pb.WriteString(id)
		pb.WriteString(",测试人员,139")
		num = strconv.AppendInt(num[:0], int64(10000000+i%90000000), 10)
		pb.Write(num)
		pb.WriteString(",北京市,employee,示例公司\n")
		for k := months; k >= 1; k-- {
			if i%10 == 0 && k == 1+i%months {
				continue
			}
			m := end.Add(-k)
			cb.WriteString(id)
			cb.WriteByte(',')
			cb.WriteString(m.String())
			cb.WriteString(",medical,8000.00,160.00,640.00,")
			if i%7 == 0 && k == 2 {
				cb.WriteString("unpaid\n")
			} else {
				cb.WriteString("paid\n")
			}
		}
	}
	return pb.Bytes(), cb.Bytes()
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// BenchmarkImportContributions imports SHEBAO_BENCH_ROWS contribution rows
// (default 100,000; 36 medical months per person, persons in the same import)
// into a fresh file database per iteration.
//
//	SHEBAO_BENCH_ROWS=1000000 go test ./records -run '^$' -bench ImportContributions -benchtime 1x
func BenchmarkImportContributions(b *testing.B) {
	rows := envInt(b, "SHEBAO_BENCH_ROWS", 100_000)
	const months = 36
	persons := (rows + months - 1) / months
	end := MonthOf(testNow)
	pcsv, ccsv := genCSV(0, persons, months, end)
	ctx := context.Background()
	b.ResetTimer()
	var imported int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := OpenForImport(ctx, filepath.Join(b.TempDir(), fmt.Sprintf("import-%d.db", i)))
		if err != nil {
			b.Fatal(err)
		}
		db.now = func() time.Time { return testNow }
		b.StartTimer()
		st, err := db.Import(ctx, ImportSources{
			Persons:       &ImportFile{Name: "persons.csv", R: bytes.NewReader(pcsv)},
			Contributions: &ImportFile{Name: "contributions.csv", R: bytes.NewReader(ccsv)},
		})
		if err != nil {
			b.Fatal(err)
		}
		imported = st.Contributions
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(imported), "rows")
	b.ReportMetric(float64(imported)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// benchGapsDB returns a record file with `persons` persons × 36 months,
// cached in os.TempDir by size because building the large one takes minutes
// (1 M persons: 2.3 GB; 10 M: 23 GB).
func benchGapsDB(b *testing.B, persons int) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("shebao-bench-gaps-v1-%d.db", persons))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".building"
	os.Remove(tmp)
	ctx := context.Background()
	db, err := OpenForImport(ctx, tmp)
	if err != nil {
		b.Fatal(err)
	}
	db.now = func() time.Time { return testNow }
	// By SQL rather than Import (see fillBenchFile): the same rows, in a
	// small fraction of the time for 10 M persons.
	if err := fillBenchFile(ctx, db, persons); err != nil {
		b.Fatal(err)
	}
	if _, err := db.cur.sql.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	db.Close()
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	os.Remove(tmp + "-wal")
	os.Remove(tmp + "-shm")
	return path
}

// BenchmarkGaps measures Gaps for one random person on a database of
// SHEBAO_BENCH_PERSONS persons (default 20,000) × 36 months, and reports
// the p50 and p99 latency.
//
//	SHEBAO_BENCH_PERSONS=1000000 go test ./records -run '^$' -bench Gaps -benchtime 20000x
func BenchmarkGaps(b *testing.B) {
	persons := envInt(b, "SHEBAO_BENCH_PERSONS", 20_000)
	path := benchGapsDB(b, persons)
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = genPersonID(rng.IntN(persons))
	}
	lat := make([]time.Duration, 0, b.N)
	found := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		gaps, err := db.Gaps(ctx, ids[i%len(ids)], Medical, testNow)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		found += len(gaps)
	}
	b.StopTimer()
	if found == 0 && b.N > 100 {
		b.Fatal("no gaps found at all: the generator is broken")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func TestGeneratedDataImports(t *testing.T) {
	db, _ := openTemp(t)
	p, c := genCSV(0, 50, 36, MonthOf(testNow))
	st, err := db.Import(context.Background(), ImportSources{
		Persons:       &ImportFile{Name: "persons.csv", R: bytes.NewReader(p)},
		Contributions: &ImportFile{Name: "contributions.csv", R: bytes.NewReader(c)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Persons != 50 || st.Contributions != 50*36-5 {
		t.Errorf("stats = %+v", st)
	}
	gaps, err := db.Gaps(context.Background(), genPersonID(10), Medical, testNow)
	if err != nil || len(gaps) != 1 || len(gaps[0].Months) != 1 {
		t.Errorf("person 10 gaps = %+v, %v; want one missing month", gaps, err)
	}
}

// BenchmarkOpen measures what the bot pays at start for the checks Open
// makes (schema, PRAGMA quick_check, count of persons) on a file of
// SHEBAO_BENCH_PERSONS persons (default 20,000) × 36 months, cache warm.
//
//	SHEBAO_BENCH_PERSONS=1000000 go test ./records -run '^$' -bench 'Open$' -benchtime 3x
func BenchmarkOpen(b *testing.B) {
	persons := envInt(b, "SHEBAO_BENCH_PERSONS", 20_000)
	path := benchGapsDB(b, persons)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		db, err := Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "MB")
}
