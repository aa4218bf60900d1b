package records

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// Draft is the next version of a record file, being written for `shebao
// import`: a copy of the file at the target path (or a new, empty file when
// there is none) under a temporary name in the same folder. Import into it,
// then Publish puts it in the target's place with one rename, or Discard
// throws it away. Until Publish the target is untouched: an import that is
// refused, fails or is killed leaves it as it was, and a bot serving the
// target never sees a half-written file; after Publish it reads the new
// file once it opens the path again (see DB.Reload).
//
// While a Draft is open, OpenDraft for a file in the same folder waits:
// two imports must not both copy the same file, or the second rename would
// drop the first one's rows.
//
// The published file uses SQLite's rollback journal, not WAL: a reader
// needs nothing beside it (no -wal or -shm), so it can be read from a
// read-only folder or volume by any number of replicas, and it is complete
// on its own, so a plain copy of it is a good copy.
type Draft struct {
	*DB
	path   string // the target, symlinks resolved
	tmp    string
	unlock func()
	done   bool
	// Notes are what the operator should know about the new file (an
	// owner that could not be kept); empty when nothing.
	Notes []string
}

// draftPrefix starts the temporary name of a Draft of file base: a dot
// file beside it, which a crashed import leaves behind and the next
// OpenDraft of the folder removes.
func draftPrefix(base string) string { return "." + base + ".import-" }

// OpenDraft starts the next version of the record file at path. It refuses
// what OpenForImport refuses (a file that is not a records file, or is
// damaged) and fails when the folder cannot be written. A missing or empty
// target yields an empty draft; otherwise the draft is a consistent copy
// of it (through SQLite, so changes waiting in a -wal are in it), migrated
// to this program's schema. The copy keeps the target's permissions except
// other users' (Info.Tightened says if any were removed), and its owner
// and group where the process may set them.
//
// waiting, when not nil, is called once if another import of the folder
// must finish first; OpenDraft waits for it until ctx ends.
func OpenDraft(ctx context.Context, path string, waiting func()) (_ *Draft, err error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	rules, err := loadRules()
	if err != nil {
		return nil, err
	}
	target := path
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// Publish replaces the file the link points to, not the link.
		if target, err = filepath.EvalSymlinks(path); err != nil {
			return nil, &OpenError{Path: path, Err: unwrapPath(err), Detail: "a symbolic link that leads nowhere"}
		}
	}
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	unlock, err := lockDir(ctx, dir, waiting)
	if err != nil {
		return nil, &OpenError{Path: path, Err: fmt.Errorf("lock folder %s against other imports: %w", dir, err)}
	}
	d := &Draft{path: target, unlock: unlock}
	defer func() {
		if err != nil {
			d.remove()
			unlock()
		}
	}()
	removeStaleDrafts(dir, base)

	fi, statErr := os.Stat(target)
	switch {
	case errors.Is(statErr, fs.ErrNotExist):
	case statErr != nil:
		return nil, &OpenError{Path: path, Err: unwrapPath(statErr)}
	default:
		if err := checkFile(target, true); err != nil {
			return nil, err
		}
	}
	f, err := os.CreateTemp(dir, draftPrefix(base)+"*") // mode 0600
	if err != nil {
		return nil, &OpenError{Path: path, Err: fmt.Errorf("create the new file in %s: %w", dir, unwrapPath(err))}
	}
	d.tmp = f.Name()
	f.Close()

	info := Info{Known: ms[len(ms)-1].version, Mode: 0o600}
	if statErr == nil && fi.Size() > 0 {
		if info, err = copyInto(ctx, target, d.tmp, ms); err != nil {
			return nil, err
		}
		perm := fi.Mode().Perm()
		info.Mode, info.Tightened = perm&^0o007, perm&0o007 != 0
		if err := os.Chmod(d.tmp, info.Mode); err != nil {
			return nil, &OpenError{Path: path, Err: fmt.Errorf("set the new file's mode: %w", unwrapPath(err))}
		}
		if note := keepOwner(fi, d.tmp); note != "" {
			d.Notes = append(d.Notes, note)
		}
	}
	sdb, err := sql.Open("sqlite", fileDSN(d.tmp))
	if err != nil {
		return nil, &OpenError{Path: path, Err: err}
	}
	if err := migrate(ctx, sdb, ms); err != nil {
		sdb.Close()
		return nil, &OpenError{Path: path, Err: err}
	}
	info.Schema = max(info.Schema, info.Known)
	d.DB = &DB{cur: newHandle(sdb, info), rules: rules, now: time.Now}
	return d, nil
}

