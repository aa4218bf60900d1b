package records

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is an open record file. It is safe for concurrent use. Reload puts
// another file in its place while it serves (see reload.go).
type DB struct {
	mu     sync.RWMutex // guards cur and closed; held only to read cur and take a reference
	cur    *handle
	closed bool
	rules  ruleSet
	now    func() time.Time // import timestamps; replaced in tests
}

// handle is one opened file: what a DB serves until Reload replaces it.
// refs counts one for being a DB's current file, plus one for each call
// (and each Hold) in flight; the last to let go closes the pool.
type handle struct {
	sql  *sql.DB
	info Info // what Open or OpenForImport found; zero for the demo
	refs atomic.Int64
}

func newHandle(sdb *sql.DB, info Info) *handle {
	h := &handle{sql: sdb, info: info}
	h.refs.Store(1)
	return h
}

// put lets go of one reference and closes the pool after the last.
// sql.DB.Close is idempotent: a call made after DB.Close takes the
// closed handle's count from zero and back again, harmlessly.
func (h *handle) put() error {
	if h.refs.Add(-1) == 0 {
		return h.sql.Close()
	}
	return nil
}

// get takes a reference to the file a call runs on: the one held in ctx
// (see Hold), else the current one. The caller must put it.
func (db *DB) get(ctx context.Context) *handle {
	if h, ok := ctx.Value(heldKey{db}).(*handle); ok {
		h.refs.Add(1)
		return h
	}
	db.mu.RLock()
	h := db.cur
	h.refs.Add(1)
	db.mu.RUnlock()
	return h
}

// pragmas go into the DSN so that every connection database/sql opens gets
// them, not only the first one.
const pragmas = "_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)"

// fileDSN is the DSN `shebao import` opens the record file at path with.
// _txlock=immediate: an import takes the write lock when it begins, so two
// concurrent imports queue on busy_timeout instead of failing to upgrade.
func fileDSN(path string) string {
	return "file:" + escapePath(path) + "?" + pragmas + "&_txlock=immediate"
}

func escapePath(path string) string { return (&url.URL{Path: path}).EscapedPath() }

// newDB wraps an in-memory database (the demo), creating its schema.
func newDB(ctx context.Context, sdb *sql.DB) (*DB, error) {
	rules, err := loadRules()
	if err != nil {
		sdb.Close()
		return nil, err
	}
	ms, err := migrations()
	if err != nil {
		sdb.Close()
		return nil, err
	}
	if err := migrate(ctx, sdb, ms); err != nil {
		sdb.Close()
		return nil, err
	}
	return &DB{cur: newHandle(sdb, Info{}), rules: rules, now: time.Now}, nil
}

// Close closes the database once the calls in flight, and the contexts
// held with Hold, are done; calls made afterwards fail.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	h := db.cur
	db.mu.Unlock()
	return h.put()
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a number and an underscore", base)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a number", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction together with its record, so
// a crash leaves either the whole step or none of it.
//
// What is applied is read first without a write transaction: a file whose
// migrations are all applied opens for import without waiting for the write
// lock, which a running import may hold for minutes. Only OpenForImport and
// the in-memory demo migrate; Open refuses a file whose migrations are
// pending (ErrOldSchema) instead of writing to it.
func migrate(ctx context.Context, sdb *sql.DB, ms []migration) error {
	applied, err := appliedMigrations(ctx, sdb)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if err := applyMigration(ctx, sdb, m); err != nil {
			return err
		}
	}
	return nil
}

// appliedMigrations returns the versions recorded in schema_migrations; none
// when the table does not exist yet.
func appliedMigrations(ctx context.Context, sdb *sql.DB) (map[int]bool, error) {
	var n int
	if err := sdb.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	if n == 0 {
		return applied, nil
	}
	rows, err := sdb.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

func applyMigration(ctx context.Context, sdb *sql.DB, m migration) error {
	tx, err := sdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migration %s: create schema_migrations: %w", m.name, err)
	}
	var n int
	// Checked again inside the write transaction: two processes opening a
	// new file at once both saw it pending; they serialise here, and the
	// second sees the first one's record.
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	return nil
}

// Person returns the person with the given ID number (normalised with
// CheckID first, so a lower-case x or surrounding spaces still match).
// It returns ErrNotFound if there is none.
func (db *DB) Person(ctx context.Context, id string) (Person, error) {
	h := db.get(ctx)
	defer h.put()
	return h.person(ctx, id)
}

func (h *handle) person(ctx context.Context, id string) (Person, error) {
	if n, err := CheckID(id); err == nil {
		id = n
	}
	var p Person
	var cat string
	err := h.sql.QueryRowContext(ctx,
		`SELECT id_number, name, phone, region, category, employer FROM persons WHERE id_number = ?`, id).
		Scan(&p.ID, &p.Name, &p.Phone, &p.Region, &cat, &p.Employer)
	if errors.Is(err, sql.ErrNoRows) {
		return Person{}, ErrNotFound
	}
	if err != nil {
		return Person{}, fmt.Errorf("load person %s: %w", MaskID(id), err)
	}
	p.Category = Category(cat)
	return p, nil
}

