package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// linkJSON is the stored form of bot.Link, sealed.
type linkJSON struct {
	PersonID string    `json:"person_id"`
	Until    time.Time `json:"until"`
	PhoneTag string    `json:"phone_tag,omitempty"`
}

// Load reads language, dialog and link with one MGET (all three keys share
// the user's slot). Absent keys are zero parts. A value that no longer
// decodes or opens is treated as absent and logged, so that a bad write
// cannot trap a user in a broken dialog.
func (s *Store) Load(ctx context.Context, chat, user string) (bot.State, error) {
	vals, ok := s.takePrefetched(chat, user)
	if !ok {
		ctx, cancel := s.op(ctx)
		defer cancel()
		var err error
		vals, err = s.rdb.MGet(ctx, s.stateKeys(chat, user)...).Result()
		if err != nil {
			return bot.State{}, fmt.Errorf("load state for chat %s: %w", chat, s.classify(err))
		}
	}
	var st bot.State
	keys := s.stateKeys(chat, user)
	if v, ok := vals[0].(string); ok {
		st.Lang = v
	}
	if v, ok := vals[1].(string); ok {
		if _, err := s.openJSON(keys[1], []byte(v), &st.Dialog); err != nil {
			s.log.Warn("dropping undecodable dialog", "chat", chat, "err", err)
			st.Dialog = bot.Dialog{}
		}
	}
	if v, ok := vals[2].(string); ok {
		var l linkJSON
		if _, err := s.openJSON(keys[2], []byte(v), &l); err != nil {
			s.log.Warn("dropping undecodable link", "chat", chat, "err", err)
		} else {
			st.Link = bot.Link{PersonID: l.PersonID, Until: l.Until, PhoneTag: l.PhoneTag}
		}
	}
	return st, nil
}

// stateKeys are the keys Load reads, in the order it decodes them.
func (s *Store) stateKeys(chat, user string) []string {
	return []string{
		s.userKey(chat, user, langKey),
		s.userKey(chat, user, dialogKey),
		s.userKey(chat, user, linkKey),
	}
}

// takePrefetched returns the state read together with the claim of the
// chat's current update (Begin), once. It is fresh: the claim keeps every
// other update of the chat out, and only the chat's own handler writes a
// private chat's state.
func (s *Store) takePrefetched(chat, user string) ([]any, bool) {
	if chat != user {
		return nil, false
	}
	v, ok := s.prefetched.LoadAndDelete(chat)
	if !ok {
		return nil, false
	}
	return v.([]any), true
}

// Save writes the named parts in one MULTI block: a dialog with DialogTTL
// (so every step restarts the inactivity timer), a link expiring at its
// Until, the language without expiry. A zero part is deleted.
func (s *Store) Save(ctx context.Context, chat, user string, st bot.State, parts bot.Part) error {
	if parts&(bot.PartLang|bot.PartDialog|bot.PartLink) == 0 {
		return nil
	}
	s.prefetched.Delete(chat) // stale from here on
	var dialog, link []byte
	if parts&bot.PartDialog != 0 && st.Dialog.Name != "" {
		var err error
		if dialog, err = s.sealJSON(s.userKey(chat, user, dialogKey), st.Dialog); err != nil {
			return fmt.Errorf("encode dialog for chat %s: %w", chat, err)
		}
	}
	if parts&bot.PartLink != 0 && st.Link.PersonID != "" {
		var err error
		l := linkJSON{PersonID: st.Link.PersonID, Until: st.Link.Until.UTC(), PhoneTag: st.Link.PhoneTag}
		if link, err = s.sealJSON(s.userKey(chat, user, linkKey), l); err != nil {
			return fmt.Errorf("encode link for chat %s: %w", chat, err)
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if parts&bot.PartLang != 0 {
			k := s.userKey(chat, user, langKey)
			if st.Lang == "" {
				p.Del(ctx, k)
			} else {
				p.Set(ctx, k, st.Lang, 0)
			}
		}
		if parts&bot.PartDialog != 0 {
			k := s.userKey(chat, user, dialogKey)
			if dialog == nil {
				p.Del(ctx, k)
			} else {
				p.Set(ctx, k, dialog, s.opt.DialogTTL)
			}
		}
		if parts&bot.PartLink != 0 {
			k := s.userKey(chat, user, linkKey)
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
		// At maxmemory Redis refuses the queued writes and EXEC reports
		// only EXECABORT: the reason is on the commands.
		if i := slices.IndexFunc(cmds, func(c redis.Cmder) bool { return isOutOfMemory(c.Err()) }); i >= 0 {
			err = cmds[i].Err()
		}
		return fmt.Errorf("save state for chat %s: %w", chat, s.classify(err))
	}
	return nil
}

// Forget deletes the user's language, dialog, link and reminder setting
// (one DEL: they share the user's slot), the setting's entries in the slot
// indexes, and every mark about the person the link or the setting names,
// under each key of the ring. It reads the link and the setting first to
// learn who that is: two round trips. The throttles stay (bot.Sessions).
func (s *Store) Forget(ctx context.Context, chat, user string) error {
	s.prefetched.Delete(chat)
	link, remind := s.userKey(chat, user, linkKey), s.userKey(chat, user, reminderKey)
	octx, cancel := s.op(ctx)
	vals, err := s.rdb.MGet(octx, link, remind).Result()
	cancel()
	if err != nil {
		return fmt.Errorf("forget state for chat %s: %w", chat, s.classify(err))
	}
	persons := map[string]bool{}
	for i, key := range []string{link, remind} {
		v, ok := vals[i].(string)
		if !ok {
			continue
		}
		var who struct {
			PersonID string `json:"person_id"`
		}
		if _, err := s.openJSON(key, []byte(v), &who); err != nil {
			// Its marks cannot be found; they expire on their own.
			s.log.Warn("forget: undecodable value; the person's marks stay until they expire", "chat", chat, "err", err)
			continue
		}
		if who.PersonID != "" {
			persons[who.PersonID] = true
		}
	}
	octx, cancel = s.op(ctx)
	defer cancel()
	m := member(chat, user)
	_, err = s.rdb.Pipelined(octx, func(p redis.Pipeliner) error {
		p.Del(octx, s.userKey(chat, user, langKey), s.userKey(chat, user, dialogKey), link, remind)

		for _, slot := range allSlots {
			p.SRem(octx, s.slotKey(slot), m)
		}
		names := s.keys.Names(chosenDomain, m)
		for id := range persons {
			for i, tag := range s.personTags(id) {
				forgetMarksScript.Eval(octx, p, []string{s.personKey(tag, "idx")}, s.personKey(tag, "m:"))
				// The person's chosen reminder chat, if it is this one.
				forgetChosenScript.Eval(octx, p, []string{s.personKey(tag, "chosen")}, names[i])
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("forget state for chat %s: %w", chat, s.classify(err))
	}
	return nil
}
