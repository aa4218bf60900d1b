package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// Throttles (bot.Attempts). Each throttle key ("user:7", "id:<ID
// number>") is kept under its keyed tag, so that no key name shows or can
// be hashed back to a user or an ID number:
//
//	<p>:{t:<tag>}:a     attempts within the window: a sorted set, member =
//	                    the reservation's token, score = its time (unix ms)
//	<p>:{t:<tag>}:hold  a lockout carried over from the previous release:
//	                    its end (unix ms), expiring then
//
// The budget is exact under concurrency because the check and the charge
// are one script per throttle: an attempt is charged before it is
// evaluated, so twenty sessions racing on one ID number get exactly the
// attempts the policy admits, and the rest are refused.
//
// While the keyring holds an older key, attempts recorded under the old
// tag are merged into the current one at each use (they would otherwise
// be forgotten by a rotation), and until the previous release's attempt
// keys have expired, those are converted the same way (legacy.go).

// throttleScript decides one attempt of one throttle.
//
//	KEYS[1] attempts, KEYS[2] hold
//	ARGV[1] now (unix ms), ARGV[2] free, ARGV[3] delay ms, ARGV[4] max delay ms, ARGV[5] window ms,
//	ARGV[6] the reservation's token, or "" to look without charging,
//	ARGV[7] a hold to merge (unix ms, 0 for none), ARGV[8…] score, member pairs of attempts to merge
//
// The wait after n attempts is bot.ThrottlePolicy.Wait(n): none below
// free, then delay doubled for each attempt beyond free, at most the max,
// counted from the latest attempt. Returns {1, next} when the attempt is
// admitted (next: when the one after it would be, 0 for at once) and
// {0, until} when it is not, charging nothing.
var throttleScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local free, delay, maxd, window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local mhold = tonumber(ARGV[7])
if mhold > now and mhold > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], ARGV[7], 'PX', mhold - now)
end
if #ARGV >= 9 then
  for i = 8, #ARGV, 2 do
    redis.call('ZADD', KEYS[1], 'NX', ARGV[i], ARGV[i + 1])
  end
  redis.call('PEXPIRE', KEYS[1], window)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local function wait(n)
  if n < free then
    return 0
  end
  local d = delay * 2 ^ (n - free)
  if d > maxd then
    d = maxd
  end
  return d
end
local n = redis.call('ZCARD', KEYS[1])
local untl = 0
if n >= free then
  untl = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) + wait(n)
end
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > untl then
  untl = hold
end
if untl > now then
  return {0, untl}
end
if ARGV[6] == '' then
  return {1, 0}
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('PEXPIRE', KEYS[1], window)
local nxt = 0
if n + 1 >= free then
  nxt = now + wait(n + 1)
