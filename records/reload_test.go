package records

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// twoFiles publishes a records file with goodPersons (idA, idB) at path,
// and a second one with idC only at next.
func twoFiles(t *testing.T) (path, next string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "records.db")
	draftImport(t, path, ImportSources{Persons: file("p.csv", goodPersons())})
	next = filepath.Join(dir, "next.db")
	draftImport(t, next, ImportSources{Persons: file("p.csv", personsHead+idC+",测试丙,13900003333,北京市,flexible,\n")})
	return path, next
}

// Reload serves the new file from the next call on, while a turn that
// held the old one finishes on it; the old file is closed after that.
func TestReloadSwapsAfterHolders(t *testing.T) {
	ctx := context.Background()
	path, next := twoFiles(t)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := db.cur
	held, release := db.Hold(ctx)
	in, err := db.Reload(ctx, next, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.Persons != 1 || db.Info().Persons != 1 {
		t.Errorf("info after reload %+v / %+v, want the new file's one person", in, db.Info())
	}
	if got := personsOf(t, db, ctx, idA, idB, idC); len(got) != 1 || got[0] != idC {
		t.Errorf("new calls find %v, want the new file's person", got)
	}
	if got := personsOf(t, db, held, idA, idB, idC); len(got) != 2 {
		t.Errorf("the held turn finds %v, want the old file's two persons", got)
	}
	inner, innerRelease := db.Hold(held) // nested: still the old file
	if got := personsOf(t, db, inner, idA); len(got) != 1 {
		t.Error("a nested hold moved to the new file")
	}
	innerRelease()
	if err := old.sql.PingContext(ctx); err != nil {
		t.Fatalf("the old file was closed while a turn held it: %v", err)
	}
	release()
	release() // twice is harmless
	if err := old.sql.PingContext(ctx); err == nil {
		t.Error("the old file is still open after its last holder let go")
	}
	if err := db.Ping(ctx); err != nil {
		t.Errorf("ping after reload: %v", err)
	}
}

// A file that fails Open's checks, or the caller's, is refused and the
// current one keeps serving.
func TestReloadRefusals(t *testing.T) {
	ctx := context.Background()
	path, next := twoFiles(t)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, append([]byte(sqliteHeader), randomBytes(8192)...), 0o600)
	for _, c := range []struct {
		path string
		want error
	}{
		{bad, ErrCorrupt},
		{filepath.Join(t.TempDir(), "missing.db"), ErrMissing},
	} {
		if _, err := db.Reload(ctx, c.path, nil); !errors.Is(err, c.want) {
			t.Errorf("reload of %s: %v, want %v", filepath.Base(c.path), err, c.want)
		}
	}
	shrunk := errors.New("too few persons")
	var saw [2]Info
	if _, err := db.Reload(ctx, next, func(cur, nxt Info) error { saw = [2]Info{cur, nxt}; return shrunk }); !errors.Is(err, shrunk) {
		t.Errorf("reload refused by accept: %v", err)
	}
	if saw[0].Persons != 2 || saw[1].Persons != 1 {
		t.Errorf("accept saw %+v", saw)
	}
	if got := personsOf(t, db, ctx, idA, idB, idC); len(got) != 2 || db.Info().Persons != 2 {
		t.Errorf("after refusals the DB finds %v, want the first file's two persons", got)
	}
	db.Close()
	if _, err := db.Reload(ctx, next, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("reload of a closed DB: %v", err)
	}
	if _, err := db.Person(ctx, idA); err == nil {
		t.Error("a closed DB still answers")
	}
}

// Calls running while files are swapped again and again never fail: each
// runs on a file that stays open until it returns.
func TestReloadUnderLoad(t *testing.T) {
	ctx := context.Background()
	path, next := twoFiles(t)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stop atomic.Bool
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				for _, id := range []string{idA, idC} {
					if _, err := db.Contributions(ctx, id, Month{}, Month{}); err != nil && !errors.Is(err, ErrNotFound) {
						failures.Add(1)
						t.Error(err)
					}
				}
				held, release := db.Hold(ctx)
				if err := db.Ping(held); err != nil {
					failures.Add(1)
					t.Error(err)
				}
				release()
			}
		})
	}
	for i := range 20 {
		p := next
		if i%2 == 1 {
			p = path
		}
		if _, err := db.Reload(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d calls failed during reloads", n)
	}
}
