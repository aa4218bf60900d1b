package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// The send budget (bot.SendPolicy), shared by every replica:
//
//	<p>:{send:<ch>}:all       theoretical arrival time (unix µs) of the
//	                          next send of channel <ch>, all chats
//	<p>:{send:<ch>}:bulk      the same for bulk sends (reminders)
//	<p>:{send:<ch>}:c:<chat>  the same for one chat
//
// <ch> is the channel of the chat's identity ("tg"). All keys of a channel
// share one hash tag, so the one script that checks a chat and the global
// limit together runs in one slot of a Redis Cluster (all of a channel's
// sends go through one node: at 30 a second that is nothing). Each key
// expires when its time is past; values are compared with the script's now
// (the server's clock; the caller's in tests), so the expiries only tidy
// up.

// sendScript is a generic cell rate over two (bulk: three) keys, taken
// together or not at all.
//
//	KEYS[1] all, KEYS[2] chat, KEYS[3] bulk
//	ARGV[1] now µs (0: the server's clock), ARGV[2] every µs, ARGV[3] chat every µs,
//	ARGV[4] chat burst, ARGV[5] 1 for bulk, ARGV[6] bulk every µs
//
// Returns {taken, wait µs}. An interactive send reserves the next free
// global slot, even one in the future, and waits until then: answers queue
// in the order they came, and no replica polls. It is refused (taken 0,
// nothing changed) only when its chat is busy for longer than that; wait
// says when to ask again. A bulk send is taken only when it can go now:
// no slot is reserved ahead for anyone (no answer is waiting), its chat
// allows it and the bulk spacing too; otherwise wait says when to ask
// again, and an answer that comes meanwhile goes first.
var sendScript = redis.NewScript(`
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local every = tonumber(ARGV[2])
local cevery = tonumber(ARGV[3])
local cburst = tonumber(ARGV[4])
local function tat(k)
  local v = tonumber(redis.call('GET', k) or '0') or 0
  if v < now then
    v = now
  end
  return v
end
local function set(k, v)
  redis.call('SET', k, string.format('%.0f', v), 'PX', math.ceil((v - now) / 1000) + 1)
end
local g = tat(KEYS[1])
local c = tat(KEYS[2])
local cslot = c - (cburst - 1) * cevery
if cslot < now then
  cslot = now
end
if ARGV[5] == '1' then
  local bevery = tonumber(ARGV[6])
  local b = tat(KEYS[3])
  local at = math.max(g, cslot, b)
  if at > now then
    return {0, at - now}
  end
  set(KEYS[1], now + every)
  set(KEYS[2], c + cevery)
  if bevery > 0 then
    set(KEYS[3], now + bevery)
  end
  return {1, 0}
end
if cslot > g then
  return {0, cslot - now}
end
set(KEYS[1], g + every)
set(KEYS[2], math.max(c, g) + cevery)
return {1, g - now}
`)

// TakeSend asks the send budget for one send to chat at now (the zero
// time: now by the Redis server's clock, the one clock all replicas share;
// wait then counts from the script's run). When taken,
// the send may go after wait (0: at once), and the slot is the caller's:
// it must send then or waste it. When not taken, nothing was charged: ask
// again after wait. Errors wrap bot.ErrUnavailable when Redis did not
// answer; then nothing is known to be charged.
func (s *Store) TakeSend(ctx context.Context, chat string, class bot.SendClass, now time.Time, p bot.SendPolicy) (wait time.Duration, taken bool, err error) {
	if p.Every <= 0 || p.ChatEvery <= 0 || p.ChatBurst < 1 {
		return 0, false, fmt.Errorf("send budget: invalid policy %+v", p)
	}
	bulk := 0
	if class == bot.Bulk {
		bulk = 1
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	rs, err := sendScript.Run(ctx, s.rdb, s.sendKeys(chat),
		unixMicro(now), micros(p.Every), micros(p.ChatEvery), p.ChatBurst,
		bulk, micros(p.BulkEvery)).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("send budget: %w", s.classify(err))
	}
	if len(rs) != 2 || rs[1] < 0 {
		return 0, false, fmt.Errorf("send budget: unexpected answer %v", rs)
	}
	return time.Duration(rs[1]) * time.Microsecond, rs[0] == 1, nil
}

func unixMicro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// micros is d in whole microseconds, rounded up: 1s/30 rounded down would
// fit a 31st send into a second.
func micros(d time.Duration) int64 {
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

func (s *Store) sendKeys(chat string) []string {
	ch, local, ok := strings.Cut(chat, ":")
	if !ok {
		ch, local = "any", chat
	}
	// Braces would move the hash tag; identities never hold them.
	clean := strings.NewReplacer("{", "(", "}", ")")
	tag := s.opt.KeyPrefix + ":{send:" + clean.Replace(ch) + "}:"
	return []string{tag + "all", tag + "c:" + clean.Replace(local), tag + "bulk"}
}
