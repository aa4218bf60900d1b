package sms

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Sender delivers one code (Webhook, Demo).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrQueueFull means a Queue had no room: the code was not sent.
var ErrQueueFull = errors.New("sms queue full")

// Queue sends codes in the background, so that asking for a code takes the
// same time whether a text goes out or not (the engine must not reveal,
// by its reply or its timing, whether an ID number is on record), and a
// slow gateway holds up no conversation. Send only enqueues; Run delivers
// with a few workers until its context ends, then gives up what is left
// (a code lives minutes; the user asks for another).
type Queue struct {
	Next    Sender
	Workers int           // at once; 4 when zero
	Size    int           // waiting at most; 256 when zero
	Timeout time.Duration // per code, the gateway's retries included; 40 s when zero
	Logger  *slog.Logger
	// Result, when set, is told how each delivery ended ("sent",
	// "failed", "dropped") for metrics.
	Result func(outcome string)

	once sync.Once
	ch   chan Message
}

func (q *Queue) init() {
	q.once.Do(func() {
		if q.Workers <= 0 {
			q.Workers = 4
		}
		if q.Size <= 0 {
			q.Size = 256
		}
		if q.Timeout <= 0 {
			q.Timeout = 40 * time.Second
		}
		if q.Logger == nil {
			q.Logger = slog.New(slog.DiscardHandler)
		}
		if q.Result == nil {
			q.Result = func(string) {}
		}
		q.ch = make(chan Message, q.Size)
	})
}

// Send enqueues m; it never waits.
func (q *Queue) Send(ctx context.Context, m Message) error {
	q.init()
	select {
	case q.ch <- m:
		return nil
	default:
		q.Result("dropped")
		return ErrQueueFull
	}
}

// Run delivers queued codes until ctx ends.
func (q *Queue) Run(ctx context.Context) error {
	q.init()
	var wg sync.WaitGroup
	for range q.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-q.ch:
					sctx, cancel := context.WithTimeout(ctx, q.Timeout)
					err := q.Next.Send(sctx, m)
					cancel()
					if err != nil {
						// The error names no phone and no code.
						q.Logger.Warn("send verification code", "err", err)
						q.Result("failed")
						continue
					}
					q.Result("sent")
				}
			}
		})
	}
	wg.Wait()
	return nil
}
