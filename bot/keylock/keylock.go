// Package keylock serialises work per key inside one process: the
// handling of one Telegram chat, one web chat session. Locks exist only
// while someone holds or waits for them.
package keylock

import (
	"context"
	"sync"
)

// Locks is a set of locks by key; the zero value is ready to use.
type Locks[K comparable] struct {
	mu sync.Mutex
	m  map[K]*entry
}

type entry struct {
	ch   chan struct{}
	refs int
}

// Lock waits until key is free or ctx ends, and returns the function that
// frees it again.
func (l *Locks[K]) Lock(ctx context.Context, key K) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[K]*entry)
	}
	c := l.m[key]
	if c == nil {
		c = &entry{ch: make(chan struct{}, 1)}
		l.m[key] = c
	}
	c.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if c.refs--; c.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case c.ch <- struct{}{}:
		return func() { <-c.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// Len is the number of keys held or waited for.
func (l *Locks[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
