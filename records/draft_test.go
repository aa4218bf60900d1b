package records

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// draftImport runs one import the way `shebao import` does: a draft of
// path, the files imported into it, published.
func draftImport(t *testing.T, path string, src ImportSources) {
	t.Helper()
	ctx := context.Background()
	d, err := OpenDraft(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.now = func() time.Time { return testNow }
	if _, err := d.Import(ctx, src); err != nil {
		d.Discard()
		t.Fatal(err)
	}
	if err := d.Publish(ctx); err != nil {
		t.Fatal(err)
	}
}

// journalMode reads the file format's write and read versions (header
// bytes 18 and 19): 1 for the rollback journal, 2 for WAL.
func journalMode(t *testing.T, path string) (write, read byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[18], b[19]
}

func personsOf(t *testing.T, db *DB, ctx context.Context, ids ...string) []string {
	t.Helper()
	var found []string
	for _, id := range ids {
		_, err := db.Person(ctx, id)
		switch {
		case err == nil:
			found = append(found, id)
		case !errors.Is(err, ErrNotFound):
			t.Fatalf("person: %v", err)
		}
	}
	return found
}

// A new file is published whole, complete on its own (rollback journal,
// nothing beside it), 0600, and opens as a reader does.
func TestDraftNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "records.db")
	draftImport(t, path, ImportSources{Persons: file("p.csv", goodPersons()), Contributions: file("c.csv", goodContribs())})
	if got := dirNames(t, dir); !slices.Equal(got, []string{"records.db"}) {
		t.Errorf("folder holds %v, want the records file alone", got)
	}
	if w, r := journalMode(t, path); w != 1 || r != 1 {
		t.Errorf("file format versions %d/%d, want 1/1 (rollback journal: no -wal or -shm needed to read it)", w, r)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if in := db.Info(); in.Persons != 2 || in.Immutable {
		t.Errorf("info %+v: want 2 persons, not immutable", in)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"records.db"}) {
		t.Errorf("a reader wrote beside the file: %v", got)
	}
}

// An import into an existing file adds to a copy; the file being served is
// the old one, byte for byte, until the rename, and its readers keep
// reading it afterwards until they reload.
func TestDraftLeavesTheServedFileAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "records.db")
	draftImport(t, path, ImportSources{Persons: file("p.csv", goodPersons())})
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	d, err := OpenDraft(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Import(ctx, ImportSources{Persons: file("p2.csv", personsHead+idC+",测试丙,13900003333,北京市,flexible,\n")}); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, before) {
		t.Error("the import wrote into the served file before publishing")
	}
	if got := personsOf(t, reader, ctx, idA, idB, idC); len(got) != 2 {
		t.Errorf("reader sees %d persons before publishing, want 2", len(got))
	}
	if err := d.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	if got := personsOf(t, reader, ctx, idA, idB, idC); len(got) != 2 {
		t.Errorf("reader of the old file sees %d persons after publishing, want the old file's 2", len(got))
	}
	fresh, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got := personsOf(t, fresh, ctx, idA, idB, idC); len(got) != 3 {
		t.Errorf("the new file lists %d persons, want 3 (the old two and the new one)", len(got))
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"records.db"}) {
		t.Errorf("folder holds %v after publishing, want the records file alone", got)
	}
}

// A refused or abandoned import leaves the target exactly as it was and
// nothing beside it; a draft that a killed import left is swept up by the
// next one.
func TestDraftDiscard(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "records.db")
	draftImport(t, path, ImportSources{Persons: file("p.csv", goodPersons())})
	before, _ := os.ReadFile(path)

	d, err := OpenDraft(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ie *ImportError
	if _, err := d.Import(ctx, ImportSources{Persons: file("bad.csv", "id_number,name\n")}); !errors.As(err, &ie) {
		t.Fatalf("bad import: %v", err)
	}
	d.Discard()
	d.Discard() // twice is harmless
	if err := d.Publish(ctx); err == nil {
		t.Error("a discarded draft was published")
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, before) {
		t.Error("a discarded draft changed the target")
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"records.db"}) {
		t.Errorf("folder holds %v after a discard", got)
	}

	// What an import killed midway leaves.
	stale := filepath.Join(dir, draftPrefix("records.db")+"12345")
	os.WriteFile(stale, []byte("half a copy"), 0o600)
	os.WriteFile(stale+"-wal", []byte("x"), 0o600)
	other := filepath.Join(dir, draftPrefix("other.db")+"1")
	os.WriteFile(other, nil, 0o600)
	draftImport(t, path, ImportSources{Persons: file("p.csv", goodPersons())})
	if got := dirNames(t, dir); !slices.Equal(got, []string{filepath.Base(other), "records.db"}) {
		t.Errorf("folder holds %v: want the stale drafts of records.db swept up, another file's left alone", got)
	}

	// A draft of a missing file that is discarded creates nothing.
	missing := filepath.Join(t.TempDir(), "new.db")
	d, err = OpenDraft(ctx, missing, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Discard()
	if got := dirNames(t, filepath.Dir(missing)); len(got) != 0 {
		t.Errorf("discarding a new file's draft left %v", got)
	}
}

