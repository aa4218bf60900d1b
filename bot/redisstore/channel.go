package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// State a webhook channel keeps for itself (bot/wechat): it acknowledges a
// message at once and answers it later, so it holds what it acknowledged,
// queues what it will send, and keeps a few small values. Keys:
//
//	<p>:{v:NAME}                a small value with a lifetime, sealed (Value, SetValue, DeleteValue)
//	<p>:{held}:CHANNEL          hash: field message id, value "<unix ms>:<message>", sealed
//	<p>:{c:CHAT}:out            list: the chat's replies not yet sent, oldest first, sealed
//	<p>:{c:CHAT}:queued:UPDATE  the update's replies were queued (dedupe of a re-handled update)
//	<p>:{parked}:CHANNEL        sorted set: chats with queued replies to retry, by when
//
// Everything here is short-lived (an access token, a reply window of 48
// hours, a menu, messages in flight; a template subscription, the
// longest, 80 days unless renewed by use): no migration or key rotation
// has to visit it, since a value sealed under a key outlives neither the
// key's 90 days in SHEBAO_KEYS after a rotation nor its own TTL. All of
// it is new keys beside the previous release's, which it does not touch:
// the schema version stays.
const (
	// outTTL bounds how long unsent replies are kept: WeChat lets a reply
	// out for 48 hours after the user's message, and not after.
	outTTL = 48 * time.Hour
)

func (s *Store) valueKey(name string) string { return s.opt.KeyPrefix + ":{v:" + name + "}" }

// Value reads a value set by SetValue; ok is false when there is none (or
// it expired, or it no longer opens).
func (s *Store) Value(ctx context.Context, name string) (val string, ok bool, err error) {
	raw, ok, err := s.rawValue(ctx, name)
	if err != nil || !ok {
		return "", false, err
	}
	plain, _, err := s.keys.Open(s.ad(s.valueKey(name)), raw)
	if err != nil {
		s.log.Warn("dropping a value that does not open", "err", err)
		return "", false, nil
	}
	return string(plain), true, nil
}

func (s *Store) rawValue(ctx context.Context, name string) ([]byte, bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	raw, err := s.rdb.Get(ctx, s.valueKey(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read value: %w", s.classify(err))
	}
	return raw, true, nil
}

// SetValue stores val under name for ttl (0: no expiry). With onlyNew it
// stores nothing when a value is there, and reports whether it stored:
// a lock.
func (s *Store) SetValue(ctx context.Context, name, val string, ttl time.Duration, onlyNew bool) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	sealed := s.keys.Seal(s.ad(s.valueKey(name)), []byte(val))
	var err error
	set := true
	if onlyNew {
		set, err = s.rdb.SetNX(ctx, s.valueKey(name), sealed, ttl).Result()
	} else {
		err = s.rdb.Set(ctx, s.valueKey(name), sealed, ttl).Err()
	}
	if err != nil {
		return false, fmt.Errorf("set value: %w", s.classify(err))
	}
	return set, nil
}

// delIfScript deletes a key only if it still holds the value read.
//
//	KEYS[1] key; ARGV[1] expected
var delIfScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// DeleteValue deletes name's value if it is ifVal (a compare-and-delete:
// a replica drops the access token it saw refused, not the one another
// replica has put in its place since), or whatever it is when ifVal is "".
// It reports whether a value was deleted.
func (s *Store) DeleteValue(ctx context.Context, name, ifVal string) (bool, error) {
	if ifVal == "" {
		ctx, cancel := s.op(ctx)
		defer cancel()
		n, err := s.rdb.Del(ctx, s.valueKey(name)).Result()
		if err != nil {
			return false, fmt.Errorf("delete value: %w", s.classify(err))
		}
		return n == 1, nil
	}
	// Sealed values differ at every write, so the comparison is on the
	// opened value and the delete on the sealed bytes read.
	raw, ok, err := s.rawValue(ctx, name)
	if err != nil || !ok {
		return false, err
	}
	plain, _, err := s.keys.Open(s.ad(s.valueKey(name)), raw)
	if err == nil && string(plain) != ifVal {
		return false, nil
	}
	n, err := s.runScript(ctx, delIfScript, []string{s.valueKey(name)}, raw)
	if err != nil {
		return false, fmt.Errorf("delete value: %w", err)
	}
	return n == 1, nil
}

