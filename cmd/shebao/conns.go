package main

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimit is a listener that keeps at most max connections open, so that
// no number of clients can take the process to its file limit or make it
// hold memory per connection without bound.
//
// A connection over the cap takes the slot of one that is doing nothing
// useful: first the one idle the longest on keep-alive, else the oldest
// still on its first request header after headerGrace (a client that
// means it sends a header in one go). When none qualifies (every slot
// serves a request, or the stalled ones are younger than headerGrace),
// Accept waits for one to end or to age, and newcomers wait in the
// kernel's accept queue, unread; beyond that queue the kernel drops their
// SYNs and clients retry. Holding every slot therefore takes as many
// requests in progress, each bounded by the server's deadlines, or fresh
// connections at max per headerGrace: that is the residual exposure, it
// delays (not refuses) other clients, and it ends with the attack. Limits
// per client address belong to the proxy in front.
//
// Its track method must be the http.Server's ConnState hook: that is how
// it learns which connections are idle.
type connLimit struct {
	net.Listener
	max         int
	headerGrace time.Duration
	now         func() time.Time

	mu    sync.Mutex
	open  int
	idle  list.List // of *limitedConn, idle the longest first
	fresh list.List // of *limitedConn still on their first request, oldest first

	changed chan struct{} // a slot was freed or a connection went idle
	done    chan struct{} // closed by Close
	once    sync.Once

	shedIdle, shedSlow atomic.Int64
}

func newConnLimit(ln net.Listener, max int, headerGrace time.Duration) *connLimit {
	return &connLimit{
		Listener: ln, max: max, headerGrace: headerGrace, now: time.Now,
		changed: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// limitedConn is a connection holding one slot until it is closed.
type limitedConn struct {
	net.Conn
	l      *connLimit
	since  time.Time     // accepted, or went idle
	in     *list.List    // idle, fresh or nil
	elem   *list.Element // its element in in
	closed bool          // its slot is free; never listed again
	once   sync.Once
}

// Close frees the slot and closes the connection; later calls do nothing.
func (c *limitedConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.l.release(c)
		err = c.Conn.Close()
	})
	return err
}

// Accept accepts a connection and gives it a slot, making room or waiting
// for one when all are taken.
func (l *connLimit) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			lc := &limitedConn{Conn: c, l: l, since: l.now()}
			l.attachLocked(lc, &l.fresh)
			l.mu.Unlock()
			return lc, nil
		}
		victim, wait := l.victimLocked()
		l.mu.Unlock()
		if victim != nil {
			victim.Close() // frees its slot before returning
			continue
		}
		if !l.wait(wait) {
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// wait blocks until a slot may have freed, d passes (0: no limit) or the
// listener is closed; it reports false for the last.
func (l *connLimit) wait(d time.Duration) bool {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-l.changed:
	case <-timeout:
	case <-l.done:
		return false
	}
	return true
}

// victimLocked picks the connection to shed for a newcomer and detaches
// it, or says how long until the oldest fresh one may be shed (0: wait
// for a change).
func (l *connLimit) victimLocked() (*limitedConn, time.Duration) {
	if e := l.idle.Front(); e != nil {
		c := e.Value.(*limitedConn)
		l.detachLocked(c)
		l.shedIdle.Add(1)
		return c, 0
	}
	if e := l.fresh.Front(); e != nil {
		c := e.Value.(*limitedConn)
		if age := l.now().Sub(c.since); age < l.headerGrace {
			return nil, l.headerGrace - age
		}
		l.detachLocked(c)
		l.shedSlow.Add(1)
		return c, 0
	}
	return nil, 0
}

// track is the http.Server's ConnState hook.
func (l *connLimit) track(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*limitedConn)
	if !ok || c.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateIdle:
		c.since = l.now()
		l.attachLocked(c, &l.idle)
		l.notify()
	case http.StateActive, http.StateHijacked, http.StateClosed:
		// Serving a request (not to be shed), or gone.
		l.detachLocked(c)
	}
}

func (l *connLimit) attachLocked(c *limitedConn, to *list.List) {
	l.detachLocked(c)
	if !c.closed {
		c.in, c.elem = to, to.PushBack(c)
	}
}

func (l *connLimit) detachLocked(c *limitedConn) {
	if c.in != nil {
		c.in.Remove(c.elem)
		c.in, c.elem = nil, nil
	}
}

func (l *connLimit) release(c *limitedConn) {
	l.mu.Lock()
	l.detachLocked(c)
	c.closed = true
	l.open--
	l.mu.Unlock()
	l.notify()
}

func (l *connLimit) notify() {
	select {
	case l.changed <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Close stops Accept, including one waiting for a slot. Connections
// already accepted stay open; the http.Server closes them.
func (l *connLimit) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open is the number of connections holding a slot, for metrics.
func (l *connLimit) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Shed counts the connections closed to make room, by reason.
func (l *connLimit) Shed() (idle, slowHeader int64) { return l.shedIdle.Load(), l.shedSlow.Load() }
