package redisstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A claim whose caller gave up before it was sent blocks nothing: the
// chat's next update is claimed at once.
func TestCancelledClaimBlocksNothing(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			chat := int64(1000 + i%10)
			cctx, cancel := context.WithCancel(ctx)
			if i%2 == 0 {
				cancel()
			}
			done, dup, err := s.Begin(cctx, tg(chat), int64(i+1))
			cancel()
			switch {
			case err != nil && !errors.Is(err, context.Canceled):
				t.Errorf("Begin: %v", err)
			case err == nil && !dup:
				done(true)
			}
		})
	}
	wg.Wait()
	for chat := int64(1000); chat < 1010; chat++ {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond) // far below the lease
		done, dup, err := s.Begin(cctx, tg(chat), 1_000_000)
		cancel()
		if err != nil || dup {
			t.Fatalf("chat %d blocked after cancelled claims: dup %v, err %v", chat, dup, err)
		}
		done(true)
	}
	if n, err := s.Waiting(ctx, tg(1000)); err != nil || n != 0 {
		t.Errorf("chat 1000 has %d waiting (err %v), want 0", n, err)
	}
}
