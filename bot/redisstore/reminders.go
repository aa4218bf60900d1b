package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// Reminder keys, beside the per-user setting at userKey(chat, user,
// reminderKey) that Forget deletes:
//
//	<p>:{remind}:slot:<slot>   set of "<user>:<chat>" opted in to that slot
//	<p>:{remind}:lease:<name>  token of the replica running a pass
//	<p>:{m:<mark>}             a sent-mark or done-mark, with a TTL
//
// The per-user key is the truth; the slot sets are an index for the pass
// and may hold members whose setting is gone (Forget, link expiry). Scan
// drops those as it meets them. Keeping the index apart from the setting
// lets Forget stay one DEL in one slot, and a pass read 100,000 settings
// with one SSCAN and one pipelined GET per batch instead of a hash per slot
// that Forget would have to know about.

// reminderJSON is the stored form of bot.ReminderSetting.
type reminderJSON struct {
	Slot     string    `json:"slot"`
	PersonID string    `json:"person_id"`
	Until    time.Time `json:"until"`
	Lang     string    `json:"lang,omitempty"`
}

func (s *Store) slotKey(slot string) string { return s.opt.KeyPrefix + ":{remind}:slot:" + slot }

func (s *Store) markKey(mark string) string { return s.opt.KeyPrefix + ":{m:" + mark + "}" }

func member(chatID, userID int64) string {
	return strconv.FormatInt(userID, 10) + ":" + strconv.FormatInt(chatID, 10)
}

var allSlots = []string{bot.SlotMorning, bot.SlotAfternoon, bot.SlotEvening}

// Reminder returns the user's reminder setting; ok is false when reminders
// are off (or the setting expired with the verification).
func (s *Store) Reminder(ctx context.Context, chatID, userID int64) (bot.ReminderSetting, bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, s.userKey(chatID, userID, reminderKey)).Result()
	if errors.Is(err, redis.Nil) {
		return bot.ReminderSetting{}, false, nil
	}
	if err != nil {
		return bot.ReminderSetting{}, false, fmt.Errorf("load reminder setting of chat %d: %w", chatID, s.classify(err))
	}
	r, ok := s.decodeReminder(chatID, userID, v)
	return r, ok, nil
}

func (s *Store) decodeReminder(chatID, userID int64, v string) (bot.ReminderSetting, bool) {
	var j reminderJSON
	if err := json.Unmarshal([]byte(v), &j); err != nil || !bot.ValidSlot(j.Slot) {
		s.log.Warn("ignoring undecodable reminder setting", "chat", chatID, "err", err)
		return bot.ReminderSetting{}, false
	}
	return bot.ReminderSetting{ChatID: chatID, UserID: userID, Slot: j.Slot, PersonID: j.PersonID, Until: j.Until, Lang: j.Lang}, true
}

// SetReminder stores the setting, expiring with the verification at Until,
// and moves the user to the slot's index. The two writes go in one pipeline
// but not one transaction (they live in different cluster slots): the
// setting is written first, and a pass trusts the setting over the index.
func (s *Store) SetReminder(ctx context.Context, r bot.ReminderSetting) error {
	if !bot.ValidSlot(r.Slot) {
		return fmt.Errorf("set reminder of chat %d: unknown slot %q", r.ChatID, r.Slot)
	}
	b, err := json.Marshal(reminderJSON{Slot: r.Slot, PersonID: r.PersonID, Until: r.Until.UTC(), Lang: r.Lang})
	if err != nil {
		return fmt.Errorf("set reminder of chat %d: %w", r.ChatID, err)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	k, m := s.userKey(r.ChatID, r.UserID, reminderKey), member(r.ChatID, r.UserID)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k, b, 0)
		p.PExpireAt(ctx, k, r.Until)
		for _, slot := range allSlots {
			if slot != r.Slot {
				p.SRem(ctx, s.slotKey(slot), m)
			}
		}
		p.SAdd(ctx, s.slotKey(r.Slot), m)
		return nil
	})
	if err != nil {
		return fmt.Errorf("set reminder of chat %d: %w", r.ChatID, s.classify(err))
	}
	return nil
}

