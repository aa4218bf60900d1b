package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Per-chat coordination across replicas.
//
// Each chat has a queue (a sorted set scored by update id) of the updates
// that want to be handled, and a lock naming the one being handled. An
// update may run when it is the lowest entry in the queue and it wins the
// lock. Entries are "<update id>:<token>" so that two deliveries of one
// update are distinct entries; the token also names the lock holder.
//
// A replica can die at any point, so nothing it leaves behind may block the
// chat for longer than LockLease: the lock carries that lease, and every
// queue entry has an "alive" key with the same lease that its waiter
// refreshes on each poll. Whoever finds a dead entry at the head of the
// queue removes it. The queue key itself expires after two leases without
// any Begin, so an abandoned chat leaves nothing behind.
//
// Fast path, no contention: Begin is one EVALSHA (beginScript returns 1),
// done is one EVALSHA. Under contention each poll is one more EVALSHA.
//
// Answered updates are remembered for DedupeTTL in one sorted set per
// chat, <p>:{c:<chat>}:done, member the update id, score when it is
// forgotten (unix ms); each done drops the members past their time, and
// the set expires DedupeTTL after the last one. That costs about 20 bytes
// an update in a small set's listpack, where the previous release's key
// per update, <p>:{c:<chat>}:done:<update id>, costs about 130 (the key,
// its value and its expiry entry; BenchmarkMemory). Begin still honours
// such a key, so an update answered before an upgrade is not answered
// again; they are no longer written, and the last expire DedupeTTL after
// the upgrade.

// beginScript checks dedupe, enqueues (or refreshes) the entry and tries to
// take the chat.
//
//	KEYS[1] the previous release's done key of this update, KEYS[2] queue, KEYS[3] lock,
//	KEYS[4] alive key of this entry, KEYS[5] blocked mark of the chat, KEYS[6] done set of the chat
//	ARGV[1] update id, ARGV[2] entry, ARGV[3] lease ms, ARGV[4] alive key prefix, ARGV[5] now (unix ms)
//
// Returns -1 when the update was already handled (the entry is removed),
// 1 when the chat is claimed, 0 when the caller must wait and call again.
// A claim also clears the chat's blocked mark: a user who writes to the bot
// has unblocked it, and clearing it here saves a round trip per update.
var beginScript = redis.NewScript(`
local forget = redis.call('ZSCORE', KEYS[6], ARGV[1])
if (forget and tonumber(forget) > tonumber(ARGV[5])) or redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[4])
  return -1
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], 2 * tonumber(ARGV[3]))
redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
while true do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if head == ARGV[2] then
    break
  end
  if redis.call('EXISTS', ARGV[4] .. head) == 1 then
    return 0
  end
  redis.call('ZREM', KEYS[2], head)
end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then
  redis.call('DEL', KEYS[5])
  return 1
end
return 0
`)

// doneScript finishes (or abandons) a claim or a wait: marks the update
// handled if asked, releases the lock only if this entry holds it, and
// leaves the queue.
//
//	KEYS[2] queue, KEYS[3] lock, KEYS[4] alive key, KEYS[6] done set
//	ARGV[1] entry, ARGV[2] "1" to mark handled, ARGV[3] dedupe ms, ARGV[4] update id,
//	ARGV[5] now (unix ms)
var doneScript = redis.NewScript(`
if ARGV[2] == '1' then
  local now = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[3]), ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  redis.call('PEXPIRE', KEYS[6], ARGV[3])
end
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
`)

const (
	minPoll = 2 * time.Millisecond
	maxPoll = 50 * time.Millisecond
)

// Begin implements telegram.Coordinator. It waits, polling with backoff,
// until updateID is the next update of chat to handle and claims it. While
// it waits it keeps its place in the queue alive; when ctx ends it leaves the
// queue and returns ctx's error. Redis errors wrap bot.ErrUnavailable.
func (s *Store) Begin(ctx context.Context, chat string, updateID int64) (done func(handled bool), dup bool, err error) {
	entry := strconv.FormatInt(updateID, 10) + ":" + rand.Text()
	aliveKey := s.chatKey(chat, "alive:")
	keys := []string{
		s.chatKey(chat, "done:"+strconv.FormatInt(updateID, 10)),
		s.chatKey(chat, "q"),
		s.chatKey(chat, "lock"),
		aliveKey + entry,
		s.chatKey(chat, "blocked"),
		s.chatKey(chat, "done"),
	}
	lease := s.opt.LockLease.Milliseconds()
	wait := minPoll
	for first := true; ; first = false {
		var r int64
		var err error
		now := s.clock().UnixMilli()
		if first {
			r, err = s.beginAndPrefetch(ctx, chat, keys, updateID, entry, lease, aliveKey, now)
		} else {
			r, err = s.runScript(ctx, beginScript, keys, updateID, entry, lease, aliveKey, now)
		}
		if err != nil {
			s.leave(keys, entry, false)
			return nil, false, fmt.Errorf("claim update of chat %s: %w", chat, err)
		}
		switch r {
		case -1:
			return nil, true, nil
		case 1:
			stop := s.keepClaim(keys, entry)
			return func(handled bool) {
				stop()
				s.prefetched.Delete(chat)
				s.leave(keys, entry, handled)
			}, false, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.leave(keys, entry, false)
			return nil, false, fmt.Errorf("wait for chat %s: %w", chat, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, maxPoll)
	}
}

// beginAndPrefetch runs the first beginScript of an update pipelined with
// the read of the private chat's session state (chat id = user id), so that
// the usual fast path — claim, then bot.Engine's Load — costs one round
// trip instead of two. The state is kept for the Load that follows the
// claim (see takePrefetched); it is dropped unless the chat was claimed.
func (s *Store) beginAndPrefetch(ctx context.Context, chat string, keys []string, args ...any) (int64, error) {
	var claim *redis.Cmd
	var state *redis.SliceCmd
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		claim = beginScript.EvalSha(ctx, pipe, keys, args...)
		state = pipe.MGet(ctx, s.stateKeys(chat, chat)...)
	})
	if err != nil {
		return 0, s.classify(err)
	}
	if redis.HasErrorPrefix(claim.Err(), "NOSCRIPT") {
		// The server lost the script (restart, SCRIPT FLUSH): runScript
		// sends it again.
		return s.runScript(ctx, beginScript, keys, args...)
	}
	r, err := claim.Int64()
	if err != nil {
		return 0, s.classify(err)
	}
	if r == 1 && state.Err() == nil {
		s.prefetched.Store(chat, state.Val())
	}
	return r, nil
}

