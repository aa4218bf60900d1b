package redisstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/shebao/shebao/bot/telegram"
)

type heldEntry struct {
	id  int64
	at  time.Time
	raw string
}

func heldNow(t *testing.T, s *Store) []heldEntry {
	t.Helper()
	var out []heldEntry
	err := s.HeldUpdates(t.Context(), func(id int64, at time.Time, raw []byte) {
		out = append(out, heldEntry{id, at, string(raw)})
	})
	if err != nil {
		t.Fatalf("HeldUpdates: %v", err)
	}
	return out
}

func TestHoldReleaseHeld(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	at := time.Date(2026, 11, 27, 9, 30, 0, 123e6, time.UTC)
	updates := map[int64][]byte{
		30: []byte(`{"update_id":30,"message":{"text":"医保断缴了还能补吗？"}}`),
		7:  []byte(`{"update_id":7,"message":{"text":"a:b:c"}}`),
		12: []byte(`{"update_id":12}`),
	}
	if err := s.HoldUpdates(ctx, at, updates); err != nil {
		t.Fatal(err)
	}
	if err := s.HoldUpdates(ctx, at, nil); err != nil {
		t.Errorf("holding nothing: %v", err)
	}
	if err := s.ReleaseUpdates(ctx, []int64{12, 99}); err != nil {
		t.Fatal(err)
	}
	got := heldNow(t, s)
	want := []heldEntry{{7, at, string(updates[7])}, {30, at, string(updates[30])}}
	if len(got) != len(want) {
		t.Fatalf("held %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].id != want[i].id || !got[i].at.Equal(want[i].at) || got[i].raw != want[i].raw {
			t.Errorf("held[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Thousands held (a long outage's backlog) come back once each, in order,
// across HSCAN pages.
func TestHeldManyInOrder(t *testing.T) {
	s, _, _ := testStore(t)
	const n = 1500
	batch := map[int64][]byte{}
	for i := n; i >= 1; i-- {
		batch[int64(i)] = fmt.Appendf(nil, `{"update_id":%d}`, i)
		if len(batch) == 100 {
			if err := s.HoldUpdates(t.Context(), time.Now(), batch); err != nil {
				t.Fatal(err)
			}
			batch = map[int64][]byte{}
		}
	}
	got := heldNow(t, s)
	if len(got) != n {
		t.Fatalf("%d held, want %d", len(got), n)
	}
	for i, e := range got {
		if e.id != int64(i+1) {
			t.Fatalf("held[%d] is update %d, want %d", i, e.id, i+1)
		}
	}
}

// An entry the store did not write is dropped, not handed to the adapter.
func TestHeldDropsMalformed(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	if err := s.HoldUpdates(ctx, time.Now(), map[int64][]byte{5: []byte(`{"update_id":5}`)}); err != nil {
		t.Fatal(err)
	}
	s.rdb.HSet(ctx, s.heldKey(), "x", "1:{}", "6", "no stamp", "-3", "1:{}")
	got := heldNow(t, s)
	if len(got) != 1 || got[0].id != 5 {
		t.Errorf("held %+v, want only update 5", got)
	}
	if n, _ := s.rdb.HLen(ctx, s.heldKey()).Result(); n != 1 {
		t.Errorf("%d entries left, want the malformed ones deleted", n)
	}
}

var _ telegram.Handoff = (*Store)(nil)

// ReadUpdates returns the held updates asked for, and skips the others.
func TestReadUpdates(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	at := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	if err := s.HoldUpdates(ctx, at, map[int64][]byte{5: []byte("five:with:colons"), 6: []byte("six")}); err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	err := s.ReadUpdates(ctx, []int64{6, 7, 5}, func(id int64, when time.Time, raw []byte) {
		if !when.Equal(at) {
			t.Errorf("update %d held at %v, want %v", id, when, at)
		}
		got[id] = string(raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[5] != "five:with:colons" || got[6] != "six" {
		t.Errorf("read %v, want updates 5 and 6 as held", got)
	}
}
