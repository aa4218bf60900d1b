package telegram

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// apiGate is a circuit breaker in front of the Bot API, shared by every
// call of one adapter. While the API fails (5xx, timeouts, no connection)
// it is open: one call at a time, the probe, tries again after a backoff
// that doubles up to a cap, with jitter, and every other call waits for
// the probe instead of trying itself. The first answer from the API closes
// it and the waiting calls go.
//
// This is what narrows the duplicates of an outage. No Bot API method
// takes an idempotency key, and a 5xx or a timeout does not say whether
// the message went out: each retry after one may deliver the message
// again. Without the gate every reply in flight retried on its own, so a
// proxy that delivered and then answered 502 repeated each of them at
// every attempt; with it only the probe's message can be repeated, once
// per probe, and a call that starts while the gate is open waits without
// trying at all.
type apiGate struct {
	mu       sync.Mutex
	open     bool
	probing  bool          // the probe's attempt is in flight
	next     time.Time     // no probe before this
	interval time.Duration // the current probe backoff
	change   chan struct{} // closed and replaced at every change
}

// attemptResult is what an attempt says about the API.
type attemptResult int

const (
	apiUp      attemptResult = iota // it answered (a refusal counts: the API is up)
	apiDown                         // 5xx, timeout, no connection
	apiUnknown                      // the caller gave up first
)

var errGateDeadline = errors.New("bot API unavailable until the deadline")

func newGate() *apiGate { return &apiGate{change: make(chan struct{})} }

// isOpen reports whether the API is failing now.
func (g *apiGate) isOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// wait returns when the caller may try: the gate is closed (probe false),
// or it is the caller's turn to probe (probe true, and the caller must
// report). It fails with ctx's error, or errGateDeadline at deadline.
func (g *apiGate) wait(ctx context.Context, deadline time.Time) (probe bool, err error) {
	for {
		g.mu.Lock()
		if !g.open {
			g.mu.Unlock()
			return false, nil
		}
		now := time.Now()
		if !g.probing && !now.Before(g.next) {
			g.probing = true
			g.mu.Unlock()
			return true, nil
		}
		ch := g.change
		d := deadline.Sub(now) // while a probe is in flight: until it reports
		if !g.probing {
			d = min(d, g.next.Sub(now))
		}
		g.mu.Unlock()
		if d <= 0 {
			return false, errGateDeadline
		}
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		}
		t.Stop()
	}
}

// report tells the gate how an attempt went. first and most bound the
// probe backoff.
func (g *apiGate) report(probe bool, r attemptResult, first, most time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := probe
	if probe {
		g.probing = false
	}
	switch {
	case r == apiUp && g.open:
		g.open, changed = false, true
	case r != apiDown:
	case !g.open:
		g.open, changed = true, true
		g.interval = first
		g.next = time.Now().Add(jitter(g.interval))
	case probe:
		g.interval = min(2*g.interval, most)
		g.next = time.Now().Add(jitter(g.interval))
	}
	if changed {
		close(g.change)
		g.change = make(chan struct{})
	}
}

// jitter spreads d over [d/2, d), so replicas and restarts do not probe
// in step.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}
