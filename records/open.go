package records

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Why a record file is refused. Open and OpenForImport return them inside an
// *OpenError naming the file; test with errors.Is.
var (
	// ErrMissing: nothing at the path. Open never creates a file (a
	// mistyped RECORDS_DB would otherwise become an empty database);
	// OpenForImport does.
	ErrMissing = errors.New("records: no such file")
	// ErrEmpty: the file has zero bytes.
	ErrEmpty = errors.New("records: empty file")
	// ErrForeign: not an SQLite database, or one without shebao's tables.
	ErrForeign = errors.New("records: not a shebao records file")
	// ErrCorrupt: SQLite finds the file damaged (PRAGMA quick_check, or a
	// read failing with SQLITE_CORRUPT or SQLITE_NOTADB), or a table the
	// read methods need is missing.
	ErrCorrupt = errors.New("records: damaged file")
	// ErrOldSchema: migrations this program needs are not applied to the
	// file. Open does not apply them (the file may be a read-only copy, or
	// shared by replicas); OpenForImport does.
	ErrOldSchema = errors.New("records: schema older than this program")
	// ErrNoPersons: a sound records file that holds nobody, such as one
	// created by an import that never ran or by mistake.
	ErrNoPersons = errors.New("records: no persons in the file")
	// ErrUnmerged: the folder cannot be written and changes wait in the
	// file's -wal, which SQLite cannot read without writing its -shm index
	// beside the file. Opening the file alone would serve it without them.
	ErrUnmerged = errors.New("records: changes wait in the -wal file")
)

// OpenError says which record file was refused and why. Err is one of the
// sentinels above, or the underlying error when the file cannot be read at
// all (errors.Is(err, fs.ErrPermission) then works). Detail is what was
// found, for the operator; it never holds personal data.
type OpenError struct {
	Path   string
	Err    error
	Detail string
}

func (e *OpenError) Error() string {
	s := "records file " + e.Path + ": " + strings.TrimPrefix(e.Err.Error(), "records: ")
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *OpenError) Unwrap() error { return e.Err }

// Info describes an open record file, for the operator's log.
type Info struct {
	Persons    int       // persons in the file (Open only)
	Schema     int       // highest migration applied to the file
	Known      int       // highest migration this program has; Schema > Known: written by a newer shebao
	LastImport time.Time // when the last import finished; zero if none did (Open only)
	// Immutable: the file is in WAL mode and its folder was not writable,
	// so it was opened as an unchanging image (SQLite's immutable=1).
	// SQLite then takes no locks and does not notice later changes: put a
	// new file in place by rename, never by writing over it, and Reload.
	Immutable bool
	// Mode is the file's permission bits and Tightened says whether
	// OpenForImport removed permissions that other users had.
	Mode      fs.FileMode
	Tightened bool
}

// Info returns what opening the file found; zero for the demo.
func (db *DB) Info() Info {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.cur.info
}

// readTables are the tables the read methods query: Open refuses a file
// lacking one. Keep in step with migrations/.
var readTables = []string{"persons", "contributions", "account_movements", "person_summary", "import_batches"}

const sqliteHeader = "SQLite format 3\x00"

// Open opens the existing record file at path for reading, as the bot does.
// It never creates, migrates or otherwise writes the file, and it refuses a
// file that is missing, empty, not a records file, damaged (PRAGMA
// quick_check), of an older schema, or holding no persons: a bot serving
// such a file would tell every verified user that they are not in the
// records. The error is an *OpenError wrapping one of the sentinels.
//
// The file is opened read-only (SQLite's mode=ro). A file that OpenDraft
// published uses the rollback journal and needs nothing beside it, even in
// a folder that cannot be written. A WAL-mode file (written in place by
// OpenForImport, or by an older release) is read through its -wal, so a
// reader sees an import that runs while it does; such a reader needs the
// -shm index beside the file, and when the folder cannot be written (a
// read-only mount) and no changes wait in the -wal file, the file is
// opened as an immutable image instead (Info.Immutable). To serve a new
// file, publish it by rename and Reload.
func Open(ctx context.Context, path string) (*DB, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	return open(ctx, path, ms)
}

func open(ctx context.Context, path string, ms []migration) (*DB, error) {
	if err := checkFile(path, false); err != nil {
		return nil, err
	}
	db, err := openRead(ctx, path, ms, false)
	if err == nil || !needsWriteBeside(err) {
		return db, err
	}
	if fi, werr := os.Stat(path + "-wal"); werr == nil && fi.Size() > 0 {
		return nil, &OpenError{Path: path, Err: ErrUnmerged,
			Detail: fmt.Sprintf("%s-wal holds %d bytes and the folder is not writable", path, fi.Size())}
	}
	return openRead(ctx, path, ms, true)
}

