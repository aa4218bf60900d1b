package records

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testNow is the clock of file-database tests: 2026-03-10 in Asia/Shanghai.
var testNow = time.Date(2026, time.March, 10, 2, 0, 0, 0, time.UTC)

func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "records.db")
	db, err := OpenForImport(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenForImport: %v", err)
	}
	db.now = func() time.Time { return testNow }
	t.Cleanup(func() { db.Close() })
	return db, path
}

var (
	idA = Demo()[0].ID // valid IDs reused as fixtures
	idB = Demo()[1].ID
	idC = Demo()[2].ID
)

const personsHead = "id_number,name,phone,region,category,employer\n"
const contribHead = "id_number,month,insurance,base,personal,employer,status\n"
const accountHead = "id_number,date,amount,description\n"

func file(name, body string) *ImportFile { return &ImportFile{Name: name, R: strings.NewReader(body)} }

func goodPersons() string {
	return personsHead +
		idA + ",测试甲,139 0000 1111,福建省福州市,employee,示例公司\n" +
		idB + ",测试乙,+8613900002222,北京市,flexible,\n"
}

func goodContribs() string {
	return contribHead +
		idA + ",2026-01,medical,8000,160,640.5,paid\n" +
		idA + ",2026-02,medical,8000.00,160.00,640.50,unpaid\n" +
		idA + ",2026-01,pension,8000,640,1280,paid\n" +
		idB + ",2025-12,medical,5000,400,0,paid\n"
}

func goodAccount() string {
	return accountHead +
		idA + ",2026-01-15,160,个人账户划入\n" +
		idA + ",2026-02-03,-36.5,药店购药\n" +
		idA + ",2026-02-03,-36.5,药店购药\n" + // a second, identical purchase the same day
		idB + ",2026-01-20,+12.30,划入\n"
}

func counts(t *testing.T, db *DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tbl := range []string{"persons", "contributions", "account_movements", "person_summary", "import_batches"} {
		var n int
		if err := db.cur.sql.QueryRow(`SELECT count(*) FROM ` + tbl).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tbl] = n
	}
	return out
}

