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

// rateScript is the generic cell rate algorithm for n messages of one
// user arriving at the same time.
//
//	KEYS[1] tat, KEYS[2] notice
//	ARGV[1] now µs, ARGV[2] emission interval µs, ARGV[3] burst,
//	ARGV[4] notice ms, ARGV[5] n
//
// Returns {2k+t, quiet}: the first k of the n are admitted, t is 1 when
// the next one is to carry the notice (the rest are skipped), and quiet
// (µs, for a refusal) is when the user's next message could be answered
// differently: admitted, or noticed again. Both keys hold
// times, compared with the caller's now: the expiries only tidy up. Lua
// numbers are doubles: µs since 1970 stay exact until the year 2255.
var rateScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local every = tonumber(ARGV[2])
local n = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local last = now + (tonumber(ARGV[3]) - 1) * every
local k = 0
while k < n and tat <= last do
  tat = tat + every
  k = k + 1
end
if k > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
if k == n then
  return {2 * k, 0}
end
local quiet = tat - (last - now)
local notice = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local t = 0
if now >= notice then
  notice = now + 1000 * tonumber(ARGV[4])
  redis.call('SET', KEYS[2], string.format('%.0f', notice), 'PX', ARGV[4])
  t = 1
end
if notice < quiet then
  quiet = notice
end
return {2 * k + t, quiet}
`)

// Take implements bot.RateLimiter. The entries of one user are charged
// together, one script call per user, and all calls go in one pipeline
// shared with concurrent calls: a getUpdates batch of one flooder's 100
// messages is one script run. Errors wrap bot.ErrUnavailable when Redis
// did not answer; then some users may have been charged.
func (s *Store) Take(ctx context.Context, users []string, now time.Time, p bot.RatePolicy) ([]bot.Charge, error) {
	if len(users) == 0 {
		return nil, nil
	}
	type group struct {
		user string
		at   []int // entries, in order
		cmd  *redis.Cmd
	}
	var groups []*group
	byUser := make(map[string]*group, len(users))
	for i, u := range users {
		g := byUser[u]
		if g == nil {
			g = &group{user: u}
			byUser[u] = g
			groups = append(groups, g)
		}
		g.at = append(g.at, i)
	}
	out := make([]bot.Charge, len(users))
	todo := groups
	for attempt := 0; len(todo) > 0; attempt++ {
		err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
			for _, g := range todo {
				g.cmd = rateScript.EvalSha(ctx, pipe, s.rateKeys(g.user),
					now.UnixMicro(), p.Every.Microseconds(), p.Burst, p.Notice.Milliseconds(), len(g.at))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("rate limit %d messages: %w", len(users), s.classify(err))
		}
		var again []*group
		for _, g := range todo {
			rs, err := g.cmd.Int64Slice()
			switch {
			case redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0:
				again = append(again, g) // not run: the server lost its scripts
				continue
			case err != nil:
				return nil, fmt.Errorf("rate limit %d messages: %w", len(users), s.classify(err))
			case len(rs) != 2 || rs[0] < 0 || int(rs[0]/2) > len(g.at):
				return nil, fmt.Errorf("rate limit: unexpected answer %v for %d messages", rs, len(g.at))
			}
			admitted, notice := int(rs[0]/2), rs[0]%2 == 1
			var quiet time.Time
			if rs[1] > 0 {
				quiet = time.UnixMicro(rs[1])
			}
			for k, i := range g.at {
				switch {
				case k < admitted:
					out[i] = bot.Charge{Verdict: bot.Admit}
				case k == admitted && notice:
					out[i] = bot.Charge{Verdict: bot.Notify, Quiet: quiet}
				default:
					out[i] = bot.Charge{Verdict: bot.Skip, Quiet: quiet}
				}
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