end
return {1, nxt}
`)

func checkPolicies(ts []bot.Throttle) error {
	for _, t := range ts {
		if !t.Policy.Valid() {
			return fmt.Errorf("invalid throttle policy %+v", t.Policy)
		}
	}
	return nil
}

// throttleCall is the script call deciding t, with what was pulled in
// from older tags merged.
func (s *Store) throttleCall(t bot.Throttle, now time.Time, token string, m merge) scriptCall {
	tag := s.throttleTags(t.Key)[0]
	p := t.Policy
	args := []any{now.UnixMilli(), p.Free, p.Delay.Milliseconds(), p.MaxDelay.Milliseconds(), p.Window.Milliseconds(), token, m.hold}
	for _, a := range m.attempts {
		args = append(args, a.score, a.member)
	}
	return scriptCall{keys: []string{s.throttleKey(tag, "a"), s.throttleKey(tag, "hold")}, args: args}
}

// verdict reads throttleScript's reply.
func verdict(r any) (admitted bool, at time.Time, err error) {
	v, ok := r.([]any)
	if !ok || len(v) != 2 {
		return false, time.Time{}, fmt.Errorf("throttle script replied %v", r)
	}
	a, _ := v[0].(int64)
	ms, _ := v[1].(int64)
	if ms > 0 {
		at = time.UnixMilli(ms)
	}
	return a == 1, at, nil
}

// Throttled runs throttleScript without a token for every throttle, in one
// pipeline.
func (s *Store) Throttled(ctx context.Context, ts []bot.Throttle, now time.Time) (time.Time, error) {
	if len(ts) == 0 {
		return time.Time{}, nil
	}
	if err := checkPolicies(ts); err != nil {
		return time.Time{}, fmt.Errorf("check throttles: %w", err)
	}
	merges, err := s.pullThrottles(ctx, ts, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("check throttles: %w", err)
	}
	calls := make([]scriptCall, len(ts))
	for i, t := range ts {
		calls[i] = s.throttleCall(t, now, "", merges[i])
	}
	octx, cancel := s.op(ctx)
	res, err := s.evalPipelined(octx, throttleScript, calls)
	cancel()
	if err != nil {
		return time.Time{}, fmt.Errorf("check throttles: %w", err)
	}
	s.dropMerged(ctx, merges)
	var latest time.Time
	for _, r := range res {
		admitted, until, err := verdict(r)
		if err != nil {
			return time.Time{}, fmt.Errorf("check throttles: %w", err)
		}
		if !admitted && until.After(latest) {
			latest = until
		}
	}
	return latest, nil
}

// Reserve charges the throttles one at a time, in order (one round trip
// each): a throttle that refuses stops the rest from being charged, and
// the charges already made are withdrawn.
func (s *Store) Reserve(ctx context.Context, ts []bot.Throttle, now time.Time) (bot.Reservation, error) {
	if err := checkPolicies(ts); err != nil {
		return bot.Reservation{}, fmt.Errorf("reserve attempt: %w", err)
	}
	r := bot.Reservation{OK: true, Throttles: ts, Token: rand.Text()}
	if len(ts) == 0 {
		return r, nil
	}
	merges, err := s.pullThrottles(ctx, ts, now)
	if err != nil {
		return bot.Reservation{}, fmt.Errorf("reserve attempt: %w", err)
	}
	for i, t := range ts {
		octx, cancel := s.op(ctx)
		res, err := s.evalPipelined(octx, throttleScript, []scriptCall{s.throttleCall(t, now, r.Token, merges[i])})
		cancel()
		var admitted bool
		var at time.Time
		if err == nil {
			admitted, at, err = verdict(res[0])
		}
		if err != nil || !admitted {
			if rerr := s.refund(context.WithoutCancel(ctx), ts[:i], r.Token); rerr != nil {
				s.log.Warn("withdraw attempt charges", "err", rerr)
			}
			if err != nil {
				return bot.Reservation{}, fmt.Errorf("reserve attempt: %w", err)
			}
			return bot.Reservation{Until: at}, nil
		}
		if at.After(r.Until) {
			r.Until = at
		}
	}
	s.dropMerged(ctx, merges)
	return r, nil
}

// Finish implements bot.Attempts.
func (s *Store) Finish(ctx context.Context, r bot.Reservation, o bot.Outcome) error {
	if !r.OK || len(r.Throttles) == 0 {
		return nil
	}
	switch o {
	case bot.Succeeded:
		ctx, cancel := s.op(ctx)
		defer cancel()
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, t := range r.Throttles {
				for _, tag := range s.throttleTags(t.Key) {
					p.Del(ctx, s.throttleKey(tag, "a"), s.throttleKey(tag, "hold"))
				}
				if s.legacyLive() {
					p.Del(ctx, legacyAttemptKey(s.opt.KeyPrefix, t.Key, "n"))
					p.Del(ctx, legacyAttemptKey(s.opt.KeyPrefix, t.Key, "lock"))
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("clear throttles: %w", s.classify(err))
		}
	case bot.NotEvaluated:
		if err := s.refund(ctx, r.Throttles, r.Token); err != nil {
			return fmt.Errorf("withdraw attempt: %w", err)
		}
	}
	return nil
}

// refund removes the charge token made on ts.
func (s *Store) refund(ctx context.Context, ts []bot.Throttle, token string) error {
	if len(ts) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, t := range ts {
			p.ZRem(ctx, s.throttleKey(s.throttleTags(t.Key)[0], "a"), token)
		}
		return nil
	})
	return s.classify(err)
}

// merge is what a throttle takes over from older tags and the previous
// release's keys, and which of those keys to delete once it has.
type merge struct {
	hold     int64
	attempts []attempt
	drop     []string
}

type attempt struct {
	score  int64
	member string
}

// pullThrottles reads, in one round trip, what the throttles have under
// older tags and legacy keys. With a keyring of one key and the legacy
// keys expired, it does nothing.
func (s *Store) pullThrottles(ctx context.Context, ts []bot.Throttle, now time.Time) ([]merge, error) {
	merges := make([]merge, len(ts))
	legacy := s.legacyLive()
	if len(s.keys.IDs()) == 1 && !legacy {
		return merges, nil
	}
	type pending struct {
		i        int
		set      *redis.ZSliceCmd
		hold     *redis.StringCmd
		keys     []string
		n, pttl  *redis.Cmd
		lock     *redis.StringCmd
		isLegacy bool
	}
	var reads []pending
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, t := range ts {
			for _, tag := range s.throttleTags(t.Key)[1:] {
				a, h := s.throttleKey(tag, "a"), s.throttleKey(tag, "hold")
				reads = append(reads, pending{i: i, set: p.ZRangeWithScores(ctx, a, 0, -1), hold: p.Get(ctx, h), keys: []string{a, h}})
			}
			if legacy {
				n, l := legacyAttemptKey(s.opt.KeyPrefix, t.Key, "n"), legacyAttemptKey(s.opt.KeyPrefix, t.Key, "lock")
				reads = append(reads, pending{i: i, isLegacy: true, n: p.Do(ctx, "GET", n), pttl: p.Do(ctx, "PTTL", n),
					lock: p.Get(ctx, l), keys: []string{n, l}})
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.classify(err)
	}
	for _, r := range reads {
		m := &merges[r.i]
		found := false
		if r.isLegacy {
			hold, attempts := legacyThrottle(r.n, r.pttl, r.lock, now)
			m.hold = max(m.hold, hold)
			m.attempts = append(m.attempts, attempts...)
			found = hold > 0 || len(attempts) > 0
		} else {
			if zs, err := r.set.Result(); err == nil {
				for _, z := range zs {
					m.attempts = append(m.attempts, attempt{score: int64(z.Score), member: fmt.Sprint(z.Member)})
				}
				found = len(zs) > 0
			}
			if h, err := r.hold.Int64(); err == nil {
				m.hold = max(m.hold, h)
				found = true
			}
		}
		if found {
			m.drop = append(m.drop, r.keys...)
		}
	}
	return merges, nil
}

// dropMerged deletes what a throttle has taken over. Merging is
// idempotent (the attempts keep their members), so a replica that read
// the old keys before this delete merges the same attempts again.
func (s *Store) dropMerged(ctx context.Context, merges []merge) {
	var keys []string
	for _, m := range merges {
		keys = append(keys, m.drop...)
	}
	if len(keys) == 0 {
		return
	}
	ctx, cancel := s.op(context.WithoutCancel(ctx))
	defer cancel()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, k)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("drop merged throttle keys", "err", s.classify(err))
	}
}

type scriptCall struct {
	keys []string
	args []any
}

// evalPipelined runs one script per call in one pipeline. The keys of
// different calls may live in different slots, so this cannot be one
// script. Scripts are preloaded at Open, but a restarted Redis forgets them:
// calls that fail with NOSCRIPT are sent again with the full source.
func (s *Store) evalPipelined(ctx context.Context, sc *redis.Script, calls []scriptCall) ([]any, error) {
	run := func(idx []int, full bool) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(idx))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range idx {
				if full {
					cmds[j] = sc.Eval(ctx, p, calls[i].keys, calls[i].args...)
				} else {
					cmds[j] = sc.EvalSha(ctx, p, calls[i].keys, calls[i].args...)
				}
			}
			return nil
		})
		return cmds, err
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	out := make([]any, len(calls))
	cmds, _ := run(all, false)
	var retry []int
	for j, c := range cmds {
		v, err := c.Result()
		switch {
		case err == nil:
			out[all[j]] = v
		case strings.HasPrefix(err.Error(), "NOSCRIPT"):
			retry = append(retry, all[j])
		default:
			return nil, s.classify(err)
		}
	}
	if len(retry) == 0 {
		return out, nil
	}
	cmds, _ = run(retry, true)
	for j, c := range cmds {
		v, err := c.Result()
		if err != nil {
			return nil, s.classify(err)
		}
		out[retry[j]] = v
	}
	return out, nil
}
