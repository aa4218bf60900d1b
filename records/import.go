package records

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// ImportSources are the CSV files of one import. Each is optional; rows may
// refer to persons already in the database or in Persons.
type ImportSources struct {
	Persons, Contributions, Account *ImportFile
}

// ImportFile is one CSV file: UTF-8 (a byte-order mark is accepted) with a
// header row of the exact column names, in any order:
//
//	persons:       id_number,name,phone,region,category,employer
//	contributions: id_number,month,insurance,base,personal,employer,status
//	account:       id_number,date,amount,description
type ImportFile struct {
	Name string // used in problem messages, e.g. "persons.csv"
	R    io.Reader
}

// ImportStats counts the rows read from each file (not the rows that changed:
// re-importing a file reports the same counts and changes nothing).
type ImportStats struct {
	Persons, Contributions, Movements int
	Batch                             int64 // import_batches.id
}

// Problem is one bad line. Msg never contains a raw ID number or phone.
type Problem struct {
	File string
	Line int // 1-based; 0 when the problem concerns the whole import
	Msg  string
}

func (p Problem) String() string {
	switch {
	case p.File == "":
		return p.Msg
	case p.Line == 0:
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// ImportError lists every problem found; when it is returned nothing was written.
type ImportError struct {
	Problems []Problem
}

func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "records: import rejected, nothing written: %d problem(s)", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// maxProblems caps the list: a file in the wrong format would otherwise yield
// a million identical lines. The rest are counted in a final problem.
const maxProblems = 500

var (
	personsHeader       = []string{"id_number", "name", "phone", "region", "category", "employer"}
	contributionsHeader = []string{"id_number", "month", "insurance", "base", "personal", "employer", "status"}
	accountHeader       = []string{"id_number", "date", "amount", "description"}
)

type personRow struct {
	p    Person
	line int
}

// contribRow is kept small: a million of them are held in memory while the
// whole import is validated before anything is written.
type contribRow struct {
	id                       string // interned: shares one string per person
	month                    int32  // YYYYMM
	ins                      Insurance
	paid                     bool
	base, personal, employer int64
	line                     int32
}

type movementRow struct {
	id, date, desc string
	amount         int64
	seq            int
	line           int
}

type problem struct {
	file int // 0 persons, 1 contributions, 2 account: the order problems are listed in
	Problem
}

type importState struct {
	now      time.Time // Asia/Shanghai
	names    [3]string
	probs    []problem
	overflow int
	intern   map[string]string
	persons  map[string]personRow
	contribs []contribRow
	moves    []movementRow
	// refs holds ID numbers used by contributions or account rows that are not
	// in the persons file; they must already be in the database.
	refs map[string]bool
}

func (st *importState) add(file, line int, format string, args ...any) {
	if len(st.probs) >= maxProblems {
		st.overflow++
		return
	}
	st.probs = append(st.probs, problem{file, Problem{File: st.names[file], Line: line, Msg: fmt.Sprintf(format, args...)}})
}

// Import validates every row of every file first and then writes them all in
// one transaction, so one bad row anywhere leaves the database untouched; the
// problems come back as *ImportError. Rows are upserted: persons and
// contributions by their keys, account movements by
// (id_number, date, amount, description, seq), where seq counts earlier
// identical rows in the same file. Re-importing a file therefore changes
// nothing and never doubles a balance, while two genuinely identical
// movements on one day stay two. (An incremental file that repeats an
// identical movement already imported from another file would be taken as
// the same one; the agency's exports are per-person statements, so this
// trade-off keeps re-imports safe.)
func (db *DB) Import(ctx context.Context, src ImportSources) (ImportStats, error) {
	files := [3]*ImportFile{src.Persons, src.Contributions, src.Account}
	st := &importState{
		now:     db.now().In(Shanghai),
		intern:  map[string]string{},
		persons: map[string]personRow{},
		refs:    map[string]bool{},
	}
	given := false
	for i, f := range files {
		if f == nil {
			continue
		}
		if f.R == nil {
			return ImportStats{}, fmt.Errorf("import %s: no reader", f.Name)
		}
		given = true
		st.names[i] = f.Name
	}
	if !given {
		return ImportStats{}, errors.New("import: no files given")
	}
	if f := files[0]; f != nil {
		if err := st.readCSV(0, f, personsHeader, st.personRow); err != nil {
			return ImportStats{}, err
		}
	}
	if f := files[1]; f != nil {
		dup := map[contribKey]int{}
		if err := st.readCSV(1, f, contributionsHeader, func(line int, v []string) { st.contribRow(line, v, dup) }); err != nil {
			return ImportStats{}, err
		}
	}
	if f := files[2]; f != nil {
		seq := map[movementKey]int{}
		if err := st.readCSV(2, f, accountHeader, func(line int, v []string) { st.movementRow(line, v, seq) }); err != nil {
			return ImportStats{}, err
		}
	}
	if err := db.checkRefs(ctx, st); err != nil {
		return ImportStats{}, err
	}
	if len(st.probs) > 0 {
		sort.SliceStable(st.probs, func(i, j int) bool {
			a, b := st.probs[i], st.probs[j]
			if a.file != b.file {
				return a.file < b.file
			}
			return a.Line < b.Line
		})
		e := &ImportError{Problems: make([]Problem, 0, len(st.probs)+1)}
		for _, p := range st.probs {
			e.Problems = append(e.Problems, p.Problem)
		}
		if st.overflow > 0 {
			e.Problems = append(e.Problems, Problem{Msg: fmt.Sprintf("and %d more problem(s) not listed", st.overflow)})
		}
		return ImportStats{}, e
	}
	stats, err := db.write(ctx, st)
	if err != nil {
		return ImportStats{}, fmt.Errorf("import: %w", err)
	}
	return stats, nil
}

// readCSV checks the header and calls row with each data line's fields in the
// order of want. Malformed lines become problems; only a read error is an error.
func (st *importState) readCSV(file int, f *ImportFile, want []string, row func(line int, v []string)) error {
	r := csv.NewReader(bufio.NewReaderSize(f.R, 1<<16))
	r.FieldsPerRecord = -1 // counted here, so a short line is a problem and not the end of the file
	r.ReuseRecord = true
	head, err := r.Read()
	if errors.Is(err, io.EOF) {
		st.add(file, 1, "empty file: want a header row %s", strings.Join(want, ","))
		return nil
	}
	if err != nil {
		return st.readErr(file, err)
	}
	cols := make([]int, len(want))
	for i := range cols {
		cols[i] = -1
	}
	bad := false
	for i, h := range head {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		h = strings.TrimSpace(h)
		k := indexOf(want, h)
		switch {
		case k < 0:
			st.add(file, 1, "unknown column %s in header: want %s", safeValue(h), strings.Join(want, ","))
			bad = true
		case cols[k] >= 0:
			st.add(file, 1, "column %s appears twice in header", h)
			bad = true
		default:
			cols[k] = i
		}
	}
	for k, c := range cols {
		if c < 0 {
			st.add(file, 1, "header has no column %s: want %s", want[k], strings.Join(want, ","))
			bad = true
		}
	}
	if bad {
		return nil // without a header the lines cannot be understood
	}
	v := make([]string, len(want))
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				st.add(file, pe.StartLine, "malformed CSV: %v", pe.Err)
				continue
			}
			return st.readErr(file, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(want) {
			st.add(file, line, "has %d fields, want %d (%s)", len(rec), len(want), strings.Join(want, ","))
			continue
		}
		for k, c := range cols {
			v[k] = strings.TrimSpace(rec[c])
		}
		row(line, v)
	}
}

func (st *importState) readErr(file int, err error) error {
	return fmt.Errorf("import: read %s: %w", st.names[file], err)
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return -1
}

// dateLike values are shown even though they have many digits: a date is
// neither an ID nor a phone, and seeing it is what makes the problem clear.
var dateLike = regexp.MustCompile(`^\d{4}-\d{1,2}(-\d{1,2})?$`)

// safeValue quotes a field value for a problem message unless it could be an
// ID number or a phone (7 or more digits), which are never echoed.
func safeValue(s string) string {
	digits := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits++
		}
	}
	if digits >= 7 && !dateLike.MatchString(s) {
		return "(value hidden: looks like an ID or phone number)"
	}
	if utf8.RuneCountInString(s) > 32 {
		s = string([]rune(s)[:32]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// checkID validates an ID field and reports a problem with the value masked.
func (st *importState) checkID(file, line int, raw string) (string, bool) {
	id, err := CheckID(raw)
	if err == nil {
		return id, true
	}
	m := MaskID(raw)
	switch {
	case errors.Is(err, ErrIDLength):
		st.add(file, line, "id_number %s: must have 18 characters, has %d", m, utf8.RuneCountInString(raw))
	case errors.Is(err, ErrIDChars):
		st.add(file, line, "id_number %s: must be 17 digits followed by a digit or X", m)
	case errors.Is(err, ErrIDDate):
		st.add(file, line, "id_number %s: birth date (characters 7-14) is not a real date", m)
	default:
		st.add(file, line, "id_number %s: check character does not match, probably a typo", m)
	}
	return "", false
}

func (st *importState) personRow(line int, v []string) {
	const file = 0
	id, idOK := st.checkID(file, line, v[0])
	if idOK {
		if birth, _ := idBirthDate(id); birth.After(st.now) {
			st.add(file, line, "id_number %s: birth date lies in the future", MaskID(id))
		}
	}
	p := Person{ID: id, Name: v[1], Phone: NormalizePhone(v[2]), Region: v[3], Category: Category(v[4]), Employer: v[5]}
	if p.Name == "" {
		st.add(file, line, "name is empty")
	}
	if !validMobile(p.Phone) {
		if v[2] == "" {
			st.add(file, line, "phone is empty")
		} else {
			st.add(file, line, "phone %s: want an 11-digit mainland mobile number", MaskPhone(v[2]))
		}
	}
	if p.Region == "" {
		st.add(file, line, "region is empty")
	}
	if !p.Category.Valid() {
		st.add(file, line, "category %s: want employee, flexible or resident", safeValue(v[4]))
	}
	if !idOK {
		return
	}
	if prev, dup := st.persons[id]; dup {
		st.add(file, line, "id_number %s: already on line %d", MaskID(id), prev.line)
		return
	}
	// A person with other problems still counts as present, so their
	// contribution lines do not pile up "unknown person" problems as well.
	st.persons[id] = personRow{p: p, line: line}
}

type contribKey struct {
	id    string
	month int32
	ins   Insurance
}

func (st *importState) contribRow(line int, v []string, dup map[contribKey]int) {
	const file = 1
	ok := true
	id, idOK := st.checkID(file, line, v[0])
	ok = ok && idOK
	m, err := ParseMonth(v[1])
	if err != nil {
		st.add(file, line, "month %s: want YYYY-MM", safeValue(v[1]))
		ok = false
	} else if m.Before(Month{1980, time.January}) || m.After(MonthOf(st.now).Add(12)) {
		st.add(file, line, "month %s is out of range (1980-01 to 12 months ahead)", m)
		ok = false
	}
	ins := Insurance(v[2])
	if !ins.Valid() {
		st.add(file, line, "insurance %s: want medical, pension, unemployment, injury or maternity", safeValue(v[2]))
		ok = false
	}
	var amounts [3]Cents
	for k, col := range [3]string{"base", "personal", "employer"} {
		c, err := parseCents(v[3+k], false)
		if err != nil {
			st.add(file, line, "%s %s: want a non-negative amount in yuan with at most two decimals", col, safeValue(v[3+k]))
			ok = false
		}
		amounts[k] = c
	}
	if v[6] != StatusPaid && v[6] != StatusUnpaid {
		st.add(file, line, "status %s: want paid or unpaid", safeValue(v[6]))
		ok = false
	}
	if !ok {
		return
	}
	id = st.internID(id)
	key := contribKey{id, int32(m.sqlMonth()), ins}
	if prev, seen := dup[key]; seen {
		st.add(file, line, "same id_number, month and insurance as line %d", prev)
		return
	}
	dup[key] = line
	if _, known := st.persons[id]; !known {
		st.refs[id] = true
	}
	st.contribs = append(st.contribs, contribRow{
		id: id, month: key.month, ins: ins, paid: v[6] == StatusPaid,
		base: int64(amounts[0]), personal: int64(amounts[1]), employer: int64(amounts[2]), line: int32(line),
	})
}

// internID makes rows of one person share one string instead of each keeping
// its whole CSV line alive.
func (st *importState) internID(id string) string {
	if s, ok := st.intern[id]; ok {
		return s
	}
	s := strings.Clone(id)
	st.intern[s] = s
	return s
}

type movementKey struct {
	id, date, desc string
	amount         int64
}

const maxDescription = 200

func (st *importState) movementRow(line int, v []string, seq map[movementKey]int) {
	const file = 2
	ok := true
	id, idOK := st.checkID(file, line, v[0])
	ok = ok && idOK
	// Midnight in Shanghai, like st.now: at UTC midnight a movement dated
	// today would lie in the future until 08:00.
	d, err := time.ParseInLocation(time.DateOnly, v[1], Shanghai)
	if err != nil {
		st.add(file, line, "date %s: want YYYY-MM-DD", safeValue(v[1]))
		ok = false
	} else if d.Year() < 1980 || d.After(st.now) {
		st.add(file, line, "date %s is out of range (1980 to today)", v[1])
		ok = false
	}
	amt, err := parseCents(v[2], true)
	if err != nil {
		st.add(file, line, "amount %s: want yuan with at most two decimals, credit positive, debit negative", safeValue(v[2]))
		ok = false
	}
	if n := utf8.RuneCountInString(v[3]); n > maxDescription {
		st.add(file, line, "description has %d characters, at most %d allowed", n, maxDescription)
		ok = false
	}
	if !ok {
		return
	}
	id = st.internID(id)
	k := movementKey{id, v[1], strings.Clone(v[3]), int64(amt)}
	n := seq[k]
	seq[k] = n + 1
	if _, known := st.persons[id]; !known {
		st.refs[id] = true
	}
	st.moves = append(st.moves, movementRow{id: id, date: k.date, desc: k.desc, amount: k.amount, seq: n, line: line})
}

// checkRefs looks up, in the database, the persons that rows refer to but the
// persons file does not contain, and reports every line of those still unknown.
func (db *DB) checkRefs(ctx context.Context, st *importState) error {
	if len(st.refs) == 0 {
		return nil
	}
	h := db.get(ctx)
	defer h.put()
	ids := make([]string, 0, len(st.refs))
	for id := range st.refs {
		ids = append(ids, id)
	}
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		q := `SELECT id_number FROM persons WHERE id_number IN (?` + strings.Repeat(",?", n-1) + `)`
		rows, err := h.sql.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("import: look up persons: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("import: look up persons: %w", err)
			}
			delete(st.refs, id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("import: look up persons: %w", err)
		}
		ids = ids[n:]
	}
	if len(st.refs) == 0 {
		return nil
	}
	where := "the database"
	if st.names[0] != "" {
		where += " or " + st.names[0]
	}
	for _, c := range st.contribs {
		if st.refs[c.id] {
			st.add(1, int(c.line), "id_number %s: no such person in %s", MaskID(c.id), where)
		}
	}
	for _, m := range st.moves {
		if st.refs[m.id] {
			st.add(2, m.line, "id_number %s: no such person in %s", MaskID(m.id), where)
		}
	}
	return nil
}

// write stores a validated import in one transaction.
func (db *DB) write(ctx context.Context, st *importState) (ImportStats, error) {
	started := db.now().UTC()
	h := db.get(ctx)
	defer h.put()
	tx, err := h.sql.BeginTx(ctx, nil)
	if err != nil {
		return ImportStats{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()

	res, err := tx.ExecContext(ctx, `INSERT INTO import_batches
		(started_at, persons_file, contributions_file, account_file) VALUES (?, ?, ?, ?)`,
		started.Format(time.RFC3339Nano), st.names[0], st.names[1], st.names[2])
	if err != nil {
		return ImportStats{}, fmt.Errorf("record batch: %w", err)
	}
	batch, err := res.LastInsertId()
	if err != nil {
		return ImportStats{}, fmt.Errorf("record batch: %w", err)
	}

	// Persons in line order, so the database content does not depend on map order.
	ps := make([]personRow, 0, len(st.persons))
	for _, p := range st.persons {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].line < ps[j].line })
	pb := newBatcher(tx, `INSERT INTO persons (id_number, name, phone, region, category, employer) VALUES `,
		`(?,?,?,?,?,?)`, 6, ` ON CONFLICT (id_number) DO UPDATE SET name = excluded.name, phone = excluded.phone,
		region = excluded.region, category = excluded.category, employer = excluded.employer
		WHERE name <> excluded.name OR phone <> excluded.phone OR region <> excluded.region
		   OR category <> excluded.category OR employer <> excluded.employer`)
	for _, r := range ps {
		p := r.p
		if err := pb.add(ctx, p.ID, p.Name, p.Phone, p.Region, string(p.Category), p.Employer); err != nil {
			return ImportStats{}, fmt.Errorf("write persons: %w", err)
		}
	}
	if err := pb.close(ctx); err != nil {
		return ImportStats{}, fmt.Errorf("write persons: %w", err)
	}

	cb := newBatcher(tx, `INSERT INTO contributions (id_number, insurance, month, base, personal, employer, status) VALUES `,
		`(?,?,?,?,?,?,?)`, 7, ` ON CONFLICT (id_number, insurance, month) DO UPDATE SET base = excluded.base,
		personal = excluded.personal, employer = excluded.employer, status = excluded.status
		WHERE base <> excluded.base OR personal <> excluded.personal OR employer <> excluded.employer
		   OR status <> excluded.status`)
	for _, c := range st.contribs {
		status := StatusUnpaid
		if c.paid {
			status = StatusPaid
		}
		if err := cb.add(ctx, c.id, string(c.ins), int64(c.month), c.base, c.personal, c.employer, status); err != nil {
			return ImportStats{}, fmt.Errorf("write contributions: %w", err)
		}
	}
	if err := cb.close(ctx); err != nil {
		return ImportStats{}, fmt.Errorf("write contributions: %w", err)
	}

	mb := newBatcher(tx, `INSERT INTO account_movements (id_number, date, amount, description, seq) VALUES `,
		`(?,?,?,?,?)`, 5, ` ON CONFLICT DO NOTHING`)
	for _, m := range st.moves {
		if err := mb.add(ctx, m.id, m.date, m.amount, m.desc, m.seq); err != nil {
			return ImportStats{}, fmt.Errorf("write account movements: %w", err)
		}
	}
	if err := mb.close(ctx); err != nil {
		return ImportStats{}, fmt.Errorf("write account movements: %w", err)
	}

	if err := refreshSummary(ctx, tx, st.contribs); err != nil {
		return ImportStats{}, err
	}

	stats := ImportStats{Persons: len(ps), Contributions: len(st.contribs), Movements: len(st.moves), Batch: batch}
	if _, err := tx.ExecContext(ctx, `UPDATE import_batches SET finished_at = ?, persons_rows = ?,
		contributions_rows = ?, movements_rows = ? WHERE id = ?`,
		db.now().UTC().Format(time.RFC3339Nano), stats.Persons, stats.Contributions, stats.Movements, batch); err != nil {
		return ImportStats{}, fmt.Errorf("record batch: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return ImportStats{}, fmt.Errorf("commit: %w", err)
	}
	return stats, nil
}

// refreshSummary recomputes person_summary for the persons whose
// contributions were imported, through a temporary table of their IDs so one
// grouped statement does the work.
func refreshSummary(ctx context.Context, tx *sql.Tx, cs []contribRow) error {
	if len(cs) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE import_touched (id_number TEXT PRIMARY KEY) WITHOUT ROWID`); err != nil {
		return fmt.Errorf("update summary: %w", err)
	}
	tb := newBatcher(tx, `INSERT INTO import_touched (id_number) VALUES `, `(?)`, 1, ` ON CONFLICT DO NOTHING`)
	last := ""
	for _, c := range cs {
		if c.id == last { // rows of one person are usually adjacent
			continue
		}
		last = c.id
		if err := tb.add(ctx, c.id); err != nil {
			return fmt.Errorf("update summary: %w", err)
		}
	}
	if err := tb.close(ctx); err != nil {
		return fmt.Errorf("update summary: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO person_summary
		(id_number, insurance, first_month, last_month, last_paid_month, paid_months, unpaid_months)
		SELECT id_number, insurance, min(month), max(month),
		       coalesce(max(CASE WHEN status = 'paid' THEN month END), 0),
		       sum(status = 'paid'), sum(status = 'unpaid')
		FROM contributions
		WHERE id_number IN (SELECT id_number FROM import_touched)
		GROUP BY id_number, insurance`); err != nil {
		return fmt.Errorf("update summary: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE temp.import_touched`); err != nil {
		return fmt.Errorf("update summary: %w", err)
	}
	return nil
}

// batchRows is how many rows one multi-row INSERT carries. Measured with
// BenchmarkImportContributions: past a few hundred rows the gain flattens,
// and 7 columns × 256 rows stays far below SQLite's 32766-variable limit.
const batchRows = 256

// batcher turns single rows into multi-row INSERTs through two prepared
// statements: a full batch, and the shorter final batch.
type batcher struct {
	tx                *sql.Tx
	head, tuple, tail string
	cols              int
	full              *sql.Stmt
	args              []any
}

func newBatcher(tx *sql.Tx, head, tuple string, cols int, tail string) *batcher {
	return &batcher{tx: tx, head: head, tuple: tuple, tail: tail, cols: cols, args: make([]any, 0, cols*batchRows)}
}

func (b *batcher) sql(rows int) string {
	return b.head + b.tuple + strings.Repeat(","+b.tuple, rows-1) + b.tail
}

func (b *batcher) add(ctx context.Context, vals ...any) error {
	b.args = append(b.args, vals...)
	if len(b.args) < b.cols*batchRows {
		return nil
	}
	if b.full == nil {
		st, err := b.tx.PrepareContext(ctx, b.sql(batchRows))
		if err != nil {
			return err
		}
		b.full = st
	}
	_, err := b.full.ExecContext(ctx, b.args...)
	b.args = b.args[:0]
	return err
}

// close writes the remaining rows and releases the statement.
func (b *batcher) close(ctx context.Context) error {
	var err error
	if n := len(b.args) / b.cols; n > 0 {
		_, err = b.tx.ExecContext(ctx, b.sql(n), b.args...)
		b.args = b.args[:0]
	}
	if b.full != nil {
		if cerr := b.full.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