// Two imports of one folder run one after the other: the second copies
// what the first published, so neither loses the other's rows.
func TestDraftsQueue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "records.db")
	draftImport(t, path, ImportSources{Persons: file("p.csv", personsHead+idA+",测试甲,13900001111,北京市,employee,\n")})

	first, err := OpenDraft(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Import(ctx, ImportSources{Persons: file("b.csv", personsHead+idB+",测试乙,13900002222,北京市,employee,\n")}); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	var wg sync.WaitGroup
	var second error
	wg.Go(func() {
		d, err := OpenDraft(ctx, path, func() { close(waited) })
		if err != nil {
			second = err
			return
		}
		if _, err := d.Import(ctx, ImportSources{Persons: file("c.csv", personsHead+idC+",测试丙,13900003333,北京市,employee,\n")}); err != nil {
			d.Discard()
			second = err
			return
		}
		second = d.Publish(ctx)
	})
	<-waited // the second import is waiting for the first
	if err := first.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if second != nil {
		t.Fatal(second)
	}
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := personsOf(t, db, ctx, idA, idB, idC); len(got) != 3 {
		t.Errorf("after two queued imports the file lists %d persons, want 3", len(got))
	}

	// A wait ends with its context.
	held, err := OpenDraft(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Discard()
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := OpenDraft(cctx, path, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("OpenDraft while another import holds the folder, context ending: %v", err)
	}
}

// A file an older release wrote (WAL, changes still waiting in its -wal):
// the draft copies them, and the published file leaves no old -wal or -shm
// beside it for SQLite to apply to the new one.
func TestDraftOfWALFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "records.db")
	w, err := OpenForImport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Import(ctx, ImportSources{Persons: file("p.csv", goodPersons())}); err != nil {
		t.Fatal(err)
	}
	// w stays open, so its rows wait in records.db-wal.
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no waiting -wal to test with: %v", err)
	}
	draftImport(t, path, ImportSources{Persons: file("p2.csv", personsHead+idC+",测试丙,13900003333,北京市,flexible,\n")})
	w.Close()
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); err == nil {
			t.Errorf("the old file's %s is still beside the new file", suffix)
		}
	}
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := personsOf(t, db, ctx, idA, idB, idC); len(got) != 3 {
		t.Errorf("new file lists %d persons, want 3: the rows waiting in the old -wal are lost", len(got))
	}
}

// The new file keeps the old one's permissions, except other users'.
func TestDraftPermissions(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		old, want os.FileMode
		tightened bool
	}{{0o600, 0o600, false}, {0o640, 0o640, false}, {0o644, 0o640, true}, {0o666, 0o660, true}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "records.db")
		draftImport(t, path, ImportSources{Persons: file("p.csv", goodPersons())})
		if err := os.Chmod(path, c.old); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDraft(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if in := d.Info(); in.Mode != c.want || in.Tightened != c.tightened {
			t.Errorf("old %04o: info mode %04o tightened %v, want %04o %v", c.old, in.Mode, in.Tightened, c.want, c.tightened)
		}
		if len(d.Notes) != 0 {
			t.Errorf("notes %v, want none (same owner)", d.Notes)
		}
		if err := d.Publish(ctx); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != c.want {
			t.Errorf("old %04o: published %04o, want %04o", c.old, fi.Mode().Perm(), c.want)
		}
	}
}

// A link to the records file stays a link: the file it leads to is
// replaced.
func TestDraftThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "v1", "records.db")
	os.Mkdir(filepath.Dir(real), 0o755)
	draftImport(t, real, ImportSources{Persons: file("p.csv", goodPersons())})
	link := filepath.Join(dir, "records.db")
	if err := os.Symlink(real, link); err != nil {
		t.Skip("no symlinks here:", err)
	}
	draftImport(t, link, ImportSources{Persons: file("p2.csv", personsHead+idC+",测试丙,13900003333,北京市,flexible,\n")})
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file: %v", err)
	}
	db, err := Open(context.Background(), real)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := personsOf(t, db, context.Background(), idA, idB, idC); len(got) != 3 {
		t.Errorf("the file behind the link lists %d persons, want 3", len(got))
	}
}

// A draft is never made of something that is not a records file, and the
// thing is left alone.
func TestDraftRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	foreign := filepath.Join(dir, "foreign.db")
	foreignFile(t, foreign, `CREATE TABLE notes (body TEXT)`)
	damaged := filepath.Join(dir, "damaged.db")
	os.WriteFile(damaged, append([]byte(sqliteHeader), randomBytes(8192)...), 0o600)
	for path, want := range map[string]error{foreign: ErrForeign, damaged: ErrCorrupt} {
		before, _ := os.ReadFile(path)
		d, err := OpenDraft(ctx, path, nil)
		if err == nil {
			d.Discard()
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", filepath.Base(path), err, want)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Errorf("%s changed", filepath.Base(path))
		}
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"damaged.db", "foreign.db"}) {
		t.Errorf("refused drafts left %v", got)
	}
	if os.Geteuid() != 0 {
		ro := t.TempDir()
		os.Chmod(ro, 0o555)
		defer os.Chmod(ro, 0o755)
		if _, err := OpenDraft(ctx, filepath.Join(ro, "records.db"), nil); err == nil || !strings.Contains(err.Error(), "create the new file") {
			t.Errorf("draft in a read-only folder: %v", err)
		}
	}
}
