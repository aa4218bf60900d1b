package reminder

import (
	"context"
	"errors"
	"time"
)

// errPastDeadline: the next token comes too late for the sending window.
var errPastDeadline = errors.New("sending window closed")

// bucket is a token bucket holding at most one token: sends are spaced
// 1/rate apart, so no one-second window ever holds more than rate sends (a
// deeper bucket would allow a burst of twice the rate across a second).
// The clock is injected so tests run on virtual time.
type bucket struct {
	every time.Duration
	next  time.Time // when the next send may go
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newBucket(rate float64, now func() time.Time, sleep func(context.Context, time.Duration) error) *bucket {
	return &bucket{every: time.Duration(float64(time.Second) / rate), now: now, sleep: sleep}
}

// wait blocks until a send may go, and takes the token. It fails with
// errPastDeadline, without waiting, when that moment is not before deadline.
func (b *bucket) wait(ctx context.Context, deadline time.Time) error {
	now := b.now()
	at := b.next
	if at.Before(now) {
		at = now
	}
	if !at.Before(deadline) {
		return errPastDeadline
	}
	if d := at.Sub(now); d > 0 {
		if err := b.sleep(ctx, d); err != nil {
			return err
		}
	}
	// Measured from when the send may go, not from when wait returned: a
	// slow sleep must not bunch the following sends.
	b.next = at.Add(b.every)
	return nil
}
