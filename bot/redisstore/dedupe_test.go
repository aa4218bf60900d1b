package redisstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// releaseDoneScript is doneScript as the release before the per-chat done
// set wrote dedupe marks: one key per answered update.
var releaseDoneScript = redis.NewScript(`
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
end
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
`)

// An update the previous release answered (its mark a key of its own) is
// not answered again after the upgrade, and what this release marks goes
// to the chat's done set, not to a key per update.
func TestDedupeMarksOfThePreviousRelease(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	chat := tg(7)
	// The previous release's claim and release of update 41, as its
	// Begin and done ran them.
	entry := "41:prev"
	oldKeys := []string{s.chatKey(chat, "done:41"), s.chatKey(chat, "q"), s.chatKey(chat, "lock"), s.chatKey(chat, "alive:") + entry}
	if err := s.rdb.Set(ctx, oldKeys[2], entry, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := releaseDoneScript.Run(ctx, s.rdb, oldKeys, entry, "1", time.Hour.Milliseconds()).Err(); err != nil {
		t.Fatal(err)
	}

	if _, dup, err := s.Begin(ctx, chat, 41); err != nil || !dup {
		t.Fatalf("Begin(41) after the upgrade: dup %v, err %v; the previous release answered it", dup, err)
	}
	done, dup, err := s.Begin(ctx, chat, 42)
	if err != nil || dup {
		t.Fatalf("Begin(42): dup %v, err %v", dup, err)
	}
	done(true)
	if _, dup, err := s.Begin(ctx, chat, 42); err != nil || !dup {
		t.Fatalf("Begin(42) again: dup %v, err %v", dup, err)
	}
	if n, err := s.rdb.Exists(ctx, s.chatKey(chat, "done:42")).Result(); err != nil || n != 0 {
		t.Errorf("a key per update was written (%d, %v)", n, err)
	}
	members, err := s.rdb.ZRange(ctx, s.chatKey(chat, "done"), 0, -1).Result()
	if err != nil || len(members) != 1 || members[0] != "42" {
		t.Errorf("done set = %v, %v; want [42]", members, err)
	}
	ttl, err := s.rdb.PTTL(ctx, s.chatKey(chat, "done")).Result()
	if err != nil || ttl <= 0 || ttl > s.opt.DedupeTTL {
		t.Errorf("done set expires in %v (%v); want within DedupeTTL %v", ttl, err, s.opt.DedupeTTL)
	}
}

// A mark is forgotten DedupeTTL after its update was answered even while
// later updates keep the chat's set alive, and each release drops the
// marks past their time, so an active chat's set holds one day of updates,
// not all of them.
func TestDedupeMarksExpireOneByOne(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	chat := tg(8)
	now := time.Now()
	s.now = func() time.Time { return now }
	ttl := s.opt.DedupeTTL

	answer := func(id int64) {
		t.Helper()
		done, dup, err := s.Begin(ctx, chat, id)
		if err != nil || dup {
			t.Fatalf("Begin(%d): dup %v, err %v", id, dup, err)
		}
		done(true)
	}
	isDup := func(id int64) bool {
		t.Helper()
		done, dup, err := s.Begin(ctx, chat, id)
		if err != nil {
			t.Fatalf("Begin(%d): %v", id, err)
		}
		if !dup {
			done(false)
		}
		return dup
	}

	answer(1)
	now = now.Add(ttl / 2)
	if !isDup(1) {
		t.Fatal("update 1 forgotten within DedupeTTL")
	}
	answer(2)
	now = now.Add(ttl/2 + time.Millisecond)
	if isDup(1) {
		t.Error("update 1 still a duplicate DedupeTTL after it was answered")
	}
	if !isDup(2) {
		t.Error("update 2 forgotten within DedupeTTL")
	}
	answer(3)
	members, err := s.rdb.ZRange(ctx, s.chatKey(chat, "done"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2", "3"}
	if len(members) != len(want) || members[0] != want[0] || members[1] != want[1] {
		t.Errorf("done set = %v; want %v (update 1 dropped)", members, want)
	}
	for _, m := range members {
		if _, err := strconv.ParseInt(m, 10, 64); err != nil {
			t.Errorf("member %q is not an update id", m)
		}
	}
}