// readDSN is the DSN of a reader. query_only on top of mode=ro: nothing
// run through this handle may write, whatever the file's permissions.
func readDSN(path string, immutable bool) string {
	q := "?mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)"
	if immutable {
		q = "?mode=ro&immutable=1&_pragma=query_only(1)"
	}
	return "file:" + escapePath(path) + q
}

func openRead(ctx context.Context, path string, ms []migration, immutable bool) (*DB, error) {
	rules, err := loadRules()
	if err != nil {
		return nil, err
	}
	sdb, err := sql.Open("sqlite", readDSN(path, immutable))
	if err != nil {
		return nil, &OpenError{Path: path, Err: err}
	}
	info, err := inspect(ctx, sdb, path, ms, false)
	if err != nil {
		sdb.Close()
		return nil, err
	}
	info.Immutable = immutable
	if fi, err := os.Stat(path); err == nil {
		info.Mode = fi.Mode().Perm()
	}
	return &DB{cur: newHandle(sdb, info), rules: rules, now: time.Now}, nil
}

// OpenForImport opens the record file at path for writing in place, in WAL
// mode; `shebao import` writes through OpenDraft instead, so that a file
// being served is never written to. A missing file is created readable and
// writable by its owner only (0600; SQLite gives the -wal and -shm files the
// same mode). An existing file loses any permission other users have on it
// (Info.Tightened), while its group permissions stay: an operator may share
// the file with the group of the user the bot runs as. Pending migrations
// are applied.
//
// It refuses what Open refuses, except that a new (empty) file is welcome and
// persons and migrations may be missing; it never writes into a file that is
// not a records file or is damaged.
func OpenForImport(ctx context.Context, path string) (*DB, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	return openForImport(ctx, path, ms)
}

func openForImport(ctx context.Context, path string, ms []migration) (*DB, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		f.Close()
	case !errors.Is(err, fs.ErrExist):
		return nil, &OpenError{Path: path, Err: fmt.Errorf("create: %w", unwrapPath(err))}
	}
	if err := checkFile(path, true); err != nil {
		return nil, err
	}
	rules, err := loadRules()
	if err != nil {
		return nil, err
	}
	// Inspect through a reader first: the writer's journal_mode(WAL)
	// pragma alone would rewrite the header of a foreign database.
	rdb, err := sql.Open("sqlite", readDSN(path, false))
	if err != nil {
		return nil, &OpenError{Path: path, Err: err}
	}
	info, err := inspect(ctx, rdb, path, ms, true)
	rdb.Close()
	if err != nil {
		return nil, err
	}
	if info.Mode, info.Tightened, err = tighten(path); err != nil {
		return nil, err
	}
	sdb, err := sql.Open("sqlite", fileDSN(path))
	if err != nil {
		return nil, &OpenError{Path: path, Err: err}
	}
	if err := migrate(ctx, sdb, ms); err != nil {
		sdb.Close()
		return nil, &OpenError{Path: path, Err: err}
	}
	info.Schema = max(info.Schema, info.Known)
	return &DB{cur: newHandle(sdb, info), rules: rules, now: time.Now}, nil
}

// tighten removes other users' permissions from the record file and its
// -wal and -shm files, and returns the record file's mode afterwards.
func tighten(path string) (fs.FileMode, bool, error) {
	var mode fs.FileMode
	changed := false
	for i, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) && i > 0 {
			continue
		}
		if err != nil {
			return 0, false, &OpenError{Path: path, Err: unwrapPath(err)}
		}
		m := fi.Mode().Perm()
		if m&0o007 != 0 {
			m &^= 0o007
			if err := os.Chmod(p, m); err != nil {
				return 0, false, &OpenError{Path: path, Err: fmt.Errorf("remove other users' access to %s: %w", p, unwrapPath(err))}
			}
			changed = true
		}
		if i == 0 {
			mode = m
		}
	}
	return mode, changed, nil
}

// checkFile refuses, before SQLite sees it, what is not a record file at
// all. SQLite would take a missing or empty file for a new database and a
// reader would then find nobody in it.
func checkFile(path string, forImport bool) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &OpenError{Path: path, Err: ErrMissing}
	case err != nil:
		return &OpenError{Path: path, Err: unwrapPath(err)}
	case fi.IsDir():
		return &OpenError{Path: path, Err: ErrForeign, Detail: "a directory"}
	case !fi.Mode().IsRegular():
		return &OpenError{Path: path, Err: ErrForeign, Detail: "not a regular file"}
	case fi.Size() == 0 && forImport:
		return nil // a new file
	case fi.Size() == 0:
		return &OpenError{Path: path, Err: ErrEmpty, Detail: "0 bytes"}
	}
	f, err := os.Open(path)
	if err != nil {
		return &OpenError{Path: path, Err: unwrapPath(err)}
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return &OpenError{Path: path, Err: unwrapPath(err)}
	}
	if string(head) != sqliteHeader {
		return &OpenError{Path: path, Err: ErrForeign,
			Detail: fmt.Sprintf("not an SQLite database: %d bytes without the SQLite header", fi.Size())}
	}
	return nil
}