func TestImportAndRead(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	stats, err := db.Import(ctx, ImportSources{
		Persons:       file("persons.csv", goodPersons()),
		Contributions: file("contributions.csv", goodContribs()),
		Account:       file("account.csv", goodAccount()),
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Persons != 2 || stats.Contributions != 4 || stats.Movements != 4 || stats.Batch != 1 {
		t.Errorf("stats = %+v", stats)
	}
	p, err := db.Person(ctx, strings.ToLower(idA)+" ")
	if err != nil {
		t.Fatal(err)
	}
	want := Person{ID: idA, Name: "测试甲", Phone: "13900001111", Region: "福建省福州市", Category: Employee, Employer: "示例公司"}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Person (-want +got):\n%s", diff)
	}
	if _, err := db.Person(ctx, idC); !errors.Is(err, ErrNotFound) {
		t.Errorf("Person(unknown) err = %v, want ErrNotFound", err)
	}

	cs, err := db.Contributions(ctx, idA, Month{2026, time.January}, Month{2026, time.February})
	if err != nil {
		t.Fatal(err)
	}
	wantCs := []Contribution{
		{Month{2026, 1}, Medical, 800000, 16000, 64050, StatusPaid},
		{Month{2026, 2}, Medical, 800000, 16000, 64050, StatusUnpaid},
		{Month{2026, 1}, Pension, 800000, 64000, 128000, StatusPaid},
	}
	if diff := cmp.Diff(wantCs, cs); diff != "" {
		t.Errorf("Contributions (-want +got):\n%s", diff)
	}
	cs, _ = db.Contributions(ctx, idA, Month{2026, time.February}, Month{})
	if len(cs) != 1 || cs[0].Month != (Month{2026, 2}) {
		t.Errorf("Contributions from 2026-02 = %+v", cs)
	}

	bal, mv, err := db.Balance(ctx, idA, 2)
	if err != nil {
		t.Fatal(err)
	}
	if bal != 16000-3650-3650 || len(mv) != 2 || mv[0].Amount != -3650 || mv[1].Amount != -3650 {
		t.Errorf("Balance = %v %+v", bal, mv)
	}
	bal, _, _ = db.Balance(ctx, idB, 0)
	if bal != 1230 {
		t.Errorf("balance of B = %v, want 12.30", bal)
	}

	sums, err := db.Summaries(ctx, idA)
	if err != nil {
		t.Fatal(err)
	}
	wantSums := []Summary{
		{Insurance: Medical, First: Month{2026, 1}, Last: Month{2026, 2}, LastPaid: Month{2026, 1}, PaidMonths: 1, UnpaidMonths: 1},
		{Insurance: Pension, First: Month{2026, 1}, Last: Month{2026, 1}, LastPaid: Month{2026, 1}, PaidMonths: 1},
	}
	if diff := cmp.Diff(wantSums, sums); diff != "" {
		t.Errorf("Summaries (-want +got):\n%s", diff)
	}

	var started, finished, pf string
	var rows int
	if err := db.cur.sql.QueryRow(`SELECT started_at, finished_at, persons_file, contributions_rows FROM import_batches WHERE id = 1`).
		Scan(&started, &finished, &pf, &rows); err != nil {
		t.Fatal(err)
	}
	if started != "2026-03-10T02:00:00Z" || finished == "" || pf != "persons.csv" || rows != 4 {
		t.Errorf("batch = %s %s %s %d", started, finished, pf, rows)
	}
}

func TestImportTwiceChangesNothing(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	src := func() ImportSources {
		return ImportSources{
			Persons:       file("persons.csv", goodPersons()),
			Contributions: file("contributions.csv", goodContribs()),
			Account:       file("account.csv", goodAccount()),
		}
	}
	first, err := db.Import(ctx, src())
	if err != nil {
		t.Fatal(err)
	}
	before := counts(t, db)
	balBefore, _, _ := db.Balance(ctx, idA, 0)
	second, err := db.Import(ctx, src())
	if err != nil {
		t.Fatal(err)
	}
	after := counts(t, db)
	balAfter, _, _ := db.Balance(ctx, idA, 0)
	before["import_batches"]++ // the only thing a re-import adds
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("row counts changed (-want +got):\n%s", diff)
	}
	if balAfter != balBefore {
		t.Errorf("balance %v after re-import, was %v", balAfter, balBefore)
	}
	if first.Persons != second.Persons || first.Contributions != second.Contributions || first.Movements != second.Movements {
		t.Errorf("stats differ: %+v vs %+v", first, second)
	}

	// An update is an update: a paid-up month and a new employer.
	if _, err := db.Import(ctx, ImportSources{
		Persons:       file("p2.csv", personsHead+idA+",测试甲,13900001111,福建省福州市,employee,新公司\n"),
		Contributions: file("c2.csv", contribHead+idA+",2026-02,medical,8000,160,640.50,paid\n"),
	}); err != nil {
		t.Fatal(err)
	}
	p, _ := db.Person(ctx, idA)
	sums, _ := db.Summaries(ctx, idA)
	if p.Employer != "新公司" || sums[0].LastPaid != (Month{2026, 2}) || sums[0].UnpaidMonths != 0 {
		t.Errorf("after update: employer %q, summary %+v", p.Employer, sums[0])
	}
}

