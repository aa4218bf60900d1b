package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/records"
)

// defaultRecordsPoll is RECORDS_POLL_INTERVAL's default: how often serve
// looks whether RECORDS_DB names a new file. A stat is all it costs.
const defaultRecordsPoll = 10 * time.Second

// errShrunk refuses a new records file that lists fewer than half the
// persons of the one being served.
var errShrunk = errors.New("far fewer persons than the file being served")

// recordsWatch puts a new RECORDS_DB in service while serve runs: on
// SIGHUP, or when the path names another file (shebao import renames a
// new one into place) or the file changed. The new file must pass every
// check serve makes at start (records.Open) and must not list fewer than
// half the persons of the one serving, which looks like a mistake (a
// partial or test export) that would tell verified users they are not on
// record; a refused file is logged and the current one keeps serving.
// Turns in flight finish on the file they started with (heldRecords).
type recordsWatch struct {
	db    *records.DB
	path  string
	log   *slog.Logger
	every time.Duration // 0: on SIGHUP only
	count func(result string)

	serving fs.FileInfo // what the path named when the serving file was opened
	refused fs.FileInfo // the last file refused, not tried again until it changes
	gone    bool        // the path names nothing; logged once
}

// watchRecords runs the records watch of serve in g until ctx ends; stop
// undoes its SIGHUP handler. With the demo records there is nothing to
// reload, and SIGHUP only says so (rather than ending the process, its
// default).
func watchRecords(ctx context.Context, g *errgroup.Group, c config, db *records.DB, log *slog.Logger, count func(string)) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if c.RecordsDB == "" {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-hup:
					log.Info("SIGHUP: RECORDS_DB is not set, so there is no records file to reload")
				}
			}
		})
	} else {
		w := newRecordsWatch(db, c.RecordsDB, c.RecordsPoll, log, count)
		g.Go(func() error { return w.run(ctx, hup) })
	}
	return func() { signal.Stop(hup) }
}

func newRecordsWatch(db *records.DB, path string, every time.Duration, log *slog.Logger, count func(string)) *recordsWatch {
	w := &recordsWatch{db: db, path: path, log: log, every: every, count: count}
	if count == nil {
		w.count = func(string) {}
	}
	// Stat after Open: should a new file arrive between the two, the
	// first poll just reloads it once more.
	w.serving, _ = os.Stat(path)
	return w
}

// run reloads on each value from hup and, every w.every, when the file
// changed, until ctx ends.
func (w *recordsWatch) run(ctx context.Context, hup <-chan os.Signal) error {
	var tick <-chan time.Time
	if w.every > 0 {
		t := time.NewTicker(w.every)
		defer t.Stop()
		tick = t.C
	}
	w.log.Info("records are reloaded on SIGHUP and when RECORDS_DB names a new file", "path", w.path, "poll", w.every.String())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			w.check(ctx, true)
		case <-tick:
			w.check(ctx, false)
		}
	}
}

// check reloads when asked to (force), or when the path names a file other
// than the one serving and the one last refused.
func (w *recordsWatch) check(ctx context.Context, force bool) {
	fi, err := os.Stat(w.path)
	if err != nil {
		if !w.gone || force {
			w.log.Warn("records file cannot be read; still serving the one opened before", "path", w.path, "err", err)
		}
		w.gone = true
		return
	}
	w.gone = false
	if !force && (same(fi, w.serving) || same(fi, w.refused)) {
		return
	}
	if !force && w.serving != nil && os.SameFile(fi, w.serving) {
		// The same file, written in place: readers may have seen it torn.
		w.log.Warn("records file changed in place; publish a new file with shebao import, or copy it to a temporary name and mv it over the old one", "path", w.path)
	}
	w.reload(ctx, fi)
}

// reload opens the file fi describes and serves it if it passes.
func (w *recordsWatch) reload(ctx context.Context, fi fs.FileInfo) {
	start := time.Now()
	prev := w.db.Info()
	in, err := w.db.Reload(ctx, w.path, acceptRecords)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		w.refused = fi
		w.count("refused")
		attrs := []any{"path", w.path, "err", err}
		if hint := recordsHint(err); hint != "" {
			attrs = append(attrs, "hint", hint)
		}
		w.log.Error("new records file refused; still serving the previous one", attrs...)
		return
	}
	w.serving, w.refused = fi, nil
	w.count("reloaded")
	attrs := []any{"path", w.path, "persons", in.Persons, "previous_persons", prev.Persons, "schema", in.Schema,
		"immutable", in.Immutable, "took", time.Since(start).Round(time.Millisecond).String()}
	if !in.LastImport.IsZero() {
		attrs = append(attrs, "last_import", in.LastImport.Format(time.RFC3339))
	}
	w.log.Info("records reloaded", attrs...)
	if in.Schema > in.Known {
		w.log.Warn("records file was migrated by a newer shebao; upgrade this one", "schema", in.Schema, "known", in.Known)
	}
}

// acceptRecords refuses a new file listing fewer than half the persons of
// the one serving: passed, every verified user missing from it would be
// told they are not on record. A restart serves it anyway.
func acceptRecords(cur, next records.Info) error {
	if 2*next.Persons < cur.Persons {
		return fmt.Errorf("%w: the new file lists %d, the one serving %d; if that is right, restart serve to serve it",
			errShrunk, next.Persons, cur.Persons)
	}
	return nil
}

// same reports whether a and b describe the same file, unchanged.
func same(a, b fs.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// heldRecords runs each turn on one records file: a reload meanwhile
// leaves the turn on the file it started with, which stays open until the
// turn returns.
type heldRecords struct {
	db   *records.DB
	next bot.Handler
}

func (h heldRecords) Handle(ctx context.Context, m bot.Message) ([]bot.Reply, error) {
	ctx, release := h.db.Hold(ctx)
	defer release()
	return h.next.Handle(ctx, m)
}

// turnHandler is the handler every channel of serve and web is given:
// next timed, each turn held on one records file.
func turnHandler(db *records.DB, next bot.Handler, hist prometheus.Histogram) bot.Handler {
	return timed{next: heldRecords{db: db, next: next}, hist: hist}
}
