package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
//	<p>:{p:<tag>}:m:<mark>     a mark about a person (sent-mark, reminded
//	                           today), with its TTL; <tag> is the person's
//	                           keyed tag
//	<p>:{p:<tag>}:idx          the names of that person's marks, so that
//	                           Forget and a key rotation find them all
//	<p>:{m:<mark>}             a mark about no one (a slot done for the day)
//	<p>:{p:<tag>}:chosen       the chat the person last turned reminders on
//	                           in, sealed, expiring with that setting
//
// The per-user key is the truth; the slot sets are an index for the pass
// and may hold members whose setting is gone (link expiry). Scan drops
// those as it meets them; Forget removes the user's entries itself, since
// an entry names the user. Keeping the index apart from the setting lets a
// pass read 100,000 settings with one SSCAN and one pipelined GET per
// batch.

// reminderJSON is the stored form of bot.ReminderSetting, sealed.
type reminderJSON struct {
	Slot     string    `json:"slot"`
	PersonID string    `json:"person_id"`
	Until    time.Time `json:"until"`
	Lang     string    `json:"lang,omitempty"`
	PhoneTag string    `json:"phone_tag,omitempty"`
}

func (s *Store) slotKey(slot string) string { return s.opt.KeyPrefix + ":{remind}:slot:" + slot }

// globalMarkKey names a mark about no one.
func (s *Store) globalMarkKey(mark string) string { return s.opt.KeyPrefix + ":{m:" + mark + "}" }

// member is a setting's entry in its slot's set: "user:chat" of two
// Telegram numbers, as the releases before string identities wrote it, and
// "user|chat" of identities as they appear in key names otherwise (which
// hold a ':' of their own).
func member(chat, user string) string {
	u, c := keyID(user), keyID(chat)
	if !strings.Contains(u, ":") && !strings.Contains(c, ":") {
		return u + ":" + c
	}
	return u + "|" + c
}

// parseMember is the inverse of member, for both forms.
func parseMember(m string) (chat, user string, ok bool) {
	u, c, ok := strings.Cut(m, "|")
	if !ok {
		// The previous releases' "user:chat", both Telegram numbers.
		if u, c, ok = strings.Cut(m, ":"); !ok || strings.Contains(c, ":") {
			return "", "", false
		}
		if _, err := strconv.ParseInt(u, 10, 64); err != nil {
			return "", "", false
		}
		if _, err := strconv.ParseInt(c, 10, 64); err != nil {
			return "", "", false
		}
	}
	return idOfKey(c), idOfKey(u), u != "" && c != ""
}

var allSlots = []string{bot.SlotMorning, bot.SlotAfternoon, bot.SlotEvening}

// Reminder returns the user's reminder setting; ok is false when reminders
// are off (or the setting expired with the verification).
func (s *Store) Reminder(ctx context.Context, chat, user string) (bot.ReminderSetting, bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, s.userKey(chat, user, reminderKey)).Result()
	if errors.Is(err, redis.Nil) {
		return bot.ReminderSetting{}, false, nil
	}
	if err != nil {
		return bot.ReminderSetting{}, false, fmt.Errorf("load reminder setting of chat %s: %w", chat, s.classify(err))
	}
	r, ok := s.decodeReminder(chat, user, v)
	return r, ok, nil
}

func (s *Store) decodeReminder(chat, user string, v string) (bot.ReminderSetting, bool) {
	var j reminderJSON
	if _, err := s.openJSON(s.userKey(chat, user, reminderKey), []byte(v), &j); err != nil || !bot.ValidSlot(j.Slot) {
		s.log.Warn("ignoring undecodable reminder setting", "chat", chat, "err", err)
		return bot.ReminderSetting{}, false
	}
	return bot.ReminderSetting{Chat: chat, User: user, Slot: j.Slot, PersonID: j.PersonID, Until: j.Until,
		Lang: j.Lang, PhoneTag: j.PhoneTag}, true
}

// chosenJSON is the stored form of a person's chosen reminder chat. The
// value is "<name>.<sealed JSON>", name being the keyed tag of the chat's
// index member, so that Forget can delete a pointer to its own chat in
// Lua without reading it.
type chosenJSON struct {
	Chat string `json:"chat"`
	User string `json:"user"`
}

const chosenDomain = "chosen"

func (s *Store) chosenKey(person string) string {
	return s.personKey(s.personTags(person)[0], "chosen")
}

// chosenValue is the stored value of c under key.
func (s *Store) chosenValue(key string, c chosenJSON) ([]byte, error) {
	b, err := s.sealJSON(key, c)
	if err != nil {
		return nil, err
	}
	return append([]byte(s.keys.Name(chosenDomain, member(c.Chat, c.User))+"."), b...), nil
}