func TestImportBOMAndColumnOrder(t *testing.T) {
	db, _ := openTemp(t)
	persons := "\ufeffname,id_number,category,phone,employer,region\r\n" +
		"测试甲," + idA + ",resident,13900001111,,北京市\r\n"
	contribs := "\ufeff" + contribHead + idA + ",2026-01,medical,0,32,0,paid\n"
	stats, err := db.Import(context.Background(), ImportSources{
		Persons:       file("persons.csv", persons),
		Contributions: file("contributions.csv", contribs),
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.Person(context.Background(), idA)
	if err != nil || p.Region != "北京市" || p.Category != Resident || stats.Contributions != 1 {
		t.Errorf("Person = %+v, %v; stats %+v", p, err, stats)
	}
}

func TestImportRejects(t *testing.T) {
	badCheck := idA[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", idA[17])+1)%11])
	tests := []struct {
		name             string
		persons, contrib string
		account          string
		want             []string // "file:line: message" substrings, in order
	}{
		{name: "bad check character",
			persons: personsHead + badCheck + ",甲,13900001111,北京市,employee,\n",
			want:    []string{"persons.csv:2: id_number " + MaskID(badCheck) + ": check character does not match"}},
		{name: "short ID",
			persons: personsHead + "1101051988,甲,13900001111,北京市,employee,\n",
			want:    []string{"persons.csv:2: id_number **********: must have 18 characters, has 10"}},
		{name: "letters in ID",
			persons: personsHead + "11010519880312A01X,甲,13900001111,北京市,employee,\n",
			want:    []string{"persons.csv:2: id_number 110105********A01X: must be 17 digits"}},
		{name: "impossible birth date",
			persons: personsHead + "110105198802300011,甲,13900001111,北京市,employee,\n",
			want:    []string{"persons.csv:2: id_number 110105********0011: birth date"}},
		{name: "future birth date",
			persons: personsHead + withCheck("11010520991231001") + ",甲,13900001111,北京市,employee,\n",
			want:    []string{"persons.csv:2: id_number 110105********", "birth date lies in the future"}},
		{name: "bad phone, category, empty name and region",
			persons: personsHead + idA + ",,1390000111,,boss,\n",
			want: []string{"persons.csv:2: name is empty", "persons.csv:2: phone **********: want an 11-digit",
				"persons.csv:2: region is empty", `persons.csv:2: category "boss"`}},
		{name: "duplicate person",
			persons: goodPersons() + idA + ",甲,13900001111,北京市,employee,\n",
			want:    []string{"persons.csv:4: id_number " + MaskID(idA) + ": already on line 2"}},
		{name: "wrong column count",
			persons: personsHead + idA + ",甲,13900001111,北京市,employee\n",
			want:    []string{"persons.csv:2: has 5 fields, want 6"}},
		{name: "missing and unknown header column",
			persons: "id_number,name,phone,region,category,boss\n",
			want:    []string{`persons.csv:1: unknown column "boss"`, "persons.csv:1: header has no column employer"}},
		{name: "empty file",
			persons: "",
			want:    []string{"persons.csv:1: empty file"}},
		{name: "malformed quotes",
			persons: personsHead + idA + `,"甲"x,13900001111,北京市,employee,` + "\n",
			want:    []string{"persons.csv:2: malformed CSV"}},
		{name: "bad month, insurance, amounts, status",
			persons: goodPersons(),
			contrib: contribHead + idA + ",2026-13,dental,-5,1.234,abc,late\n",
			want: []string{"contributions.csv:2: month \"2026-13\"", `contributions.csv:2: insurance "dental"`,
				`contributions.csv:2: base "-5": want a non-negative`, `contributions.csv:2: personal "1.234"`,
				`contributions.csv:2: employer "abc"`, `contributions.csv:2: status "late"`}},
		{name: "month too far ahead",
			persons: goodPersons(),
			contrib: contribHead + idA + ",2027-04,medical,1,1,1,paid\n",
			want:    []string{"contributions.csv:2: month 2027-04 is out of range"}},
		{name: "duplicate contribution",
			persons: goodPersons(),
			contrib: goodContribs() + idA + ",2026-01,medical,1,1,1,paid\n",
			want:    []string{"contributions.csv:6: same id_number, month and insurance as line 2"}},
		{name: "unknown person",
			persons: goodPersons(),
			contrib: contribHead + idC + ",2026-01,medical,1,1,1,paid\n",
			account: accountHead + idC + ",2026-01-01,1,x\n",
			want: []string{"contributions.csv:2: id_number " + MaskID(idC) + ": no such person in the database or persons.csv",
				"account.csv:2: id_number " + MaskID(idC) + ": no such person"}},
		{name: "bad date and amount",
			persons: goodPersons(),
			account: accountHead + idA + ",2026-02-30,1.2.3,x\n" + idA + ",2026-04-01,1,x\n",
			want: []string{`account.csv:2: date "2026-02-30"`, `account.csv:2: amount "1.2.3"`,
				"account.csv:3: date 2026-04-01 is out of range"}},
		{name: "phone-like value never echoed",
			persons: goodPersons(),
			contrib: contribHead + idA + ",13900001111,medical,1,1,1,paid\n",
			want:    []string{"contributions.csv:2: month (value hidden"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTemp(t)
			src := ImportSources{Persons: file("persons.csv", tt.persons)}
			if tt.contrib != "" {
				src.Contributions = file("contributions.csv", tt.contrib)
			}
			if tt.account != "" {
				src.Account = file("account.csv", tt.account)
			}
			_, err := db.Import(context.Background(), src)
			var ie *ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want *ImportError", err)
			}
			msg := err.Error()
			pos := 0
			for _, w := range tt.want {
				i := strings.Index(msg[pos:], w)
				if i < 0 {
					t.Fatalf("error lacks %q (in order):\n%s", w, msg)
				}
				pos += i + len(w)
			}
			if idPattern.MatchString(msg) || phonePattern.MatchString(msg) {
				t.Errorf("error leaks an ID or phone:\n%s", msg)
			}
			if c := counts(t, db); c["persons"]+c["contributions"]+c["account_movements"]+c["import_batches"] != 0 {
				t.Errorf("rejected import wrote rows: %v", c)
			}
		})
	}
}

func withCheck(body string) string { return body + string(idCheckChar(body)) }

func TestImportAllOrNothing(t *testing.T) {
	db, _ := openTemp(t)
	// Everything is fine except the very last line of the last file.
	_, err := db.Import(context.Background(), ImportSources{
		Persons:       file("persons.csv", goodPersons()),
		Contributions: file("contributions.csv", goodContribs()),
		Account:       file("account.csv", goodAccount()+idA+",2026-02-03,lots,x\n"),
	})
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.Problems[0].File != "account.csv" || ie.Problems[0].Line != 6 {
		t.Fatalf("err = %v, want one problem at account.csv:6", err)
	}
	for tbl, n := range counts(t, db) {
		if n != 0 {
			t.Errorf("%s has %d rows after a rejected import", tbl, n)
		}
	}
}

func TestImportProblemCap(t *testing.T) {
	db, _ := openTemp(t)
	var b strings.Builder
	b.WriteString(personsHead)
	for i := 0; i < maxProblems+10; i++ {
		b.WriteString("x,甲,13900001111,北京市,employee,\n")
	}
	_, err := db.Import(context.Background(), ImportSources{Persons: file("p.csv", b.String())})
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Problems) != maxProblems+1 ||
		ie.Problems[maxProblems].Msg != "and 10 more problem(s) not listed" {
		t.Fatalf("got %d problems, last %v", len(ie.Problems), ie.Problems[len(ie.Problems)-1])
	}
}

func TestImportRefersToPersonInDatabase(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	if _, err := db.Import(ctx, ImportSources{Persons: file("persons.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Import(ctx, ImportSources{Contributions: file("contributions.csv", goodContribs())}); err != nil {
		t.Fatalf("contributions for persons already in the database: %v", err)
	}
	if _, err := db.Import(ctx, ImportSources{}); err == nil {
		t.Error("import of nothing succeeded")
	}
}

// Between 00:00 and 08:00 in Shanghai it is still yesterday in UTC: a
// movement or a birth dated today must be accepted, tomorrow's still refused.
func TestImportAcceptsTodayEarlyMorningInShanghai(t *testing.T) {
	early := time.Date(2026, time.March, 10, 1, 0, 0, 0, time.FixedZone("+08", 8*3600))
	bornToday := withCheck("11010520260310001")
	persons := goodPersons() + bornToday + ",新生儿,13900003333,北京市,resident,\n"

	db, _ := openTemp(t)
	db.now = func() time.Time { return early }
	_, err := db.Import(context.Background(), ImportSources{
		Persons: file("persons.csv", persons),
		Account: file("account.csv", accountHead+idA+",2026-03-10,5,今日划入\n"),
	})
	if err != nil {
		t.Fatalf("import at 01:00 Shanghai of rows dated today: %v", err)
	}
	if _, mv, err := db.Balance(context.Background(), idA, 1); err != nil || len(mv) != 1 || mv[0].Date.Format(time.DateOnly) != "2026-03-10" {
		t.Errorf("newest movement = %+v, %v; want the one dated 2026-03-10", mv, err)
	}

	db2, _ := openTemp(t)
	db2.now = func() time.Time { return early }
	_, err = db2.Import(context.Background(), ImportSources{
		Persons: file("persons.csv", goodPersons()+withCheck("11010520260311001")+",明天,13900003333,北京市,resident,\n"),
		Account: file("account.csv", accountHead+idA+",2026-03-11,5,明日\n"),
	})
	var ie *ImportError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "birth date lies in the future") ||
		!strings.Contains(err.Error(), "date 2026-03-11 is out of range") {
		t.Errorf("rows dated tomorrow: err = %v, want both refused", err)
	}
}
