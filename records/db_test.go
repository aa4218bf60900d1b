package records

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOpenTwiceKeepsDataAndMigratesOnce(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	if _, err := db.Import(ctx, ImportSources{Persons: file("persons.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for i := 0; i < 2; i++ {
		db2, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		var n, maxV int
		if err := db2.cur.sql.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
			t.Fatal(err)
		}
		ms, _ := migrations()
		if n != len(ms) || maxV != ms[len(ms)-1].version {
			t.Errorf("schema_migrations has %d rows up to %d, want %d", n, maxV, len(ms))
		}
		if _, err := db2.Person(ctx, idA); err != nil {
			t.Errorf("person lost after reopen: %v", err)
		}
		db2.Close()
	}
}

func TestPragmasOnEveryConnection(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	// Hold several connections at once so the pool must open new ones.
	var conns []interface{ Close() error }
	for i := 0; i < 3; i++ {
		c, err := db.cur.sql.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var fk, busy int
		var mode string
		if err := c.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if fk != 1 || busy != 5000 || mode != "wal" {
			t.Errorf("connection %d: foreign_keys=%d busy_timeout=%d journal_mode=%s", i, fk, busy, mode)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	// Foreign keys are enforced: a contribution for nobody is refused by SQLite itself.
	if _, err := db.cur.sql.Exec(`INSERT INTO contributions VALUES ('nobody', 'medical', 202601, 0, 0, 0, 'paid')`); err == nil {
		t.Error("foreign key not enforced")
	}
}

func TestUnknownPersonAndInsurance(t *testing.T) {
	db := openDemo(t)
	ctx := context.Background()
	unknown := withCheck("11010519700101999")
	if _, err := db.Contributions(ctx, unknown, Month{}, Month{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Contributions: %v", err)
	}
	if _, err := db.Gaps(ctx, unknown, Medical, demoNow); !errors.Is(err, ErrNotFound) {
		t.Errorf("Gaps: %v", err)
	}
	if _, err := db.Summaries(ctx, unknown); !errors.Is(err, ErrNotFound) {
		t.Errorf("Summaries: %v", err)
	}
	if _, err := db.Gaps(ctx, Demo()[0].ID, "dental", demoNow); err == nil {
		t.Error("Gaps accepted an unknown insurance")
	}
}

func TestRule(t *testing.T) {
	db := openDemo(t)
	ctx := context.Background()
	nat := db.Rule(ctx, "")
	if nat.Region != National || nat.Hotline != "12393" || !nat.Example || nat.DueDay == 0 || nat.LongBreakMonths != 3 {
		t.Errorf("national rule = %+v", nat)
	}
	for _, c := range []Category{Employee, Flexible, Resident} {
		if len(nat.Documents[c]["zh"]) == 0 || len(nat.Documents[c]["en"]) == 0 {
			t.Errorf("national rule has no documents for %s", c)
		}
	}
	if !strings.Contains(strings.Join(nat.Documents[Employee]["zh"], ""), "第三十一条") {
		t.Error("national employee documents do not cite Art. 31")
	}

	fj := db.Rule(ctx, "福建省厦门市")
	if fj.Region != "福建省" || fj.Example || fj.WaitingMonths != 6 || fj.WaitingMonthsIfBackpaid != 3 ||
		fj.WaitingBenefitPercent != 50 || fj.BackpayMonths != 0 || !strings.Contains(fj.Source, "ybj.fj.gov.cn") {
		t.Errorf("Fujian rule = %+v", fj)
	}
	if fj.DueDay != nat.DueDay || len(fj.Documents[Flexible]["zh"]) == 0 {
		t.Errorf("Fujian rule did not inherit the due day and documents: %+v", fj)
	}
	dl := db.Rule(ctx, "辽宁省大连市")
	if dl.Region != "大连市" || dl.Example || dl.Hotline != "0411-12393" {
		t.Errorf("Dalian rule = %+v", dl)
	}
	for _, r := range []string{"北京市海淀区", "上海市"} {
		if got := db.Rule(ctx, r); !got.Example || !strings.Contains(got.Source, "ILLUSTRATIVE") {
			t.Errorf("%s rule not marked as an example: %+v", r, got)
		}
	}
	if got := db.Rule(ctx, "西藏自治区"); got.Region != National {
		t.Errorf("unknown region got %s", got.Region)
	}
	// Callers cannot change the shared rules through the returned maps.
	fj.Documents[Employee]["zh"][0] = "changed"
	fj.Office["zh"] = "changed"
	if again := db.Rule(ctx, "福建省"); again.Documents[Employee]["zh"][0] == "changed" || again.Office["zh"] == "changed" {
		t.Error("Rule returned shared maps")
	}
}

func TestParseRulesRejectsBadFiles(t *testing.T) {
	for _, bad := range []string{
		`{"rules": []}`,
		`{"rules": [{"Region": "全国"}]}`,
		`{"rules": [{"Region": "全国", "Sourc": "typo"}]}`,
		`not json`,
	} {
		if _, err := parseRules([]byte(bad)); err == nil {
			t.Errorf("parseRules(%s) succeeded", bad)
		}
	}
}

func TestMonthAndCents(t *testing.T) {
	m, err := ParseMonth("2025-03")
	if err != nil || m.String() != "2025-03" || m.Add(-3).String() != "2024-12" || m.Add(10).String() != "2026-01" {
		t.Errorf("ParseMonth/Add: %v %v", m, err)
	}
	for _, bad := range []string{"2025-3", "2025/03", "2025-00", "25-03", "2025-3a", "+025-03"} {
		if _, err := ParseMonth(bad); err == nil {
			t.Errorf("ParseMonth(%q) succeeded", bad)
		}
	}
	if got := MonthOf(time.Date(2026, 2, 28, 16, 30, 0, 0, time.UTC)); got != (Month{2026, 3}) {
		t.Errorf("MonthOf(2026-02-28 16:30 UTC) = %v, want 2026-03 (already March in Shanghai)", got)
	}
	for c, want := range map[Cents]string{0: "0.00", 5: "0.05", 123456: "1234.56", -50: "-0.50"} {
		if c.String() != want {
			t.Errorf("Cents(%d) = %s, want %s", int64(c), c, want)
		}
	}
	for s, want := range map[string]Cents{"12": 1200, "12.5": 1250, "0.05": 5, "-3.1": -310, "+3": 300} {
		if got, err := parseCents(s, true); err != nil || got != want {
			t.Errorf("parseCents(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", ".5", "1.", "1.234", "1e3", "1,000", "-1", "9999999999999"} {
		if _, err := parseCents(s, false); err == nil {
			t.Errorf("parseCents(%q) succeeded", s)
		}
	}
}

func TestConcurrentOpenOfNewFile(t *testing.T) {
	path := t.TempDir() + "/new.db"
	ctx := context.Background()
	errs := make(chan error, 3)
	dbs := make(chan *DB, 3)
	for i := 0; i < 3; i++ {
		go func() {
			db, err := OpenForImport(ctx, path)
			errs <- err
			dbs <- db
		}()
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
		if db := <-dbs; db != nil {
			defer db.Close()
		}
	}
}

func TestReadWhileImporting(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	if _, err := db.Import(ctx, ImportSources{Persons: file("persons.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	p, c := genCSV(100, 2000, 36, MonthOf(testNow))
	done := make(chan error, 1)
	go func() {
		_, err := db.Import(ctx, ImportSources{
			Persons:       &ImportFile{Name: "persons.csv", R: strings.NewReader(string(p))},
			Contributions: &ImportFile{Name: "contributions.csv", R: strings.NewReader(string(c))},
		})
		done <- err
	}()
	// WAL: readers are never blocked by the import's write transaction.
	for i := 0; ; i++ {
		if _, err := db.Person(ctx, idA); err != nil {
			t.Fatalf("read %d during import: %v", i, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
	}
}

// Opening a migrated file while an import holds the write lock must not
// wait for the lock (and fail after busy_timeout with "database is locked").
func TestOpenWhileAnotherConnectionWrites(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	if _, err := db.Import(ctx, ImportSources{Persons: file("persons.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	conn, err := db.cur.sql.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `ROLLBACK`)
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open during a write transaction: %v", err)
	}
	defer db2.Close()
	if _, err := db2.Person(ctx, idA); err != nil {
		t.Errorf("read during a write transaction: %v", err)
	}
}
