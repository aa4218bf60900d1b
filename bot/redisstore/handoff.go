package redisstore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/shebao/shebao/bot/keyring"
)

// The polling hand-off (telegram.Handoff): updates fetched but not yet
// handled, in one hash per bot,
//
//	<p>:{held}:updates   field update_id, value "<unix ms>:<update JSON>", sealed
//
// An update holds whatever the user typed, an ID number or a shared phone
// included, so the value is sealed and bound to its field (the previous
// release's plain values are still read).
// It holds only updates in flight, so it stays small; heldTTL removes the
// leftovers of a bot that stopped for good.
const heldTTL = 48 * time.Hour

func (s *Store) heldKey() string { return s.opt.KeyPrefix + ":{held}:updates" }

// heldAD binds a held update to its hash and field.
func (s *Store) heldAD(field string) string { return s.ad(s.heldKey()) + "#" + field }

// HoldUpdates implements telegram.Handoff: one HSET, so the batch is held whole
// or not at all.
func (s *Store) HoldUpdates(ctx context.Context, at time.Time, updates map[int64][]byte) error {
	if len(updates) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	stamp := strconv.FormatInt(at.UnixMilli(), 10) + ":"
	args := make([]any, 0, 2*len(updates))
	for id, raw := range updates {
		v := make([]byte, 0, len(stamp)+len(raw))
		field := strconv.FormatInt(id, 10)
		args = append(args, field, s.keys.Seal(s.heldAD(field), append(append(v, stamp...), raw...)))
	}
	pipe := s.rdb.Pipeline()
	hset := pipe.HSet(ctx, s.heldKey(), args...)
	pipe.PExpire(ctx, s.heldKey(), heldTTL) // only tidies up: its failure changes nothing held
	_, _ = pipe.Exec(ctx)
	if err := hset.Err(); err != nil {
		return fmt.Errorf("hold %d updates: %w", len(updates), s.classify(err))
	}
	return nil
}

// ReleaseUpdates implements telegram.Handoff.
func (s *Store) ReleaseUpdates(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = strconv.FormatInt(id, 10)
	}
	if err := s.rdb.HDel(ctx, s.heldKey(), fields...).Err(); err != nil {
		return fmt.Errorf("release %d updates: %w", len(ids), s.classify(err))
	}
	return nil
}

// ReadUpdates implements telegram.Handoff: one HMGET. Absent IDs and
// malformed entries are skipped.
func (s *Store) ReadUpdates(ctx context.Context, ids []int64, yield func(id int64, at time.Time, raw []byte)) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = strconv.FormatInt(id, 10)
	}
	vals, err := s.rdb.HMGet(ctx, s.heldKey(), fields...).Result()
	if err != nil {
		return fmt.Errorf("read %d held updates: %w", len(ids), s.classify(err))
	}
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		val := []byte(str)
		if keyring.IsSealed(val) {
			if val, _, err = s.keys.Open(s.heldAD(fields[i]), val); err != nil {
				continue // not ours to pass on; HeldUpdates drops it
			}
		}
		ms, raw, ok := bytes.Cut(val, []byte(":"))
		at, err := strconv.ParseInt(string(ms), 10, 64)
		if !ok || err != nil {
			continue
		}
		yield(ids[i], time.UnixMilli(at), raw)
	}
	return nil
}

// HeldUpdates implements telegram.Handoff. Entries that are not "<ms>:<json>" (not
// written by HoldUpdates) are deleted rather than passed on.
func (s *Store) HeldUpdates(ctx context.Context, yield func(id int64, at time.Time, raw []byte)) error {
	type entry struct {
		id  int64
		at  time.Time
		raw []byte
	}
	var entries []entry
	var bad []string
	var cursor uint64
	for {
		octx, cancel := s.op(ctx)
		kv, next, err := s.rdb.HScan(octx, s.heldKey(), cursor, "", 512).Result()
		cancel()
		if err != nil {
			return fmt.Errorf("read held updates: %w", s.classify(err))
		}
		for i := 0; i+1 < len(kv); i += 2 {
			id, err1 := strconv.ParseInt(kv[i], 10, 64)
			val := []byte(kv[i+1])
			if keyring.IsSealed(val) {
				if val, _, err = s.keys.Open(s.heldAD(kv[i]), val); err != nil {
					val = nil // not ours to pass on: dropped below
				}
			}
			ms, raw, ok := bytes.Cut(val, []byte(":"))
			at, err2 := strconv.ParseInt(string(ms), 10, 64)
			if err1 != nil || err2 != nil || !ok || id <= 0 {
				bad = append(bad, kv[i])
				continue
			}
			entries = append(entries, entry{id, time.UnixMilli(at), raw})
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(bad) > 0 {
		octx, cancel := s.op(ctx)
		err := s.rdb.HDel(octx, s.heldKey(), bad...).Err()
		cancel()
		s.log.Warn("dropped malformed held updates", "n", len(bad), "err", err)
	}
	// HSCAN may return a field twice.
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.id, b.id) })
	entries = slices.CompactFunc(entries, func(a, b entry) bool { return a.id == b.id })
	for _, e := range entries {
		yield(e.id, e.at, e.raw)
	}
	return nil
}