// inspect checks the schema and integrity of an opened file. For an import a
// file without any table is a new one; otherwise it must hold every
// migration and at least one person.
func inspect(ctx context.Context, sdb *sql.DB, path string, ms []migration, forImport bool) (Info, error) {
	fail := func(sentinel error, detail string) (Info, error) {
		return Info{}, &OpenError{Path: path, Err: sentinel, Detail: detail}
	}
	sqlFail := func(what string, err error) (Info, error) {
		if what != "" {
			err = fmt.Errorf("%s: %w", what, err)
		}
		if code, ok := sqliteCode(err); ok && (code == sqlite3.SQLITE_CORRUPT || code == sqlite3.SQLITE_NOTADB) {
			return fail(ErrCorrupt, err.Error())
		}
		return Info{}, &OpenError{Path: path, Err: err}
	}
	info := Info{Known: ms[len(ms)-1].version}
	tables := map[string]bool{}
	rows, err := sdb.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return sqlFail("read the schema", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return sqlFail("read the schema", err)
		}
		tables[n] = true
	}
	if err := rows.Close(); err != nil {
		return sqlFail("read the schema", err)
	}
	if err := rows.Err(); err != nil {
		return sqlFail("read the schema", err)
	}
	if !tables["schema_migrations"] {
		if forImport && len(tables) == 0 {
			return info, nil
		}
		if len(tables) == 0 {
			return fail(ErrForeign, "an SQLite database without tables")
		}
		return fail(ErrForeign, fmt.Sprintf("an SQLite database with %d table(s) but not shebao's schema_migrations", len(tables)))
	}
	applied, err := appliedMigrations(ctx, sdb)
	if err != nil {
		return sqlFail("", err) // names schema_migrations
	}
	for v := range applied {
		info.Schema = max(info.Schema, v)
	}
	if !forImport {
		for _, m := range ms {
			if !applied[m.version] {
				return fail(ErrOldSchema, fmt.Sprintf("schema version %d, this program needs %d", info.Schema, info.Known))
			}
		}
		for _, t := range readTables {
			if !tables[t] {
				return fail(ErrCorrupt, "table "+t+" is missing")
			}
		}
	}
	if problems, err := quickCheck(ctx, sdb); err != nil {
		return sqlFail("quick_check", err)
	} else if len(problems) > 0 {
		return fail(ErrCorrupt, "quick_check: "+strings.Join(problems, "; "))
	}
	if forImport {
		return info, nil
	}
	if err := sdb.QueryRowContext(ctx, `SELECT count(*) FROM persons`).Scan(&info.Persons); err != nil {
		return sqlFail("count persons", err)
	}
	if info.Persons == 0 {
		return fail(ErrNoPersons, "")
	}
	var last sql.NullString
	if err := sdb.QueryRowContext(ctx, `SELECT max(finished_at) FROM import_batches`).Scan(&last); err != nil {
		return sqlFail("read import_batches", err)
	}
	if last.Valid {
		info.LastImport, _ = time.Parse(time.RFC3339, last.String) // a bad stamp only loses the log field
	}
	return info, nil
}

// quickCheck runs PRAGMA quick_check: every page and index entry is read
// and checked, though indexes are not compared with their tables (that is
// integrity_check, much slower on a large file). It returns the first few
// problems; none when the file is sound.
func quickCheck(ctx context.Context, sdb *sql.DB) ([]string, error) {
	rows, err := sdb.QueryContext(ctx, `PRAGMA quick_check(3)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 1 && out[0] == "ok" {
		return nil, nil
	}
	if len(out) == 0 {
		out = []string{"no result"}
	}
	return out, nil
}

// needsWriteBeside reports whether err means that SQLite could not create
// or write the files it keeps beside a WAL-mode database (-shm, -wal), as
// on a read-only mount.
func needsWriteBeside(err error) bool {
	code, ok := sqliteCode(err)
	return ok && (code == sqlite3.SQLITE_READONLY || code == sqlite3.SQLITE_CANTOPEN)
}

// sqliteCode is the primary result code of an SQLite error.
func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return 0, false
	}
	return se.Code() & 0xff, true
}

// unwrapPath drops the *fs.PathError around err: OpenError names the file.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Checkpoint moves what the -wal file holds into the record file and
// empties the -wal, so that the record file alone is complete: a copy of it
// can be shipped to replicas that open it read-only. It fails when a reader
// (a bot serving the same file) kept the -wal in use for longer than the
// busy timeout.
func (db *DB) Checkpoint(ctx context.Context) error {
	h := db.get(ctx)
	defer h.put()
	var busy, logPages, moved int
	if err := h.sql.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &moved); err != nil {
		return fmt.Errorf("checkpoint records: %w", err)
	}
	if busy != 0 {
		return errors.New("checkpoint records: a reader kept the -wal file in use")
	}
	return nil
}