func (s *Store) inboxKey(channel string) string { return s.opt.KeyPrefix + ":{held}:" + channel }

func (s *Store) inboxAD(channel, id string) string { return s.ad(s.inboxKey(channel)) + "#" + id }

// HoldMessage keeps a message a channel acknowledged before handling it,
// so that a crash after the acknowledgement loses nothing. It reports
// false, storing nothing, when the message is held already (a platform's
// retry of a message in hand).
func (s *Store) HoldMessage(ctx context.Context, channel, id string, at time.Time, raw []byte) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	v := strconv.AppendInt(nil, at.UnixMilli(), 10)
	v = append(append(v, ':'), raw...)
	pipe := s.rdb.Pipeline()
	set := pipe.HSetNX(ctx, s.inboxKey(channel), id, s.keys.Seal(s.inboxAD(channel, id), v))
	pipe.PExpire(ctx, s.inboxKey(channel), heldTTL) // tidies up after a channel turned off for good
	_, _ = pipe.Exec(ctx)
	if err := set.Err(); err != nil {
		return false, fmt.Errorf("hold message: %w", s.classify(err))
	}
	return set.Val(), nil
}

// ReleaseMessage forgets a held message that was handled.
func (s *Store) ReleaseMessage(ctx context.Context, channel, id string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.HDel(ctx, s.inboxKey(channel), id).Err(); err != nil {
		return fmt.Errorf("release message: %w", s.classify(err))
	}
	return nil
}

// HeldMessages calls yield for each message still held, in no particular
// order. Entries that do not open or parse are deleted.
func (s *Store) HeldMessages(ctx context.Context, channel string, yield func(id string, at time.Time, raw []byte)) error {
	var bad []string
	seen := map[string]bool{}
	var cursor uint64
	for {
		octx, cancel := s.op(ctx)
		kv, next, err := s.rdb.HScan(octx, s.inboxKey(channel), cursor, "", 512).Result()
		cancel()
		if err != nil {
			return fmt.Errorf("read held messages: %w", s.classify(err))
		}
		for i := 0; i+1 < len(kv); i += 2 {
			id := kv[i]
			if seen[id] {
				continue // HSCAN may return a field twice
			}
			seen[id] = true
			val, _, err := s.keys.Open(s.inboxAD(channel, id), []byte(kv[i+1]))
			ms, raw, ok := bytes.Cut(val, []byte(":"))
			at, perr := strconv.ParseInt(string(ms), 10, 64)
			if err != nil || !ok || perr != nil {
				bad = append(bad, id)
				continue
			}
			yield(id, time.UnixMilli(at), raw)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if len(bad) > 0 {
		octx, cancel := s.op(ctx)
		err := s.rdb.HDel(octx, s.inboxKey(channel), bad...).Err()
		cancel()
		s.log.Warn("dropped held messages that do not open", "n", len(bad), "err", err)
	}
	return nil
}

func (s *Store) outKey(chat string) string { return s.chatKey(chat, "out") }

func (s *Store) queuedKey(chat string, update int64) string {
	return s.chatKey(chat, "queued:"+strconv.FormatInt(update, 10))
}

// Queue appends the replies of a chat's update to the chat's outbox and
// marks the update queued, in one transaction: a replica that handles the
// update again after a crash finds it queued (Queued) and sends what is
// left instead of answering twice.
func (s *Store) Queue(ctx context.Context, chat string, update int64, parts [][]byte) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	key := s.outKey(chat)
	pipe := s.rdb.TxPipeline()
	if len(parts) > 0 {
		vals := make([]any, len(parts))
		for i, p := range parts {
			vals[i] = s.keys.Seal(s.ad(key), p)
		}
		pipe.RPush(ctx, key, vals...)
		pipe.PExpire(ctx, key, outTTL)
	}
	pipe.Set(ctx, s.queuedKey(chat, update), "1", s.opt.DedupeTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("queue replies of chat %s: %w", chat, s.classify(err))
	}
	return nil
}

// Queued reports whether the update's replies were queued.
func (s *Store) Queued(ctx context.Context, chat string, update int64) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := s.rdb.Exists(ctx, s.queuedKey(chat, update)).Result()
	if err != nil {
		return false, fmt.Errorf("read queued mark of chat %s: %w", chat, s.classify(err))
	}
	return n == 1, nil
}

