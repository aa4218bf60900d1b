package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// v1Store is the previous release's write path (commit c311a48, the branch
// point of SHEBAO_KEYS), kept frozen to write the stores the migration
// tests start from. The bodies are that release's, cut down to the writes
// (copied from bot/redisstore/sessions.go, attempts.go, reminders.go,
// handoff.go and coord.go, and bot/reminder/reminder.go for the mark
// names), with its own names prefixed v1 so they cannot be mistaken for
// the current ones. Do not "fix" it: it is what production wrote.
//
// Running the old code itself (a worktree of c311a48 and a driver writing
// the same scenario) gave the same key names and the same value shapes;
// a copy is what the test can run without git.
type v1Store struct {
	rdb    redis.UniversalClient
	prefix string
}

const (
	v1DialogTTL = 30 * time.Minute
	v1DedupeTTL = 24 * time.Hour
	// bot.verifyPolicy of that release.
	v1Limit   = 5
	v1Window  = 24 * time.Hour
	v1LockFor = 24 * time.Hour
	// bot/reminder's sentTTL and doneTTL.
	v1SentTTL = 26 * 31 * 24 * time.Hour
	v1DoneTTL = 36 * time.Hour
)

func (s *v1Store) userKey(chatID, userID int64, part string) string {
	return s.prefix + ":{u:" + strconv.FormatInt(userID, 10) + "}:" + strconv.FormatInt(chatID, 10) + ":" + part
}

func (s *v1Store) chatKey(chatID int64, rest string) string {
	return s.prefix + ":{c:" + strconv.FormatInt(chatID, 10) + "}:" + rest
}

type v1LinkJSON struct {
	PersonID string    `json:"person_id"`
	Until    time.Time `json:"until"`
}

// save is the previous Sessions.Save.
func (s *v1Store) save(ctx context.Context, chatID, userID int64, st bot.State, parts bot.Part) error {
	var dialog, link []byte
	if parts&bot.PartDialog != 0 && st.Dialog.Name != "" {
		var err error
		if dialog, err = json.Marshal(st.Dialog); err != nil {
			return err
		}
	}
	if parts&bot.PartLink != 0 && st.Link.PersonID != "" {
		var err error
		if link, err = json.Marshal(v1LinkJSON{PersonID: st.Link.PersonID, Until: st.Link.Until.UTC()}); err != nil {
			return err
		}
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if parts&bot.PartLang != 0 {
			k := s.userKey(chatID, userID, "lang")
			if st.Lang == "" {
				p.Del(ctx, k)
			} else {
				p.Set(ctx, k, st.Lang, 0)
			}
		}
		if parts&bot.PartDialog != 0 {
			k := s.userKey(chatID, userID, "dialog")
			if dialog == nil {
				p.Del(ctx, k)
			} else {
				p.Set(ctx, k, dialog, v1DialogTTL)
			}
		}
		if parts&bot.PartLink != 0 {
			k := s.userKey(chatID, userID, "link")
			if link == nil {
				p.Del(ctx, k)
			} else {
				p.Set(ctx, k, link, 0)
				p.PExpireAt(ctx, k, st.Link.Until)
			}
		}
		return nil
	})
	return err
}

type v1ReminderJSON struct {
	Slot     string    `json:"slot"`
	PersonID string    `json:"person_id"`
	Until    time.Time `json:"until"`
	Lang     string    `json:"lang,omitempty"`
}

// setReminder is the previous SetReminder.
func (s *v1Store) setReminder(ctx context.Context, r bot.ReminderSetting) error {
	b, err := json.Marshal(v1ReminderJSON{Slot: r.Slot, PersonID: r.PersonID, Until: r.Until.UTC(), Lang: r.Lang})
	if err != nil {
		return err
	}
	k, m := s.userKey(untg(r.Chat), untg(r.User), "remind"), strconv.FormatInt(untg(r.User), 10)+":"+strconv.FormatInt(untg(r.Chat), 10)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k, b, 0)
		p.PExpireAt(ctx, k, r.Until)
		for _, slot := range allSlots {
			if slot != r.Slot {
				p.SRem(ctx, s.prefix+":{remind}:slot:"+slot, m)
			}
		}
		p.SAdd(ctx, s.prefix+":{remind}:slot:"+r.Slot, m)
		return nil
	})
	return err
}

func (s *v1Store) attemptKey(key, part string) string {
	sum := sha256.Sum256([]byte(key))
	return s.prefix + ":{a:" + hex.EncodeToString(sum[:])[:32] + "}:" + part
}

var v1FailScript = redis.NewScript(`
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

// fail is the previous Attempts.Fail under the previous verifyPolicy; it
// returns the lock end (zero when not locked).
func (s *v1Store) fail(ctx context.Context, keys []string, now time.Time) (time.Time, error) {
	end := now.Add(v1LockFor).UnixMilli()
	var locked time.Time
	for _, k := range keys {
		ms, err := v1FailScript.Run(ctx, s.rdb, []string{s.attemptKey(k, "n"), s.attemptKey(k, "lock")},
			v1Limit, v1Window.Milliseconds(), v1LockFor.Milliseconds(), end).Int64()
		if err != nil {
			return time.Time{}, err
		}
		if ms > 0 {
			locked = time.UnixMilli(ms)
		}
	}
	return locked, nil
}

// The previous reminder package's mark names.
func v1PersonHash(personID string) string {
	h := sha256.Sum256([]byte("shebao-reminder:" + personID))
	return hex.EncodeToString(h[:12])
}

func v1SentMark(personID string, kind bot.ReminderKind, month string) string {
	return "sent:" + v1PersonHash(personID) + ":" + string(kind) + ":" + month
}

func v1DayMark(personID, day string) string { return "day:" + v1PersonHash(personID) + ":" + day }

// claim is the previous Claim.
func (s *v1Store) claim(ctx context.Context, mark string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, s.prefix+":{m:"+mark+"}", "1", ttl).Result()
}

// holdUpdates is the previous HoldUpdates.
func (s *v1Store) holdUpdates(ctx context.Context, at time.Time, updates map[int64][]byte) error {
	stamp := strconv.FormatInt(at.UnixMilli(), 10) + ":"
	args := make([]any, 0, 2*len(updates))
	for id, raw := range updates {
		v := make([]byte, 0, len(stamp)+len(raw))
		args = append(args, strconv.FormatInt(id, 10), append(append(v, stamp...), raw...))
	}
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, s.prefix+":{held}:updates", args...)
	pipe.PExpire(ctx, s.prefix+":{held}:updates", 48*time.Hour)
	_, err := pipe.Exec(ctx)
	return err
}

// handled is what the previous (and current) coordinator leaves after
// answering an update: the dedupe mark.
func (s *v1Store) handled(ctx context.Context, chatID, updateID int64) error {
	return s.rdb.Set(ctx, s.chatKey(chatID, "done:"+strconv.FormatInt(updateID, 10)), "1", v1DedupeTTL).Err()
}
