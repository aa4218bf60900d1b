package telegram

import (
	"context"
	"sync"
)

// sched hands polled updates to the workers chat by chat. A chat is with
// at most one worker at a time and its updates run in fetch order; chats
// with work take turns, so a chat with a backlog (a slow LLM answer, a
// burst within the rate limit, a busy group) keeps one worker while the
// others flow. add never waits on a chat: past perChatMem updates of one
// chat in memory (or maxMem in all), a held update is kept by its ID alone
// and its JSON stays in the Handoff, to be read back when the chat gets
// to it. Updates that are not held (the Handoff is down) always stay in
// memory; there are at most 100 of them, since the getUpdates offset then
// waits for the oldest.
//
// Two bounds make it finite: one chat may have at most perChat updates
// waiting (further ones are dropped and counted: no person writes that
// much; a group flooded by many accounts does), and all chats together
// maxTotal, past which add waits for room: the fetch loop then pauses for
// everyone, and Telegram keeps what is not fetched.
type sched struct {
	perChatMem, maxMem, perChat, maxTotal int

	mu     sync.Mutex
	wake   *sync.Cond
	chats  map[int64]*chatWork
	ready  []int64 // chats with work and no worker, oldest first
	closed bool
	inMem  int           // entries with their job in memory
	total  int           // entries in all
	room   chan struct{} // closed when total falls below maxTotal; nil unless someone waits
}

// entry is one update waiting in a chat: its job in memory, or (j nil) its
// ID only, the update being held in the Handoff.
type entry struct {
	j      *job
	id     int64
	notice bool // the rate-limit notice is due for it (Message.Limited)
}

type chatWork struct {
	entries []entry
	inMem   int
	busy    bool // a worker has the chat
}

// Bounds; see sched.
const (
	perChatInMemory = 16
	maxInMemory     = 4096
	maxPerChat      = 1000
	maxWaiting      = 100_000
	// readBackBatch is how many spilled updates a worker reads back at once.
	readBackBatch = 64
)

func newSched() *sched {
	s := &sched{perChatMem: perChatInMemory, maxMem: maxInMemory, perChat: maxPerChat, maxTotal: maxWaiting,
		chats: make(map[int64]*chatWork)}
	s.wake = sync.NewCond(&s.mu)
	return s
}

// addResult says what add did with a job.
type addResult int

const (
	added addResult = iota
	overflowed
	cancelled // ctx ended while waiting for room
)

// add queues j for chat. It waits only while maxTotal updates are
// waiting in all.
func (s *sched) add(ctx context.Context, chat int64, j job) addResult {
	s.mu.Lock()
	for s.total >= s.maxTotal && !s.closed {
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return cancelled
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	cw := s.chats[chat]
	if cw == nil {
		cw = &chatWork{}
		s.chats[chat] = cw
	}
	if len(cw.entries) >= s.perChat {
		return overflowed
	}
	e := entry{id: j.in.updateID, notice: j.in.msg.Limited}
	if !j.held || (cw.inMem < s.perChatMem && s.inMem < s.maxMem) {
		jj := j
		e.j = &jj
		cw.inMem++
		s.inMem++
	}
	cw.entries = append(cw.entries, e)
	s.total++
	if !cw.busy && len(cw.entries) == 1 {
		s.ready = append(s.ready, chat)
		s.wake.Signal()
	}
	return added
}

// next waits for a chat with work and gives it to the calling worker: its
// first update, or the run of spilled updates at its head to read back.
// ok is false once the sched is closed and nothing in memory is left. A
// closed sched skips chats whose next update is spilled: it stays held
// for the next run, and so does everything after it.
func (s *sched) next() (chat int64, take []entry, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for len(s.ready) > 0 {
			chat = s.ready[0]
			s.ready = s.ready[1:]
			cw := s.chats[chat]
			if s.closed && cw.entries[0].j == nil {
				s.forgetLocked(chat, cw)
				continue
			}
			cw.busy = true
			n := 1
			if cw.entries[0].j == nil {
				for n < len(cw.entries) && n < readBackBatch && cw.entries[n].j == nil {
					n++
				}
			}
			take = append([]entry(nil), cw.entries[:n]...)
			cw.entries = cw.entries[n:]
			for _, e := range take {
				if e.j != nil {
					cw.inMem--
					s.inMem--
				}
			}
			s.total -= n
			s.roomLocked()
			return chat, take, true
		}
		if s.closed {
			return 0, nil, false
		}
		s.wake.Wait()
	}
}

// putFront puts entries (read back, or not) at the head of chat's queue,
// in the order given.
func (s *sched) putFront(chat int64, es []entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cw := s.chats[chat]
	cw.entries = append(append([]entry(nil), es...), cw.entries...)
	for _, e := range es {
		if e.j != nil {
			cw.inMem++
			s.inMem++
		}
	}
	s.total += len(es)
}

// done gives chat back after a worker took from it.
func (s *sched) done(chat int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cw := s.chats[chat]
	cw.busy = false
	if len(cw.entries) == 0 {
		delete(s.chats, chat)
		return
	}
	s.ready = append(s.ready, chat) // behind the chats already waiting
	s.wake.Signal()
}

// close lets the workers finish what is in memory and then stop.
func (s *sched) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	s.wake.Broadcast()
}

// waiting returns how many updates wait, in memory and in all.
func (s *sched) waiting() (inMem, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inMem, s.total
}

func (s *sched) forgetLocked(chat int64, cw *chatWork) {
	s.inMem -= cw.inMem
	s.total -= len(cw.entries)
	delete(s.chats, chat)
	s.roomLocked()
}

func (s *sched) roomLocked() {
	if s.room != nil && s.total < s.maxTotal {
		close(s.room)
		s.room = nil
	}
}
