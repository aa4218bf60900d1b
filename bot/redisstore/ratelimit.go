package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// The per-user rate limit (bot.RateLimiter), shared by every replica:
//
//	<p>:{r:<user>}:tat      theoretical arrival time of the user's next
//	                        message (unix µs); expires when it is past
//	<p>:{r:<user>}:notice   no notice to the user before this (unix µs);
//	                        expires then
//
// <user> is the channel-scoped identity ("tg:123"). Both keys of a user
// share a hash tag, so one script updates them on a Redis Cluster.

// rateScript is the generic cell rate algorithm for one message.
//
//	KEYS[1] tat, KEYS[2] notice
//	ARGV[1] now µs, ARGV[2] emission interval µs, ARGV[3] burst, ARGV[4] notice ms
//
// Returns 0 (admit), 1 (over the limit, tell the user) or 2 (over, told).
// Both keys hold times, compared with the caller's now: the expiries only
// tidy up. Lua numbers are doubles: µs since 1970 stay exact until the
// year 2255.
var rateScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local every = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
if tat - now <= (tonumber(ARGV[3]) - 1) * every then
  tat = tat + every
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  return 0
end
if now < (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) then
  return 2
end
redis.call('SET', KEYS[2], string.format('%.0f', now + 1000 * tonumber(ARGV[4])), 'PX', ARGV[4])
return 1
`)

// Take implements bot.RateLimiter: one script call per entry, all in one
// pipeline shared with concurrent calls. Errors wrap bot.ErrUnavailable
// when Redis did not answer; then nothing may have been charged, or some.
func (s *Store) Take(ctx context.Context, users []string, now time.Time, p bot.RatePolicy) ([]bot.Verdict, error) {
	if len(users) == 0 {
		return nil, nil
	}
	args := []any{now.UnixMicro(), p.Every.Microseconds(), p.Burst, p.Notice.Milliseconds()}
	cmds := make([]*redis.Cmd, len(users))
	todo := make([]int, len(users))
	for i := range todo {
		todo[i] = i
	}
	out := make([]bot.Verdict, len(users))
	for attempt := 0; len(todo) > 0; attempt++ {
		err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
			for _, i := range todo {
				cmds[i] = rateScript.EvalSha(ctx, pipe, s.rateKeys(users[i]), args...)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("rate limit %d messages: %w", len(users), s.classify(err))
		}
		var again []int
		for _, i := range todo {
			v, err := cmds[i].Int64()
			switch {
			case err == nil && v >= 0 && v <= 2:
				out[i] = bot.Verdict(v)
			case redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0:
				again = append(again, i) // not run: the server lost its scripts
			case err == nil:
				return nil, fmt.Errorf("rate limit: unexpected verdict %d", v)
			default:
				return nil, fmt.Errorf("rate limit %d messages: %w", len(users), s.classify(err))
			}
		}
		if len(again) > 0 {
			lctx, cancel := s.op(ctx)
			err := rateScript.Load(lctx, s.rdb).Err()
			cancel()
			if err != nil {
				return nil, fmt.Errorf("load rate limit script: %w", s.classify(err))
			}
		}
		todo = again
	}
	return out, nil
}

func (s *Store) rateKeys(user string) []string {
	// Braces would move the hash tag: identities never hold them, but
	// one that did must not break the cluster layout.
	tag := s.opt.KeyPrefix + ":{r:" + strings.NewReplacer("{", "(", "}", ")").Replace(user) + "}:"
	return []string{tag + "tat", tag + "notice"}
}
