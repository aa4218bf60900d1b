package records

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// importedFile writes a record file holding goodPersons and goodContribs,
// closed so that its -wal is merged, and returns its path.
func importedFile(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "records.db")
	db, err := OpenForImport(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Import(context.Background(), ImportSources{
		Persons: file("persons.csv", goodPersons()), Contributions: file("contributions.csv", goodContribs()),
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// foreignFile writes an SQLite database of some other program.
func foreignFile(t *testing.T, path string, stmts ...string) {
	t.Helper()
	sdb, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	for _, s := range stmts {
		if _, err := sdb.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
}

func randomBytes(n int) []byte {
	rng := rand.New(rand.NewPCG(12, 34))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// rawExec changes a record file behind the package's back.
func rawExec(t *testing.T, path, stmt string) {
	t.Helper()
	sdb, err := sql.Open("sqlite", fileDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	if _, err := sdb.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

// rootPage is the first page of a table, counted from 1.
func rootPage(t *testing.T, path, table string) int {
	t.Helper()
	sdb, err := sql.Open("sqlite", readDSN(path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var n, size int
	if err := sdb.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = ?`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := sdb.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil || size != 4096 {
		t.Fatalf("page size %d: %v", size, err)
	}
	return n
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// Every kind of bad file is refused with its own sentinel, and Open leaves
// the file exactly as it was: a mistyped path creates nothing.
func TestOpenRefusesBadFiles(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		make   func(t *testing.T, path string)
		want   error
		detail string
	}{
		{"missing", func(*testing.T, string) {}, ErrMissing, ""},
		{"directory", func(t *testing.T, p string) { os.Mkdir(p, 0o755) }, ErrForeign, "a directory"},
		{"zero bytes", func(t *testing.T, p string) { os.WriteFile(p, nil, 0o600) }, ErrEmpty, "0 bytes"},
		{"random bytes", func(t *testing.T, p string) { os.WriteFile(p, randomBytes(40<<10), 0o600) }, ErrForeign, "not an SQLite database"},
		{"short text", func(t *testing.T, p string) { os.WriteFile(p, []byte("records\n"), 0o600) }, ErrForeign, "not an SQLite database"},
		{"SQLite header, then garbage", func(t *testing.T, p string) {
			os.WriteFile(p, append([]byte(sqliteHeader), randomBytes(8192)...), 0o600)
		}, ErrCorrupt, ""},
		{"foreign SQLite database", func(t *testing.T, p string) {
			foreignFile(t, p, `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`, `INSERT INTO notes (body) VALUES ('hello')`)
		}, ErrForeign, "not shebao's schema_migrations"},
		{"SQLite database without tables", func(t *testing.T, p string) {
			foreignFile(t, p, `PRAGMA user_version = 7`)
		}, ErrForeign, "without tables"},
		{"no persons", func(t *testing.T, p string) {
			db, err := OpenForImport(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, ErrNoPersons, ""},
		{"a table missing", func(t *testing.T, p string) {
			os.Rename(importedFile(t, filepath.Dir(p)), p)
			rawExec(t, p, `DROP TABLE person_summary`)
		}, ErrCorrupt, "table person_summary is missing"},
		{"damaged pages", func(t *testing.T, p string) {
			os.Rename(importedFile(t, filepath.Dir(p)), p)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// Overwrite every page after the first (which holds the
			// schema) from its b-tree header on.
			for off := 4096; off+4096 <= len(b); off += 4096 {
				copy(b[off:off+64], randomBytes(64))
			}
			os.WriteFile(p, b, 0o600)
		}, ErrCorrupt, "malformed"},
		{"one damaged table", func(t *testing.T, p string) {
			os.Rename(importedFile(t, filepath.Dir(p)), p)
			root := rootPage(t, p, "contributions")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// Only the contributions table: the schema and the tables
			// read before quick_check are intact, and quick_check
			// finds it.
			off := (root - 1) * 4096
			copy(b[off:off+64], randomBytes(64))
			os.WriteFile(p, b, 0o600)
		}, ErrCorrupt, "quick_check"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "records.db")
			c.make(t, path)
			before, _ := os.ReadFile(path)
			beforeNames := dirNames(t, dir)
			db, err := Open(ctx, path)
			if err == nil {
				db.Close()
				t.Fatal("Open accepted the file")
			}
			t.Logf("%v", err)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open: %v, want %v", err, c.want)
			}
			var oe *OpenError
			if !errors.As(err, &oe) || oe.Path != path {
				t.Errorf("Open: %#v, want an *OpenError for %s", err, path)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.detail) || strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("message %q: want one line naming the file and %q", err, c.detail)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Error("Open changed the file")
			}
			if c.want == ErrMissing {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Open created %s: %v", path, err)
				}
				if n := dirNames(t, dir); len(n) != len(beforeNames) {
					t.Errorf("Open created files: %v", n)
				}
			}
		})
	}
}

func TestOpenInfo(t *testing.T) {
	path := importedFile(t, t.TempDir())
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in := db.Info()
	if in.Persons != 2 || in.Schema != 1 || in.Known != 1 || in.LastImport.IsZero() || in.Immutable {
		t.Errorf("Info = %+v", in)
	}
}

// An older file is not migrated by the bot, not even when it could be
// written: the message says what to run, and OpenForImport migrates it.
func TestOpenOldSchema(t *testing.T) {
	ctx := context.Background()
	path := importedFile(t, t.TempDir())
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	next := append(ms[:len(ms):len(ms)], migration{version: ms[len(ms)-1].version + 1, name: "9999_test.sql",
		sql: `CREATE TABLE extra (x INTEGER)`})
	before, _ := os.ReadFile(path)
	for _, immutable := range []bool{false, true} {
		var err error
		if immutable {
			_, err = openRead(ctx, path, next, true) // as on a read-only mount
		} else {
			_, err = open(ctx, path, next)
		}
		if !errors.Is(err, ErrOldSchema) || !strings.Contains(err.Error(), "schema version 1, this program needs 2") {
			t.Errorf("immutable=%v: %v, want ErrOldSchema naming both versions", immutable, err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the refused open changed the file")
	}
	w, err := openForImport(ctx, path, next)
	if err != nil {
		t.Fatal(err)
	}
	if w.Info().Schema != 2 {
		t.Errorf("after migrating: Info = %+v", w.Info())
	}
	w.Close()
	db, err := open(ctx, path, next)
	if err != nil {
		t.Fatalf("open after migrating: %v", err)
	}
	defer db.Close()
	if _, err := db.Person(ctx, idA); err != nil {
		t.Error(err)
	}
	// An older program reads a newer file, and says so in Info.
	old, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("older program, newer file: %v", err)
	}
	defer old.Close()
	if in := old.Info(); in.Schema != 2 || in.Known != 1 {
		t.Errorf("Info = %+v", in)
	}
}

// What the bot opens it cannot write, whatever the file's permissions.
func TestOpenNeverWrites(t *testing.T) {
	ctx := context.Background()
	path := importedFile(t, t.TempDir())
	before, _ := os.ReadFile(path)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Person(ctx, idA); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Import(ctx, ImportSources{Persons: file("persons.csv", personsHead+idC+",测试丙,13900003333,北京市,flexible,\n")}); err == nil {
		t.Error("Import through a reader succeeded")
	}
	if _, err := db.Person(ctx, idC); !errors.Is(err, ErrNotFound) {
		t.Errorf("person written through a reader: %v", err)
	}
	db.Close()
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the reader changed the file")
	}
}

// The bot sees what an import writes while it runs, without a restart.
func TestOpenSeesLaterImports(t *testing.T) {
	ctx := context.Background()
	w, path := openTemp(t)
	if _, err := w.Import(ctx, ImportSources{Persons: file("persons.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Person(ctx, idC); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before the import: %v", err)
	}
	if _, err := w.Import(ctx, ImportSources{Persons: file("persons.csv", personsHead+idC+",测试丙,13900003333,北京市,flexible,\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Person(ctx, idC); err != nil {
		t.Errorf("after the import: %v", err)
	}
}

// A record file in a folder the process cannot write (a read-only mount)
// opens: WAL mode needs a -shm file beside the database even to read, so
// Open falls back to SQLite's immutable=1, which needs nothing beside it.
func TestOpenReadOnlyFolder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := importedFile(t, dir)
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open in a read-only folder: %v", err)
	}
	defer db.Close()
	if _, err := db.Person(ctx, idA); err != nil {
		t.Errorf("read: %v", err)
	}
	if os.Geteuid() == 0 {
		// chmod does not stop root, so mode=ro could create its -shm
		// here; the immutable path is proved below instead.
		t.Log("running as root: the folder's permissions cannot be enforced; not asserting the fallback")
	} else {
		if !db.Info().Immutable {
			t.Error("opened without falling back to immutable: Info.Immutable is false")
		}
		if n := dirNames(t, dir); len(n) != 1 {
			t.Errorf("files beside the database: %v", n)
		}
	}

	// The immutable path itself, as root too: it reads the file and
	// creates nothing beside it, which is why it opens in a folder nobody
	// may write.
	dir2 := t.TempDir()
	path2 := importedFile(t, dir2)
	before := dirNames(t, dir2)
	im, err := openRead(ctx, path2, mustMigrations(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if _, err := im.Person(ctx, idA); err != nil {
		t.Errorf("immutable read: %v", err)
	}
	if !im.Info().Immutable || im.Info().Persons != 2 {
		t.Errorf("Info = %+v", im.Info())
	}
	if after := dirNames(t, dir2); len(after) != len(before) {
		t.Errorf("immutable open created files: %v, before %v", after, before)
	}
}

func mustMigrations(t *testing.T) []migration {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// A copy taken while changes wait in the -wal: immutable=1 would not see
// them, so in a read-only folder Open refuses the copy (ErrUnmerged) rather
// than serve it without them. Where -shm can be written, mode=ro reads the
// -wal and the copy is complete.
func TestOpenUnmergedWAL(t *testing.T) {
	ctx := context.Background()
	w, path := openTemp(t)
	if _, err := w.Import(ctx, ImportSources{Persons: file("persons.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("want changes in the -wal: %v", err)
	}
	dir := t.TempDir()
	cp := filepath.Join(dir, "records.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cp+suffix, b, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	// The file alone lacks the persons, which only the -wal holds.
	if _, err := openRead(ctx, cp, mustMigrations(t), true); err == nil {
		t.Fatal("immutable open of the file without its -wal found the persons")
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, cp)
		os.Chmod(dir, 0o755)
		if !errors.Is(err, ErrUnmerged) {
			t.Errorf("read-only folder with a full -wal: %v, want ErrUnmerged", err)
		}
	} else {
		t.Log("running as root: the folder's permissions cannot be enforced; not asserting ErrUnmerged")
	}
	db, err := Open(ctx, cp)
	if err != nil {
		t.Fatalf("writable folder: %v", err)
	}
	defer db.Close()
	if _, err := db.Person(ctx, idA); err != nil {
		t.Errorf("writable folder: %v", err)
	}
}

// After Checkpoint the record file alone is complete: the copy a replica
// opens read-only holds everything.
func TestCheckpointMakesTheFileComplete(t *testing.T) {
	ctx := context.Background()
	w, path := openTemp(t)
	if _, err := w.Import(ctx, ImportSources{Persons: file("persons.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Errorf("-wal holds %d bytes after Checkpoint", fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, b, 0o444); err != nil {
		t.Fatal(err)
	}
	im, err := openRead(ctx, cp, mustMigrations(t), true)
	if err != nil {
		t.Fatalf("copy of the file alone: %v", err)
	}
	defer im.Close()
	if _, err := im.Person(ctx, idB); err != nil {
		t.Error(err)
	}
}

func TestOpenForImportPermissions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "new.db")
	db, err := OpenForImport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Import(ctx, ImportSources{Persons: file("persons.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", filepath.Base(p), m)
		}
	}
	if db.Info().Tightened || db.Info().Mode != 0o600 {
		t.Errorf("new file: Info = %+v", db.Info())
	}
	db.Close()

	// An existing file readable by everybody: other users lose access,
	// the group keeps it.
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	db, err = OpenForImport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	fi, _ := os.Stat(path)
	if m := fi.Mode().Perm(); m != 0o660 || !db.Info().Tightened || db.Info().Mode != 0o660 {
		t.Errorf("existing 0664 file: mode %04o, Info %+v; want 0660, tightened", m, db.Info())
	}

	if _, err := OpenForImport(ctx, filepath.Join(dir, "no-such-folder", "records.db")); err == nil ||
		!strings.Contains(err.Error(), "create") {
		t.Errorf("file in a missing folder: %v", err)
	}
}

// Import never writes into another program's database, a damaged file or
// random bytes, and leaves each untouched.
func TestOpenForImportRefuses(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		make func(t *testing.T, path string)
		want error
	}{
		{"random bytes", func(t *testing.T, p string) { os.WriteFile(p, randomBytes(40<<10), 0o644) }, ErrForeign},
		{"foreign SQLite database", func(t *testing.T, p string) {
			foreignFile(t, p, `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`)
		}, ErrForeign},
		{"directory", func(t *testing.T, p string) { os.Mkdir(p, 0o755) }, ErrForeign},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "records.db")
			c.make(t, path)
			before, _ := os.ReadFile(path)
			fi, _ := os.Stat(path)
			db, err := OpenForImport(ctx, path)
			if err == nil {
				db.Close()
			}
			if !errors.Is(err, c.want) {
				t.Errorf("OpenForImport: %v, want %v", err, c.want)
			}
			after, _ := os.ReadFile(path)
			fi2, _ := os.Stat(path)
			if !bytes.Equal(before, after) || fi.Mode() != fi2.Mode() {
				t.Error("the refused file was changed")
			}
		})
	}
}
