package redisstore

import (
	"context"
	"slices"
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
	// taken: a batch holds the call (under coalescer.mu). From then on
	// its commands may be on the wire, and the caller waits for them.
	taken bool
}

// maxBatchesInFlight lets a batch go out while another waits for Redis,
// without giving up the batching.
const maxBatchesInFlight = 2

// pipelined queues the commands that add puts on the pipeline and waits
// until they have run, within OpTimeout. When ctx ends first, a call still
// queued is withdrawn and returns ctx's error; a call already in a batch
// is waited for (at most OpTimeout), because what the caller does next (a
// release after a failed claim) must reach Redis after it. The caller
// reads each command's own result and error: one failed command does not
// fail the others.
func (s *Store) pipelined(ctx context.Context, add func(pipe redis.Pipeliner)) error {
	c := &s.batch
	call := &batchCall{ctx: ctx, add: add, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, call)
	var batch []*batchCall
	if c.inflight < maxBatchesInFlight {
		c.inflight++
		batch = c.take()
	}
	c.mu.Unlock()
	if batch != nil {
		s.runBatch(batch)
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if !call.taken {
		c.queue = slices.DeleteFunc(c.queue, func(q *batchCall) bool { return q == call })
		c.mu.Unlock()
		return ctx.Err()
	}
	c.mu.Unlock()
	<-call.done
	return call.err
}

// take empties the queue into a batch; c.mu must be held.
func (c *coalescer) take() []*batchCall {
	batch := c.queue
	c.queue = nil
	for _, call := range batch {
		call.taken = true
	}
	return batch
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
			close(call.done) // its caller gave up: nothing is sent
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
	next := c.take()
	if len(next) == 0 {
		c.inflight--
	}
	c.mu.Unlock()
	if len(next) > 0 {
		go s.runBatch(next)
	}
}