// PopPart takes the chat's oldest queued reply off its outbox and says
// how many are left after it; part is nil when there was none. Taking it
// off before it is sent is what makes a send at most once: a replica that
// dies while sending leaves nothing to send again.
func (s *Store) PopPart(ctx context.Context, chat string) (part []byte, rest int, err error) {
	for {
		octx, cancel := s.op(ctx)
		key := s.outKey(chat)
		pipe := s.rdb.TxPipeline()
		pop := pipe.LPop(octx, key)
		n := pipe.LLen(octx, key)
		_, err := pipe.Exec(octx)
		cancel()
		if errors.Is(err, redis.Nil) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("take queued reply of chat %s: %w", chat, s.classify(err))
		}
		raw, _ := pop.Bytes()
		plain, _, err := s.keys.Open(s.ad(key), raw)
		if err != nil {
			// Not ours to send; the next one may be.
			s.log.Warn("dropping a queued reply that does not open", "chat", chat, "err", err)
			continue
		}
		return plain, int(n.Val()), nil
	}
}

// UnpopPart puts back a reply PopPart took that was certainly not sent,
// at the head of the outbox.
func (s *Store) UnpopPart(ctx context.Context, chat string, part []byte) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	key := s.outKey(chat)
	pipe := s.rdb.TxPipeline()
	pipe.LPush(ctx, key, s.keys.Seal(s.ad(key), part))
	pipe.PExpire(ctx, key, outTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("put back queued reply of chat %s: %w", chat, s.classify(err))
	}
	return nil
}

// DropParts empties the chat's outbox and reports how many replies were
// in it: they can no longer be sent (the reply window closed).
func (s *Store) DropParts(ctx context.Context, chat string) (int, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	pipe := s.rdb.TxPipeline()
	n := pipe.LLen(ctx, s.outKey(chat))
	pipe.Del(ctx, s.outKey(chat))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("drop queued replies of chat %s: %w", chat, s.classify(err))
	}
	return int(n.Val()), nil
}

func (s *Store) parkedKey(channel string) string { return s.opt.KeyPrefix + ":{parked}:" + channel }

// Park notes that chat has queued replies to retry at at (an outage of the
// platform outlasted a turn's retries), so that any replica takes them up.
func (s *Store) Park(ctx context.Context, channel, chat string, at time.Time) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	pipe := s.rdb.Pipeline()
	add := pipe.ZAdd(ctx, s.parkedKey(channel), redis.Z{Score: float64(at.UnixMilli()), Member: chat})
	pipe.PExpire(ctx, s.parkedKey(channel), outTTL)
	_, _ = pipe.Exec(ctx)
	if err := add.Err(); err != nil {
		return fmt.Errorf("park chat %s: %w", chat, s.classify(err))
	}
	return nil
}

// Unpark removes chat from the parked set.
func (s *Store) Unpark(ctx context.Context, channel, chat string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.ZRem(ctx, s.parkedKey(channel), chat).Err(); err != nil {
		return fmt.Errorf("unpark chat %s: %w", chat, s.classify(err))
	}
	return nil
}

// Parked lists up to n parked chats whose retry time has come by now.
func (s *Store) Parked(ctx context.Context, channel string, now time.Time, n int) ([]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	chats, err := s.rdb.ZRangeByScore(ctx, s.parkedKey(channel), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(n),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list parked chats: %w", s.classify(err))
	}
	return chats, nil
}