// StopReminder deletes the setting and removes the user from every slot.
func (s *Store) StopReminder(ctx context.Context, chatID, userID int64) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	m := member(chatID, userID)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.userKey(chatID, userID, reminderKey))
		for _, slot := range allSlots {
			p.SRem(ctx, s.slotKey(slot), m)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stop reminders of chat %d: %w", chatID, s.classify(err))
	}
	return nil
}

// ScanReminders returns one batch of the settings opted in to slot, about
// count at a time, from cursor (0 to start); next is 0 after the last
// batch. As SSCAN, a setting present for the whole scan is returned at
// least once and may be returned twice. Index members whose setting is gone
// or has moved to another slot are dropped from the index.
func (s *Store) ScanReminders(ctx context.Context, slot string, cursor uint64, count int) ([]bot.ReminderSetting, uint64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	members, next, err := s.rdb.SScan(ctx, s.slotKey(slot), cursor, "", int64(count)).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("scan reminders of slot %s: %w", slot, s.classify(err))
	}
	if len(members) == 0 {
		return nil, next, nil
	}
	type ids struct{ chat, user int64 }
	who := make([]ids, 0, len(members))
	var stale []any
	cmds := make([]*redis.StringCmd, 0, len(members))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range members {
			u, c, ok := strings.Cut(m, ":")
			user, err1 := strconv.ParseInt(u, 10, 64)
			chat, err2 := strconv.ParseInt(c, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				stale = append(stale, m)
				continue
			}
			who = append(who, ids{chat, user})
			cmds = append(cmds, p.Get(ctx, s.userKey(chat, user, reminderKey)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("read reminders of slot %s: %w", slot, s.classify(err))
	}
	out := make([]bot.ReminderSetting, 0, len(cmds))
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if err != nil { // redis.Nil: forgotten or expired
			stale = append(stale, member(who[i].chat, who[i].user))
			continue
		}
		r, ok := s.decodeReminder(who[i].chat, who[i].user, v)
		if !ok || r.Slot != slot {
			stale = append(stale, member(who[i].chat, who[i].user))
			continue
		}
		out = append(out, r)
	}
	if len(stale) > 0 {
		// Best effort: a stale member left behind is dropped next time.
		if err := s.rdb.SRem(ctx, s.slotKey(slot), stale...).Err(); err != nil {
			s.log.Warn("drop stale reminder index entries", "slot", slot, "err", err)
		}
	}
	return out, next, nil
}

// Claim sets mark with the TTL unless it exists, atomically (SET NX), and
// reports whether this call set it. Two replicas claiming one mark: exactly
// one wins.
func (s *Store) Claim(ctx context.Context, mark string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	ok, err := s.rdb.SetNX(ctx, s.markKey(mark), "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim mark: %w", s.classify(err))
	}
	return ok, nil
}

// Release deletes mark, so that a later pass may claim it again.
func (s *Store) Release(ctx context.Context, mark string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.Del(ctx, s.markKey(mark)).Err(); err != nil {
		return fmt.Errorf("release mark: %w", s.classify(err))
	}
	return nil
}

// Marked reports whether mark is set.
func (s *Store) Marked(ctx context.Context, mark string) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := s.rdb.Exists(ctx, s.markKey(mark)).Result()
	if err != nil {
		return false, fmt.Errorf("read mark: %w", s.classify(err))
	}
	return n == 1, nil
}

// leaseScript takes the lease when it is free or already ours, and sets
// its expiry either way: acquire and renew in one round trip.
var leaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`)

// unleaseScript deletes the lease only if it is still ours.
var unleaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Lease takes or renews the named lease for token for ttl, and reports
// whether token holds it now.
func (s *Store) Lease(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := leaseScript.Run(ctx, s.rdb, []string{s.opt.KeyPrefix + ":{remind}:lease:" + name}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, s.classify(err))
	}
	return n == 1, nil
}

// Unlease gives the lease up if token holds it.
func (s *Store) Unlease(ctx context.Context, name, token string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := unleaseScript.Run(ctx, s.rdb, []string{s.opt.KeyPrefix + ":{remind}:lease:" + name}, token).Err(); err != nil {
		return fmt.Errorf("release lease %s: %w", name, s.classify(err))
	}
	return nil
}
