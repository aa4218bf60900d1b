package bot_test

import (
	"context"
	"sync"
	"time"

	"github.com/shebao/shebao/bot"
)

// memStore is a small in-memory bot.Sessions and bot.Attempts for engine
// tests. The real store (bot/redisstore) passes the conformance suite in
// bot/storetest; this fake only has to be right for what the engine does.
type memStore struct {
	mu       sync.Mutex
	lang     map[int64]string
	dialog   map[int64]bot.Dialog
	link     map[int64]bot.Link
	fails    map[string][]time.Time
	locked   map[string]time.Time
	down     bool // every call fails with bot.ErrUnavailable
	forgets  int
	saveErrs int // number of next Save calls that fail
}

func newMemStore() *memStore {
	return &memStore{lang: map[int64]string{}, dialog: map[int64]bot.Dialog{}, link: map[int64]bot.Link{},
		fails: map[string][]time.Time{}, locked: map[string]time.Time{}}
}

func (s *memStore) Load(ctx context.Context, chatID, userID int64) (bot.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return bot.State{}, bot.ErrUnavailable
	}
	return bot.State{Lang: s.lang[userID], Dialog: s.dialog[chatID], Link: s.link[userID]}, nil
}

func (s *memStore) Save(ctx context.Context, chatID, userID int64, st bot.State, parts bot.Part) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return bot.ErrUnavailable
	}
	if s.saveErrs > 0 {
		s.saveErrs--
		return bot.ErrUnavailable
	}
	if parts&bot.PartLang != 0 {
		s.lang[userID] = st.Lang
	}
	if parts&bot.PartDialog != 0 {
		s.dialog[chatID] = st.Dialog
	}
	if parts&bot.PartLink != 0 {
		s.link[userID] = st.Link
	}
	return nil
}

func (s *memStore) Forget(ctx context.Context, chatID, userID int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return bot.ErrUnavailable
	}
	delete(s.dialog, chatID)
	delete(s.link, userID)
	s.forgets++
	return nil
}

func (s *memStore) Locked(ctx context.Context, keys []string, now time.Time) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return time.Time{}, bot.ErrUnavailable
	}
	var until time.Time
	for _, k := range keys {
		if u := s.locked[k]; u.After(now) && u.After(until) {
			until = u
		}
	}
	return until, nil
}

func (s *memStore) Fail(ctx context.Context, keys []string, now time.Time, p bot.AttemptPolicy) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return time.Time{}, bot.ErrUnavailable
	}
	var until time.Time
	for _, k := range keys {
		var recent []time.Time
		for _, f := range s.fails[k] {
			if now.Sub(f) < p.Window {
				recent = append(recent, f)
			}
		}
		recent = append(recent, now)
		s.fails[k] = recent
		if len(recent) >= p.Limit {
			s.locked[k] = now.Add(p.LockFor)
			until = now.Add(p.LockFor)
		}
	}
	return until, nil
}