// copyInto checks the record file at src as OpenForImport does and copies
// it into dst with SQLite's backup API, which reads one consistent
// snapshot, -wal included.
func copyInto(ctx context.Context, src, dst string, ms []migration) (Info, error) {
	rdb, err := sql.Open("sqlite", readDSN(src, false))
	if err != nil {
		return Info{}, &OpenError{Path: src, Err: err}
	}
	defer rdb.Close()
	info, err := inspect(ctx, rdb, src, ms, true)
	if err != nil {
		return Info{}, err
	}
	conn, err := rdb.Conn(ctx)
	if err != nil {
		return Info{}, &OpenError{Path: src, Err: fmt.Errorf("copy: %w", err)}
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		b, ok := dc.(interface {
			NewBackup(dstURI string) (*sqlite.Backup, error)
		})
		if !ok {
			return errors.New("the SQLite driver has no backup API")
		}
		bk, err := b.NewBackup(dst)
		if err != nil {
			return err
		}
		for {
			// 4096 pages (16 MiB) a step: ctx is looked at between steps.
			more, err := bk.Step(4096)
			if err == nil && more && ctx.Err() != nil {
				err = ctx.Err()
			}
			if err != nil {
				bk.Finish()
				return err
			}
			if !more {
				return bk.Finish()
			}
		}
	})
	if err != nil {
		return Info{}, &OpenError{Path: src, Err: fmt.Errorf("copy into %s: %w", filepath.Base(dst), err)}
	}
	return info, nil
}

// Publish puts the draft in the target's place: it merges the draft's
// -wal, switches it to the rollback journal, flushes it to disk, renames
// it over the target and flushes the folder, so that after a crash the
// path names either the old file or the whole new one. Leftovers of the
// old file's journal (-wal, -shm, -journal) are removed: they describe the
// old file and SQLite would apply them to the new one. The draft is
// closed afterwards, whether or not Publish succeeded; on failure the
// target is as it was.
func (d *Draft) Publish(ctx context.Context) error {
	if d.done {
		return errors.New("publish records: draft already published or discarded")
	}
	defer d.Discard()
	if err := d.Checkpoint(ctx); err != nil {
		return fmt.Errorf("publish records: %w", err)
	}
	if err := d.DB.Close(); err != nil {
		return fmt.Errorf("publish records: close the new file: %w", err)
	}
	if err := rollbackJournal(ctx, d.tmp); err != nil {
		return fmt.Errorf("publish records: %w", err)
	}
	if err := syncPath(d.tmp); err != nil {
		return fmt.Errorf("publish records: flush the new file: %w", err)
	}
	if err := os.Rename(d.tmp, d.path); err != nil {
		return fmt.Errorf("publish records: %w", err)
	}
	d.tmp = ""
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(d.path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("publish records: remove the old file's %s: %w", suffix, err)
		}
	}
	if err := syncPath(filepath.Dir(d.path)); err != nil {
		return fmt.Errorf("publish records: flush the folder: %w", err)
	}
	return nil
}

// Discard closes the draft and removes its file; the target stays as it
// was. It does nothing after Publish.
func (d *Draft) Discard() {
	if d.done {
		return
	}
	d.done = true
	if d.DB != nil {
		d.DB.Close()
	}
	d.remove()
	d.unlock()
}

// remove deletes the draft's file and whatever SQLite kept beside it.
func (d *Draft) remove() {
	if d.tmp == "" {
		return
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(d.tmp + suffix)
	}
}

// removeStaleDrafts deletes the drafts of base that an import killed
// midway left in dir. The folder lock is held, so none is in use.
func removeStaleDrafts(dir, base string) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range es {
		if strings.HasPrefix(e.Name(), draftPrefix(base)) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// rollbackJournal switches the file from WAL to SQLite's rollback journal
// ("delete" mode). It must be the only connection to the file.
func rollbackJournal(ctx context.Context, path string) error {
	sdb, err := sql.Open("sqlite", "file:"+escapePath(path)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer sdb.Close()
	var mode string
	if err := sdb.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode); err != nil {
		return fmt.Errorf("switch to the rollback journal: %w", err)
	}
	if mode != "delete" {
		return fmt.Errorf("switch to the rollback journal: journal mode is still %q", mode)
	}
	return sdb.Close()
}

// syncPath flushes a file or a folder to disk.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
