package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// attemptKey names the keys of one attempt key. The engine's keys carry
// personal data ("id:<ID number>"), so only a hash reaches Redis.
func (s *Store) attemptKey(key, part string) string {
	sum := sha256.Sum256([]byte(key))
	return s.opt.KeyPrefix + ":{a:" + hex.EncodeToString(sum[:])[:32] + "}:" + part
}

// failScript records one failure of one attempt key.
//
//	KEYS[1] counter, KEYS[2] lock
//	ARGV[1] limit, ARGV[2] window ms, ARGV[3] lock ms, ARGV[4] lock end (unix ms)
//
// The window starts at the first failure (INCR, then PEXPIRE when the count
// is 1) and the counter dies with it. Reaching the limit sets the lock, whose
// value is its end so Locked can report it, and clears the counter: after a
// lockout the user has the full allowance again. Running it as one script
// keeps the count exact when replicas fail the same key concurrently.
// Returns the lock end, or 0.
var failScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return tonumber(ARGV[4])
end
return 0
`)

// Locked reads the locks of all keys in one pipeline and returns the latest
// end after now.
func (s *Store) Locked(ctx context.Context, keys []string, now time.Time) (time.Time, error) {
	if len(keys) == 0 {
		return time.Time{}, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.attemptKey(k, "lock"))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return time.Time{}, fmt.Errorf("read attempt locks: %w", s.classify(err))
	}
	var latest time.Time
	for _, c := range cmds {
		ms, err := c.Int64()
		if err != nil {
			// Absent (redis.Nil) or not ours: not locked.
			continue
		}
		if end := time.UnixMilli(ms); end.After(now) && end.After(latest) {
			latest = end
		}
	}
	return latest, nil
}

// Fail runs failScript for every key in one pipeline.
func (s *Store) Fail(ctx context.Context, keys []string, now time.Time, p bot.AttemptPolicy) (time.Time, error) {
	if len(keys) == 0 {
		return time.Time{}, nil
	}
	if p.Limit <= 0 || p.Window < time.Millisecond || p.LockFor < time.Millisecond {
		return time.Time{}, fmt.Errorf("record failed attempt: invalid policy %+v", p)
	}
	end := now.Add(p.LockFor).UnixMilli()
	args := []any{p.Limit, p.Window.Milliseconds(), p.LockFor.Milliseconds(), end}
	calls := make([]scriptCall, len(keys))
	for i, k := range keys {
		calls[i] = scriptCall{keys: []string{s.attemptKey(k, "n"), s.attemptKey(k, "lock")}, args: args}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.evalPipelined(ctx, failScript, calls)
	if err != nil {
		return time.Time{}, fmt.Errorf("record failed attempt: %w", err)
	}
	var locked time.Time
	for _, r := range res {
		if ms, ok := r.(int64); ok && ms > 0 {
			if t := time.UnixMilli(ms); t.After(locked) {
				locked = t
			}
		}
	}
	return locked, nil
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