// openChosen decodes a stored value of key.
func (s *Store) openChosen(key, v string) (chosenJSON, error) {
	var c chosenJSON
	_, sealed, ok := strings.Cut(v, ".")
	if !ok {
		return c, errors.New("no name")
	}
	_, err := s.openJSON(key, []byte(sealed), &c)
	return c, err
}

// forgetChosenScript deletes a pointer whose name is ARGV[1].
var forgetChosenScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '.' then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// moveChosen moves a person's chosen reminder chat from tag from to tag
// to, sealed and named again under the current key, keeping its expiry;
// one already under the new tag wins. Interrupted, it is simply run again.
func (s *Store) moveChosen(ctx context.Context, from, to string) error {
	fk, tk := s.personKey(from, "chosen"), s.personKey(to, "chosen")
	octx, cancel := s.op(ctx)
	defer cancel()
	v, err := s.rdb.Get(octx, fk).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return s.classify(err)
	}
	ttl, err := s.rdb.PTTL(octx, fk).Result()
	if err != nil {
		return s.classify(err)
	}
	if c, err := s.openChosen(fk, v); err == nil && ttl > 0 {
		b, err := s.chosenValue(tk, c)
		if err != nil {
			return err
		}
		if err := s.rdb.SetNX(octx, tk, b, ttl).Err(); err != nil {
			return s.classify(err)
		}
	}
	return s.classify(s.rdb.Del(octx, fk).Err())
}

// chosen returns the chat the person last turned reminders on in.
func (s *Store) chosen(ctx context.Context, person string) (chosenJSON, bool, error) {
	if s.rotating.Load() {
		tags := s.personTags(person)
		for _, old := range tags[1:] {
			if err := s.moveChosen(ctx, old, tags[0]); err != nil {
				return chosenJSON{}, false, err
			}
		}
	}
	k := s.chosenKey(person)
	octx, cancel := s.op(ctx)
	v, err := s.rdb.Get(octx, k).Result()
	cancel()
	if errors.Is(err, redis.Nil) {
		return chosenJSON{}, false, nil
	}
	if err != nil {
		return chosenJSON{}, false, s.classify(err)
	}
	c, err := s.openChosen(k, v)
	if err != nil {
		s.log.Warn("ignoring undecodable chosen reminder chat", "err", err)
		return chosenJSON{}, false, nil
	}
	return c, true, nil
}

