package redisstore

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// coalescer sends the commands of concurrent calls together, one pipeline
// per batch (auto-pipelining): under load each round trip carries the
// claims and releases of several chats, which saves a write and a read on
// both ends per call; a lone call goes out at once, as before. It needs no
// goroutine of its own: the first caller to find a free slot sends the
// batch, and whoever finishes a batch hands the next one to a new
// goroutine, so queued calls never wait for a caller that has left.
//
// The zero value is ready to use.
type coalescer struct {
	mu       sync.Mutex
	queue    []*batchCall
	inflight int
}

type batchCall struct {
	ctx  context.Context
	add  func(pipe redis.Pipeliner)
	done chan struct{}
	err  error // set before done is closed when the commands were not sent
}

// maxBatchesInFlight lets a batch go out while another waits for Redis,
// without giving up the batching.
const maxBatchesInFlight = 2

// pipelined queues the commands that add puts on the pipeline and waits
// until they have run, within OpTimeout (or until ctx ends: then it returns
// ctx's error and the commands may still run). The caller reads each
// command's own result and error: one failed command does not fail the
// others.
func (s *Store) pipelined(ctx context.Context, add func(pipe redis.Pipeliner)) error {
	c := &s.batch
	call := &batchCall{ctx: ctx, add: add, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, call)
	var batch []*batchCall
	if c.inflight < maxBatchesInFlight {
		c.inflight++
		batch, c.queue = c.queue, nil
	}
	c.mu.Unlock()
	if batch != nil {
		s.runBatch(batch)
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runBatch sends batch, then passes the queue that built up meanwhile to a
// new goroutine (keeping the slot) or frees the slot.
func (s *Store) runBatch(batch []*batchCall) {
	c := &s.batch
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.OpTimeout)
	pipe := s.rdb.Pipeline()
	var sent []*batchCall
	for _, call := range batch {
		if err := call.ctx.Err(); err != nil {
			call.err = err
			close(call.done) // its caller has left
			continue
		}
		call.add(pipe)
		sent = append(sent, call)
	}
	if len(sent) > 0 {
		// Errors are per command; the callers read them.
		_, _ = pipe.Exec(ctx)
	}
	cancel()
	for _, call := range sent {
		close(call.done)
	}
	c.mu.Lock()
	next := c.queue
	c.queue = nil
	if len(next) == 0 {
		c.inflight--
	}
	c.mu.Unlock()
	if len(next) > 0 {
		go s.runBatch(next)
	}
}
