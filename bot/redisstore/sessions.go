package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// linkJSON is the stored form of bot.Link.
type linkJSON struct {
	PersonID string    `json:"person_id"`
	Until    time.Time `json:"until"`
}

// Load reads language, dialog and link with one MGET (all three keys share
// the user's slot). Absent keys are zero parts. A value that no longer
// decodes is treated as absent and logged, so that a bad write cannot trap a
// user in a broken dialog.
func (s *Store) Load(ctx context.Context, chatID, userID int64) (bot.State, error) {
	vals, ok := s.takePrefetched(chatID, userID)
	if !ok {
		ctx, cancel := s.op(ctx)
		defer cancel()
		var err error
		vals, err = s.rdb.MGet(ctx, s.stateKeys(chatID, userID)...).Result()
		if err != nil {
			return bot.State{}, fmt.Errorf("load state for chat %d: %w", chatID, s.classify(err))
		}
	}
	var st bot.State
	if v, ok := vals[0].(string); ok {
		st.Lang = v
	}
	if v, ok := vals[1].(string); ok {
		if err := json.Unmarshal([]byte(v), &st.Dialog); err != nil {
			s.log.Warn("dropping undecodable dialog", "chat", chatID, "err", err)
			st.Dialog = bot.Dialog{}
		}
	}
	if v, ok := vals[2].(string); ok {
		var l linkJSON
		if err := json.Unmarshal([]byte(v), &l); err != nil {
			s.log.Warn("dropping undecodable link", "chat", chatID, "err", err)
		} else {
			st.Link = bot.Link{PersonID: l.PersonID, Until: l.Until}
		}
	}
	return st, nil
}

// stateKeys are the keys Load reads, in the order it decodes them.
func (s *Store) stateKeys(chatID, userID int64) []string {
	return []string{
		s.userKey(chatID, userID, langKey),
		s.userKey(chatID, userID, dialogKey),
		s.userKey(chatID, userID, linkKey),
	}
}

// takePrefetched returns the state read together with the claim of the
// chat's current update (Begin), once. It is fresh: the claim keeps every
// other update of the chat out, and only the chat's own handler writes a
// private chat's state.
func (s *Store) takePrefetched(chatID, userID int64) ([]any, bool) {
	if chatID != userID {
		return nil, false
	}
	v, ok := s.prefetched.LoadAndDelete(chatID)
	if !ok {
		return nil, false
	}
	return v.([]any), true
}

// Save writes the named parts in one MULTI block: a dialog with DialogTTL
// (so every step restarts the inactivity timer), a link expiring at its
// Until, the language without expiry. A zero part is deleted.
func (s *Store) Save(ctx context.Context, chatID, userID int64, st bot.State, parts bot.Part) error {
	if parts&(bot.PartLang|bot.PartDialog|bot.PartLink) == 0 {
		return nil
	}
	s.prefetched.Delete(chatID) // stale from here on
	var dialog, link []byte
	if parts&bot.PartDialog != 0 && st.Dialog.Name != "" {
		var err error
		if dialog, err = json.Marshal(st.Dialog); err != nil {
			return fmt.Errorf("encode dialog for chat %d: %w", chatID, err)
		}
	}
	if parts&bot.PartLink != 0 && st.Link.PersonID != "" {
		var err error
		if link, err = json.Marshal(linkJSON{PersonID: st.Link.PersonID, Until: st.Link.Until.UTC()}); err != nil {
			return fmt.Errorf("encode link for chat %d: %w", chatID, err)
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if parts&bot.PartLang != 0 {
			k := s.userKey(chatID, userID, langKey)
			if st.Lang == "" {
				p.Del(ctx, k)
			} else {
				p.Set(ctx, k, st.Lang, 0)
			}
		}
		if parts&bot.PartDialog != 0 {
			k := s.userKey(chatID, userID, dialogKey)
			if dialog == nil {
				p.Del(ctx, k)
			} else {
				p.Set(ctx, k, dialog, s.opt.DialogTTL)
			}
		}
		if parts&bot.PartLink != 0 {
			k := s.userKey(chatID, userID, linkKey)
			if link == nil {
				p.Del(ctx, k)
			} else {
				// An Until already past makes PEXPIREAT delete the key,
				// which is what an expired link should be.
				p.Set(ctx, k, link, 0)
				p.PExpireAt(ctx, k, st.Link.Until)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("save state for chat %d: %w", chatID, s.classify(err))
	}
	return nil
}

// Forget deletes dialog, link and reminder settings with one DEL; the
// language choice stays.
func (s *Store) Forget(ctx context.Context, chatID, userID int64) error {
	s.prefetched.Delete(chatID)
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.rdb.Del(ctx,
		s.userKey(chatID, userID, dialogKey),
		s.userKey(chatID, userID, linkKey),
		s.userKey(chatID, userID, reminderKey),
	).Err()
	if err != nil {
		return fmt.Errorf("forget state for chat %d: %w", chatID, s.classify(err))
	}
	return nil
}
