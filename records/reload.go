package records

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed: Reload was called on a closed DB.
var ErrClosed = errors.New("records: database closed")

// Reload opens the record file at path with every check Open makes and,
// when it passes them and accept (nil accepts any), serves it from now on
// in place of the current file. Calls that start afterwards read the new
// file; calls in flight, and contexts held with Hold, finish on the old
// one, which is closed after the last of them. On a refusal nothing
// changes: the current file keeps serving, and the error says why (an
// *OpenError as from Open, or accept's error as it returned it).
//
// accept sees what opening found in the current file and in the new one,
// so the caller can refuse a file that passes the checks but looks like a
// mistake (one that lists far fewer persons, say).
func (db *DB) Reload(ctx context.Context, path string, accept func(cur, next Info) error) (Info, error) {
	next, err := Open(ctx, path)
	if err != nil {
		return Info{}, err
	}
	nh := next.cur // next is dropped: its handle moves to db
	if accept != nil {
		if err := accept(db.Info(), nh.info); err != nil {
			nh.put()
			return Info{}, err
		}
	}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		nh.put()
		return Info{}, ErrClosed
	}
	old := db.cur
	db.cur = nh
	db.mu.Unlock()
	old.put()
	return nh.info, nil
}

// heldKey is the context key of the file a Hold pinned for db.
type heldKey struct{ db *DB }

// Hold pins the file db serves now to the returned context: every call
// made with it, or a context derived from it, reads that file even if
// Reload replaces it meanwhile, so that one conversation turn sees one
// file and its file is not closed under it. release lets go of the file;
// it must be called, and may be called more than once.
func (db *DB) Hold(ctx context.Context) (held context.Context, release func()) {
	if _, ok := ctx.Value(heldKey{db}).(*handle); ok {
		return ctx, func() {} // already held further up
	}
	h := db.get(ctx)
	var once sync.Once
	return context.WithValue(ctx, heldKey{db}, h), func() { once.Do(func() { h.put() }) }
}
