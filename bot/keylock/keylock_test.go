package keylock

import (
	"context"
	"testing"
	"time"
)

func TestOneHolderPerKeyAndNoLeftovers(t *testing.T) {
	var l Locks[string]
	ctx := context.Background()
	unlockA, err := l.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// Another key is free at once.
	unlockB, err := l.Lock(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
	// The same key waits: here until the context ends.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(short, "a"); err == nil {
		t.Fatal("a second holder got a held key")
	}
	got := make(chan struct{})
	go func() {
		unlock, err := l.Lock(ctx, "a")
		if err == nil {
			unlock()
		}
		close(got)
	}()
	unlockA()
	<-got
	if n := l.Len(); n != 0 {
		t.Errorf("%d locks left after every holder and waiter went, want 0", n)
	}
}