// Contributions returns the person's contributions in the months from..to
// (inclusive; a zero bound is open), ordered by insurance (in the order of
// Insurances) and month. It returns ErrNotFound for an unknown person.
func (db *DB) Contributions(ctx context.Context, id string, from, to Month) ([]Contribution, error) {
	h := db.get(ctx)
	defer h.put()
	p, err := h.person(ctx, id)
	if err != nil {
		return nil, err
	}
	lo, hi := int64(0), int64(999912)
	if !from.IsZero() {
		lo = from.sqlMonth()
	}
	if !to.IsZero() {
		hi = to.sqlMonth()
	}
	rows, err := h.sql.QueryContext(ctx, `SELECT insurance, month, base, personal, employer, status
		FROM contributions WHERE id_number = ? AND month BETWEEN ? AND ?
		ORDER BY CASE insurance WHEN 'medical' THEN 0 WHEN 'pension' THEN 1 WHEN 'unemployment' THEN 2
		         WHEN 'injury' THEN 3 ELSE 4 END, month`, p.ID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("load contributions for %s: %w", MaskID(p.ID), err)
	}
	defer rows.Close()
	var out []Contribution
	for rows.Next() {
		var c Contribution
		var ins string
		var m int64
		if err := rows.Scan(&ins, &m, &c.Base, &c.Personal, &c.Employer, &c.Status); err != nil {
			return nil, fmt.Errorf("load contributions for %s: %w", MaskID(p.ID), err)
		}
		c.Insurance, c.Month = Insurance(ins), monthFromSQL(m)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load contributions for %s: %w", MaskID(p.ID), err)
	}
	return out, nil
}

// Balance returns the personal-account balance (the sum of all movements) and
// the last movements, newest first (at most last; none if last <= 0).
// It returns ErrNotFound for an unknown person.
func (db *DB) Balance(ctx context.Context, id string, last int) (Cents, []Movement, error) {
	h := db.get(ctx)
	defer h.put()
	p, err := h.person(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	var sum Cents
	if err := h.sql.QueryRowContext(ctx, `SELECT coalesce(sum(amount), 0) FROM account_movements WHERE id_number = ?`,
		p.ID).Scan(&sum); err != nil {
		return 0, nil, fmt.Errorf("load balance for %s: %w", MaskID(p.ID), err)
	}
	if last <= 0 {
		return sum, nil, nil
	}
	rows, err := h.sql.QueryContext(ctx, `SELECT date, amount, description FROM account_movements
		WHERE id_number = ? ORDER BY date DESC, rowid DESC LIMIT ?`, p.ID, last)
	if err != nil {
		return 0, nil, fmt.Errorf("load movements for %s: %w", MaskID(p.ID), err)
	}
	defer rows.Close()
	var out []Movement
	for rows.Next() {
		var mv Movement
		var d string
		if err := rows.Scan(&d, &mv.Amount, &mv.Description); err != nil {
			return 0, nil, fmt.Errorf("load movements for %s: %w", MaskID(p.ID), err)
		}
		if mv.Date, err = time.Parse(time.DateOnly, d); err != nil {
			return 0, nil, fmt.Errorf("load movements for %s: bad stored date: %w", MaskID(p.ID), err)
		}
		out = append(out, mv)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("load movements for %s: %w", MaskID(p.ID), err)
	}
	return sum, out, nil
}

// Summary is the per-person, per-insurance digest kept up to date at import,
// meant for reminder scans that should not aggregate every contribution.
type Summary struct {
	Insurance    Insurance
	First, Last  Month // first and last month with any row
	LastPaid     Month // zero if never paid
	PaidMonths   int
	UnpaidMonths int
}

// Summaries returns the person's summary per insurance, in the order of
// Insurances. It returns ErrNotFound for an unknown person.
func (db *DB) Summaries(ctx context.Context, id string) ([]Summary, error) {
	h := db.get(ctx)
	defer h.put()
	p, err := h.person(ctx, id)
	if err != nil {
		return nil, err
	}
	rows, err := h.sql.QueryContext(ctx, `SELECT insurance, first_month, last_month, last_paid_month, paid_months, unpaid_months
		FROM person_summary WHERE id_number = ?`, p.ID)
	if err != nil {
		return nil, fmt.Errorf("load summary for %s: %w", MaskID(p.ID), err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var s Summary
		var ins string
		var first, last, paid int64
		if err := rows.Scan(&ins, &first, &last, &paid, &s.PaidMonths, &s.UnpaidMonths); err != nil {
			return nil, fmt.Errorf("load summary for %s: %w", MaskID(p.ID), err)
		}
		s.Insurance, s.First, s.Last = Insurance(ins), monthFromSQL(first), monthFromSQL(last)
		if paid != 0 {
			s.LastPaid = monthFromSQL(paid)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load summary for %s: %w", MaskID(p.ID), err)
	}
	sort.Slice(out, func(i, j int) bool { return insOrder(out[i].Insurance) < insOrder(out[j].Insurance) })
	return out, nil
}

func insOrder(i Insurance) int {
	for n, x := range Insurances() {
		if x == i {
			return n
		}
	}
	return len(Insurances())
}
