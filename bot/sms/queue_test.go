package sms

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// gate is a gateway that holds every code until released.
type gate struct {
	mu      sync.Mutex
	release chan struct{}
	got     []string
}

func (g *gate) Send(ctx context.Context, m Message) error {
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, m.Code)
	return nil
}

// Send never waits for the gateway (were it to, the bubble would
// deadlock); Run delivers in order; a full queue refuses at once.
func TestQueueSendsInTheBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		next := &gate{release: make(chan struct{})}
		var mu sync.Mutex
		outcomes := map[string]int{}
		q := &Queue{Next: next, Workers: 1, Size: 2, Result: func(o string) { mu.Lock(); outcomes[o]++; mu.Unlock() }}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go q.Run(ctx)
		send := func(code string) error {
			return q.Send(ctx, Message{Phone: "13900000011", Code: code, TTL: 5 * time.Minute})
		}
		if err := send("111111"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the worker holds the first code at the gateway
		for _, c := range []string{"222222", "333333"} {
			if err := send(c); err != nil {
				t.Fatalf("send %s: %v", c, err)
			}
		}
		if err := send("444444"); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("a fourth code into a queue of 2 behind a busy worker: %v, want ErrQueueFull", err)
		}
		close(next.release)
		synctest.Wait()
		next.mu.Lock()
		got := slices.Clone(next.got)
		next.mu.Unlock()
		if !slices.Equal(got, []string{"111111", "222222", "333333"}) {
			t.Errorf("delivered %v, want the three queued codes in order", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if outcomes["dropped"] != 1 || outcomes["sent"] != 3 {
			t.Errorf("outcomes %v", outcomes)
		}
	})
}

// A gateway that never answers costs a worker Timeout, not forever.
func TestQueueGivesUpAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		next := &gate{release: make(chan struct{})}
		var failed int
		var mu sync.Mutex
		q := &Queue{Next: next, Workers: 1, Timeout: 30 * time.Second, Result: func(o string) {
			if o == "failed" {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go q.Run(ctx)
		q.Send(ctx, Message{Code: "123456"})
		time.Sleep(31 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if failed != 1 {
			t.Errorf("failed %d, want the code given up after its timeout", failed)
		}
	})
}
