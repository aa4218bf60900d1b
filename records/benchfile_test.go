package records

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// fillBenchFile writes what genCSV and Import would for persons 0..n-1 ×
// 36 months, with SQL instead of CSV: the 10 M-person file (23 GB) takes
// hours through Import's row-by-row checks, and minutes this way. db is a
// new file from OpenForImport. TestBenchFileMatchesImport checks that the
// two agree row for row.
func fillBenchFile(ctx context.Context, db *DB, n int) error {
	var sum strings.Builder
	for k, w := range idWeights {
		fmt.Fprintf(&sum, " + substr(b, %d, 1) * %d", k+1, w)
	}
	end := MonthOf(testNow)
	stamp := testNow.UTC().Format("2006-01-02T15:04:05Z")
	stmts := []string{
		`CREATE TEMP TABLE bench_m (month INTEGER PRIMARY KEY, k INTEGER NOT NULL)`,
		`CREATE TEMP TABLE bench_p (i INTEGER PRIMARY KEY, id TEXT NOT NULL)`,
		fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < %d - 1),
			bodies(i, b) AS (SELECT i, '110105' || strftime('%%Y%%m%%d', '1960-01-01', '+' || (i / 1000) || ' days') || printf('%%03d', i %% 1000) FROM n)
			INSERT INTO bench_p SELECT i, b || substr('%s', (0 %s) %% 11 + 1, 1) FROM bodies`, n, idCheckChars, sum.String()),
		`INSERT INTO persons SELECT id, '测试人员', '139' || (10000000 + i % 90000000), '北京市', 'employee', '示例公司' FROM bench_p ORDER BY i`,
		// genCSV: every 10th person misses month k = 1 + i%36, every 7th
		// has month k = 2 unpaid.
		`INSERT INTO contributions SELECT p.id, 'medical', m.month, 800000, 16000, 64000,
			CASE WHEN p.i % 7 = 0 AND m.k = 2 THEN 'unpaid' ELSE 'paid' END
			FROM bench_p p CROSS JOIN bench_m m WHERE NOT (p.i % 10 = 0 AND m.k = 1 + p.i % 36) ORDER BY p.i, m.month`,
		`INSERT INTO person_summary SELECT id_number, insurance, min(month), max(month),
			coalesce(max(CASE WHEN status = 'paid' THEN month END), 0), sum(status = 'paid'), sum(status = 'unpaid')
			FROM contributions GROUP BY id_number, insurance`,
		fmt.Sprintf(`INSERT INTO import_batches (started_at, finished_at, persons_file, contributions_file, persons_rows, contributions_rows)
			SELECT '%s', '%s', 'persons.csv', 'contributions.csv', %d, count(*) FROM contributions`, stamp, stamp, n),
		`DROP TABLE temp.bench_p`,
		`DROP TABLE temp.bench_m`,
	}
	sdb := db.cur.sql
	if _, err := sdb.ExecContext(ctx, stmts[0]); err != nil {
		return err
	}
	for k := 36; k >= 1; k-- {
		m := end.Add(-k)
		if _, err := sdb.ExecContext(ctx, `INSERT INTO bench_m VALUES (?, ?)`, m.Year*100+int(m.Month), k); err != nil {
			return err
		}
	}
	for _, s := range stmts[1:] {
		if _, err := sdb.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%.60s: %w", s, err)
		}
	}
	return nil
}

// TestBenchFileMatchesImport: the benchmark file built by SQL holds what
// an import of genCSV's files holds, table by table.
func TestBenchFileMatchesImport(t *testing.T) {
	ctx := context.Background()
	const n = 2500
	imp, _ := openTemp(t)
	p, c := genCSV(0, n, 36, MonthOf(testNow))
	if _, err := imp.Import(ctx, ImportSources{
		Persons:       &ImportFile{Name: "persons.csv", R: bytes.NewReader(p)},
		Contributions: &ImportFile{Name: "contributions.csv", R: bytes.NewReader(c)},
	}); err != nil {
		t.Fatal(err)
	}
	gen, _ := openTemp(t)
	if err := fillBenchFile(ctx, gen, n); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT id_number || name || phone || region || category || employer FROM persons ORDER BY id_number`,
		`SELECT id_number || insurance || month || base || personal || employer || status FROM contributions ORDER BY 1`,
		`SELECT id_number || insurance || first_month || last_month || last_paid_month || paid_months || unpaid_months FROM person_summary ORDER BY 1`,
		`SELECT persons_rows || '/' || contributions_rows || persons_file || contributions_file FROM import_batches`,
	} {
		a, b := rowsOf(t, imp, q), rowsOf(t, gen, q)
		if len(a) == 0 || strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("%s: import has %d rows, the SQL build %d, or they differ (first: %q vs %q)", q, len(a), len(b), first(a), first(b))
		}
	}
}

func rowsOf(t *testing.T, db *DB, q string) []string {
	t.Helper()
	rows, err := db.cur.sql.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