// refreshScript extends a claim's lease while its update is being handled.
//
//	KEYS[2] queue, KEYS[3] lock, KEYS[4] alive key; ARGV[1] entry, ARGV[2] lease ms
var refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
redis.call('PEXPIRE', KEYS[2], 2 * tonumber(ARGV[2]))
return 1
`)

// keepClaim renews the claim every third of the lease until stop is called
// or MaxHold has passed.
// The lease can then be short, so a replica that dies mid-update blocks its
// chats for seconds, not for the longest an update might take (an LLM call
// may take 15 s). stop waits for a renewal in flight.
func (s *Store) keepClaim(keys []string, entry string) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	lease := s.opt.LockLease
	go func() {
		defer close(finished)
		tick := time.NewTicker(lease / 3)
		defer tick.Stop()
		limit := time.NewTimer(s.opt.MaxHold)
		defer limit.Stop()
		for {
			select {
			case <-quit:
				return
			case <-limit.C:
				s.log.Warn("update handled for longer than MaxHold; its chat is released when the lease runs out")
				return
			case <-tick.C:
				ok, err := s.runScript(context.Background(), refreshScript, keys, entry, lease.Milliseconds())
				if err != nil {
					s.log.Warn("renew chat claim", "err", err)
				} else if ok == 0 {
					return // lost it: the lease ran out while Redis was unreachable
				}
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}

// leave runs doneScript. It must work after the caller's context has ended
// (a cancelled wait still has to leave the queue), so it runs on its own
// deadline; a failure only delays the chat until the lease runs out.
func (s *Store) leave(keys []string, entry string, handled bool) {
	h := "0"
	if handled {
		h = "1"
	}
	id, _, _ := strings.Cut(entry, ":")
	args := []any{entry, h, s.opt.DedupeTTL.Milliseconds(), id, s.clock().UnixMilli()}
	var done *redis.Cmd
	err := s.pipelined(context.Background(), func(pipe redis.Pipeliner) {
		done = doneScript.EvalSha(context.Background(), pipe, keys, args...)
	})
	if err == nil {
		err = done.Err()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			_, err = s.runScript(context.Background(), doneScript, keys, args...)
		}
	}
	if err != nil {
		s.log.Warn("release chat claim; the chat waits for the lease to run out", "err", s.classify(err))
	}
}

// runScript runs a script returning an integer under OpTimeout.
func (s *Store) runScript(ctx context.Context, sc *redis.Script, keys []string, args ...any) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := sc.Run(ctx, s.rdb, keys, args...).Int64()
	if err != nil {
		return 0, s.classify(err)
	}
	return r, nil
}

// Waiting returns how many updates of chat are queued, including the one
// being handled: a gauge of per-chat contention, and what the conformance
// suite uses to know that concurrent Begins have all enqueued.
func (s *Store) Waiting(ctx context.Context, chat string) (int, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := s.rdb.ZCard(ctx, s.chatKey(chat, "q")).Result()
	if err != nil {
		return 0, fmt.Errorf("count waiting updates of chat %s: %w", chat, s.classify(err))
	}
	return int(n), nil
}

// MarkBlocked remembers that the user of chat blocked the bot. It does not
// expire: the mark stays until they write again (Begin's claim clears it).
func (s *Store) MarkBlocked(ctx context.Context, chat string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.Set(ctx, s.chatKey(chat, "blocked"), "1", 0).Err(); err != nil {
		return fmt.Errorf("mark chat %s blocked: %w", chat, s.classify(err))
	}
	return nil
}

// Unblock forgets the blocked mark of chat.
func (s *Store) Unblock(ctx context.Context, chat string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.Del(ctx, s.chatKey(chat, "blocked")).Err(); err != nil {
		return fmt.Errorf("unblock chat %s: %w", chat, s.classify(err))
	}
	return nil
}

// Blocked reports whether chat is marked blocked.
func (s *Store) Blocked(ctx context.Context, chat string) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := s.rdb.Exists(ctx, s.chatKey(chat, "blocked")).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("read blocked mark of chat %s: %w", chat, s.classify(err))
	}
	return n == 1, nil
}