// SetReminder stores the setting, expiring with the verification at Until,
// and moves the user to the slot's index. The writes go in one pipeline
// but not one transaction (they live in different cluster slots): the
// setting is written first, and a pass trusts the setting over the index.
//
// The chat becomes the person's one reminder chat: a person verified in
// two chats (two channels, two accounts) is reminded once, where they
// last turned reminders on, so a setting of the same person in another
// chat is stopped. A key rotation moves the pointer with the person's
// marks.
func (s *Store) SetReminder(ctx context.Context, r bot.ReminderSetting) error {
	if !bot.ValidSlot(r.Slot) {
		return fmt.Errorf("set reminder of chat %s: unknown slot %q", r.Chat, r.Slot)
	}
	k, m := s.userKey(r.Chat, r.User, reminderKey), member(r.Chat, r.User)
	b, err := s.sealJSON(k, reminderJSON{Slot: r.Slot, PersonID: r.PersonID, Until: r.Until.UTC(), Lang: r.Lang, PhoneTag: r.PhoneTag})
	if err != nil {
		return fmt.Errorf("set reminder of chat %s: %w", r.Chat, err)
	}
	// Turning reminders on (not rewriting this chat's own setting, as a
	// language change or a phone-tag refresh does) makes this chat the
	// person's one reminder chat.
	var chosen []byte
	var other *chosenJSON
	if r.PersonID != "" {
		cur, on, err := s.Reminder(ctx, r.Chat, r.User)
		if err != nil {
			return fmt.Errorf("set reminder of chat %s: %w", r.Chat, err)
		}
		if !on || cur.PersonID != r.PersonID {
			prev, ok, err := s.chosen(ctx, r.PersonID)
			if err != nil {
				return fmt.Errorf("set reminder of chat %s: %w", r.Chat, err)
			}
			if ok && (prev.Chat != r.Chat || prev.User != r.User) {
				other = &prev
			}
			if chosen, err = s.chosenValue(s.chosenKey(r.PersonID), chosenJSON{Chat: r.Chat, User: r.User}); err != nil {
				return fmt.Errorf("set reminder of chat %s: %w", r.Chat, err)
			}
		}
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	_, err = s.rdb.Pipelined(octx, func(p redis.Pipeliner) error {
		p.Set(octx, k, b, 0)
		p.PExpireAt(octx, k, r.Until)
		if ttl := time.Until(r.Until); chosen != nil && ttl > 0 {
			p.Set(octx, s.chosenKey(r.PersonID), chosen, ttl)
		}
		for _, slot := range allSlots {
			if slot != r.Slot {
				p.SRem(octx, s.slotKey(slot), m)
			}
		}
		p.SAdd(octx, s.slotKey(r.Slot), m)
		return nil
	})
	if err != nil {
		return fmt.Errorf("set reminder of chat %s: %w", r.Chat, s.classify(err))
	}
	// Then, with the new setting written, the other chat's stops: a
	// failure here leaves both on, and the person still gets each
	// reminder once (the sent-marks are the person's).
	if other != nil {
		old, on, err := s.Reminder(ctx, other.Chat, other.User)
		if err == nil && on && old.PersonID == r.PersonID {
			err = s.StopReminder(ctx, other.Chat, other.User)
		}
		if err != nil {
			s.log.Warn("stop the reminders of the person's other chat", "chat", other.Chat, "err", err)
		}
	}
	return nil
}

// StopReminder deletes the setting, removes the user from every slot and,
// when the person's one reminder chat is this one, that pointer too.
func (s *Store) StopReminder(ctx context.Context, chat, user string) error {
	cur, on, err := s.Reminder(ctx, chat, user)
	if err != nil {
		return fmt.Errorf("stop reminders of chat %s: %w", chat, err)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	m := member(chat, user)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.userKey(chat, user, reminderKey))
		for _, slot := range allSlots {
			p.SRem(ctx, s.slotKey(slot), m)
		}
		if on && cur.PersonID != "" {
			names := s.keys.Names(chosenDomain, m)
			for i, tag := range s.personTags(cur.PersonID) {
				forgetChosenScript.Eval(ctx, p, []string{s.personKey(tag, "chosen")}, names[i])
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("stop reminders of chat %s: %w", chat, s.classify(err))
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
	type ids struct{ chat, user, member string }
	who := make([]ids, 0, len(members))
	var stale []any
	cmds := make([]*redis.StringCmd, 0, len(members))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range members {
			chat, user, ok := parseMember(m)
			if !ok {
				stale = append(stale, m)
				continue
			}
			who = append(who, ids{chat, user, m})
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
			stale = append(stale, who[i].member)
			continue
		}
		r, ok := s.decodeReminder(who[i].chat, who[i].user, v)
		if !ok || r.Slot != slot {
			stale = append(stale, who[i].member)
			continue
		}
		out = append(out, r)
	}
	out = s.dropUnchosen(ctx, out)
	if len(stale) > 0 {
		// Best effort: a stale member left behind is dropped next time.
		if err := s.rdb.SRem(ctx, s.slotKey(slot), stale...).Err(); err != nil {
			s.log.Warn("drop stale reminder index entries", "slot", slot, "err", err)
		}
	}
	return out, next, nil
}

// dropUnchosen returns rs without the settings of a person whose one
// reminder chat is another: a setting the previous release left on in a
// second chat, which no pointer named when the person turned reminders on
// elsewhere. Those settings are stopped. On any error rs is returned as
// it is: the sent-marks are the person's, so each reminder still goes out
// once.
func (s *Store) dropUnchosen(ctx context.Context, rs []bot.ReminderSetting) []bot.ReminderSetting {
	cmds := make([]*redis.StringCmd, len(rs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range rs {
			if r.PersonID != "" {
				cmds[i] = p.Get(ctx, s.chosenKey(r.PersonID))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return rs
	}
	out := rs[:0:0]
	for i, r := range rs {
		if cmds[i] != nil {
			if v, err := cmds[i].Result(); err == nil {
				name, _, _ := strings.Cut(v, ".")
				if !slices.Contains(s.keys.Names(chosenDomain, member(r.Chat, r.User)), name) {
					if err := s.StopReminder(ctx, r.Chat, r.User); err != nil {
						s.log.Warn("stop the reminders of a chat the person no longer chose", "chat", r.Chat, "err", err)
					}
					continue
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// claimScript sets a person's mark unless it exists and files it in the
// person's index, which lives as long as the longest mark. An index grown
// past 64 names (a few years of monthly reminders) drops the names whose
// marks have expired.
//
//	KEYS[1] mark, KEYS[2] index; ARGV[1] ttl ms, ARGV[2] mark name, ARGV[3] mark key prefix
var claimScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
if redis.call('SCARD', KEYS[2]) > 64 then
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if redis.call('EXISTS', ARGV[3] .. m) == 0 then
      redis.call('SREM', KEYS[2], m)
    end
  end
end
return 1
`)

// forgetMarksScript deletes every mark in a person's index, and the index.
//
//	KEYS[1] index; ARGV[1] mark key prefix
var forgetMarksScript = redis.NewScript(`
local n = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + redis.call('DEL', ARGV[1] .. m)
end
redis.call('DEL', KEYS[1])
return n
`)

// takeMarksScript lists a person's live marks with their remaining TTL,
// {name, ms, name, ms, …}, changing nothing.
//
//	KEYS[1] index; ARGV[1] mark key prefix
var takeMarksScript = redis.NewScript(`
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local ttl = redis.call('PTTL', ARGV[1] .. m)
  if ttl > 0 then
    table.insert(out, m)
    table.insert(out, ttl)
  end
end
return out
`)

// putMarksScript sets the given marks of a person unless they exist, each
// with its TTL, and files them in the index.
//
//	KEYS[1] index; ARGV[1] mark key prefix, ARGV[2…] name, ttl ms pairs
var putMarksScript = redis.NewScript(`
for i = 2, #ARGV, 2 do
  local ttl = tonumber(ARGV[i + 1])
  redis.call('SET', ARGV[1] .. ARGV[i], '1', 'NX', 'PX', ttl)
  redis.call('SADD', KEYS[1], ARGV[i])
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
return 1
`)

// markKey names a mark: under the person's current tag, or among the
// marks about no one when person is "".
func (s *Store) markKey(person, mark string) string {
	if person == "" {
		return s.globalMarkKey(mark)
	}
	return s.personKey(s.personTags(person)[0], "m:"+mark)
}

// Claim sets the mark with the TTL unless it exists, atomically (SET NX),
// and reports whether this call set it: of two replicas claiming one mark,
// exactly one wins. A mark about a person goes under the person's keyed
// tag, filed in their index.
func (s *Store) Claim(ctx context.Context, person, mark string, ttl time.Duration) (bool, error) {
	if person == "" {
		ctx, cancel := s.op(ctx)
		defer cancel()
		ok, err := s.rdb.SetNX(ctx, s.globalMarkKey(mark), "1", ttl).Result()
		if err != nil {
			return false, fmt.Errorf("claim mark: %w", s.classify(err))
		}
		return ok, nil
	}
	if err := s.pullMarks(ctx, person); err != nil {
		return false, fmt.Errorf("claim mark: %w", err)
	}
	tag := s.personTags(person)[0]
	n, err := s.runScript(ctx, claimScript, []string{s.personKey(tag, "m:"+mark), s.personKey(tag, "idx")},
		ttl.Milliseconds(), mark, s.personKey(tag, "m:"))
	if err != nil {
		return false, fmt.Errorf("claim mark: %w", err)
	}
	return n == 1, nil
}

// Release deletes the mark, so that a later pass may claim it again.
func (s *Store) Release(ctx context.Context, person, mark string) error {
	if err := s.pullMarks(ctx, person); err != nil {
		return fmt.Errorf("release mark: %w", err)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.Del(ctx, s.markKey(person, mark)).Err(); err != nil {
		return fmt.Errorf("release mark: %w", s.classify(err))
	}
	return nil
}

// Marked reports whether the mark is set.
func (s *Store) Marked(ctx context.Context, person, mark string) (bool, error) {
	if err := s.pullMarks(ctx, person); err != nil {
		return false, fmt.Errorf("read mark: %w", err)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := s.rdb.Exists(ctx, s.markKey(person, mark)).Result()
	if err != nil {
		return false, fmt.Errorf("read mark: %w", s.classify(err))
	}
	return n == 1, nil
}

// pullMarks moves a person's marks from the tags of older keys to the
// current one while a rotation has not finished (afterwards the rotation
// has moved the marks of every person with a link or a reminder setting,
// and nobody else is reminded). One round trip per older key when there is
// nothing to move.
func (s *Store) pullMarks(ctx context.Context, person string) error {
	if person == "" || !s.rotating.Load() {
		return nil
	}
	tags := s.personTags(person)
	for _, old := range tags[1:] {
		if _, err := s.moveMarks(ctx, old, tags[0]); err != nil {
			return err
		}
	}
	return nil
}

// moveMarks moves the marks under tag from to tag to: copy (SET NX, so a
// mark already set under the new tag wins), then delete the old ones.
// Interrupted, it is simply run again. It reports how many marks it moved.
func (s *Store) moveMarks(ctx context.Context, from, to string) (int, error) {
	octx, cancel := s.op(ctx)
	res, err := takeMarksScript.Run(octx, s.rdb, []string{s.personKey(from, "idx")}, s.personKey(from, "m:")).Slice()
	cancel()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, s.classify(err)
	}
	if len(res) == 0 {
		return 0, nil
	}
	args := []any{s.personKey(to, "m:")}
	args = append(args, res...)
	if _, err := s.runScript(ctx, putMarksScript, []string{s.personKey(to, "idx")}, args...); err != nil {
		return 0, err
	}
	if _, err := s.runScript(ctx, forgetMarksScript, []string{s.personKey(from, "idx")}, s.personKey(from, "m:")); err != nil {
		return 0, err
	}
	return len(res) / 2, nil
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
