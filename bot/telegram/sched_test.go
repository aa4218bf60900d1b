package telegram

import (
	"context"
	"slices"
	"testing"
)

func schedJob(chat, id int64, held bool) job {
	j := job{held: held}
	j.in.updateID, j.in.chatID = id, chat
	return j
}

// drainSched takes every entry as one worker would, reading spilled ones
// back as if from the hand-off, and returns the update IDs in the order
// handled.
func drainSched(s *sched) []int64 {
	var got []int64
	s.close()
	for {
		chat, take, ok := s.next()
		if !ok {
			return got
		}
		for _, e := range take {
			got = append(got, e.id)
		}
		s.done(chat)
	}
}

// Chats take turns, each chat in order; past the in-memory bound a held
// update is kept by ID alone.
func TestSchedTurnsAndSpills(t *testing.T) {
	s := newSched()
	s.perChatMem = 2
	ctx := context.Background()
	for i := range int64(5) {
		s.add(ctx, 1, schedJob(1, 10+i, true))
	}
	s.add(ctx, 2, schedJob(2, 20, true))
	s.add(ctx, 1, schedJob(1, 15, false)) // not held: always in memory
	if inMem, total := s.waiting(); inMem != 4 || total != 7 {
		t.Errorf("waiting %d in memory, %d in all; want 4 and 7", inMem, total)
	}
	chat, take, _ := s.next()
	if chat != 1 || take[0].id != 10 || take[0].j == nil {
		t.Fatalf("first: chat %d, %+v", chat, take)
	}
	s.done(chat)
	chat, take, _ = s.next()
	if chat != 2 {
		t.Fatalf("second turn went to chat %d, want chat 2 (chats take turns)", chat)
	}
	s.done(chat)
	chat, take, _ = s.next()
	if chat != 1 || take[0].id != 11 {
		t.Fatalf("third: chat %d, %+v", chat, take)
	}
	s.done(chat)
	chat, take, _ = s.next()
	var ids []int64
	for _, e := range take {
		if e.j != nil {
			t.Errorf("update %d handed out in memory, want spilled", e.id)
		}
		ids = append(ids, e.id)
	}
	if chat != 1 || !slices.Equal(ids, []int64{12, 13, 14}) {
		t.Fatalf("read back: chat %d, %v; want the spilled run 12–14", chat, ids)
	}
	// Read back, they go first again, before 15.
	back := make([]entry, len(take))
	for i, e := range take {
		j := schedJob(1, e.id, true)
		back[i] = entry{j: &j, id: e.id}
	}
	s.putFront(chat, back)
	s.done(chat)
	var order []int64
	for range 4 {
		c, tk, _ := s.next()
		order = append(order, tk[0].id)
		s.done(c)
	}
	if !slices.Equal(order, []int64{12, 13, 14, 15}) {
		t.Errorf("then %v, want 12 13 14 15", order)
	}
}

// A chat with perChat updates waiting drops the next; the others are not
// affected.
func TestSchedOverflow(t *testing.T) {
	s := newSched()
	s.perChat = 3
	ctx := context.Background()
	for i := range int64(3) {
		if r := s.add(ctx, 1, schedJob(1, i+1, true)); r != added {
			t.Fatalf("add %d: %v", i, r)
		}
	}
	if r := s.add(ctx, 1, schedJob(1, 4, true)); r != overflowed {
		t.Errorf("fourth update of chat 1: %v, want overflowed", r)
	}
	if r := s.add(ctx, 2, schedJob(2, 5, true)); r != added {
		t.Errorf("chat 2: %v, want added", r)
	}
}

// Past maxTotal in all, add waits until a worker makes room, or its
// context ends.
func TestSchedWaitsForRoom(t *testing.T) {
	s := newSched()
	s.maxTotal = 2
	ctx := context.Background()
	s.add(ctx, 1, schedJob(1, 1, true))
	s.add(ctx, 2, schedJob(2, 2, true))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if r := s.add(cctx, 3, schedJob(3, 3, true)); r != cancelled {
		t.Fatalf("full, context ended: %v, want cancelled", r)
	}
	done := make(chan addResult)
	go func() { done <- s.add(ctx, 3, schedJob(3, 3, true)) }()
	chat, _, _ := s.next()
	if r := <-done; r != added {
		t.Errorf("after a worker took one: %v, want added", r)
	}
	s.done(chat)
	if got := drainSched(s); !slices.Equal(got, []int64{2, 3}) {
		t.Errorf("left %v, want 2 and 3", got)
	}
}

// After close, a chat whose next update is spilled is left alone: it stays
// held for the next run, with everything after it.
func TestSchedCloseLeavesSpilledHeld(t *testing.T) {
	s := newSched()
	s.perChatMem = 1
	ctx := context.Background()
	s.add(ctx, 1, schedJob(1, 1, true))
	s.add(ctx, 1, schedJob(1, 2, true)) // spilled
	s.add(ctx, 1, schedJob(1, 3, true)) // spilled
	s.add(ctx, 2, schedJob(2, 4, true))
	if got := drainSched(s); !slices.Equal(got, []int64{1, 4}) {
		t.Errorf("handled after close %v, want 1 and 4", got)
	}
	if _, total := s.waiting(); total != 0 {
		t.Errorf("%d still counted as waiting", total)
	}
}
