package bot_test

import (
	"context"
	"sync"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
)

// testKeys tags phones in every engine of a test, so that an engine made
// again (a restart, another replica) checks the tags an earlier one made.
var testKeys = keyring.Generate()

// memStore is a small in-memory bot.Sessions and bot.Attempts for engine
// tests. The real store (bot/redisstore) passes the conformance suite in
// bot/storetest; this fake only has to be right for what the engine does.
type memStore struct {
	mu       sync.Mutex
	lang     map[string]string
	dialog   map[string]bot.Dialog
	link     map[string]bot.Link
	fails    map[string][]time.Time // throttle key -> attempt times
	down     bool                   // every call fails with bot.ErrUnavailable
	forgets  int
	saveErrs int // number of next Save calls that fail
}

func newMemStore() *memStore {
	return &memStore{lang: map[string]string{}, dialog: map[string]bot.Dialog{}, link: map[string]bot.Link{},
		fails: map[string][]time.Time{}}
}

func (s *memStore) Load(ctx context.Context, chatID, userID string) (bot.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return bot.State{}, bot.ErrUnavailable
	}
	return bot.State{Lang: s.lang[userID], Dialog: s.dialog[chatID], Link: s.link[userID]}, nil
}

func (s *memStore) Save(ctx context.Context, chatID, userID string, st bot.State, parts bot.Part) error {
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

func (s *memStore) Forget(ctx context.Context, chatID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return bot.ErrUnavailable
	}
	delete(s.dialog, chatID)
	delete(s.link, userID)
	delete(s.lang, userID)
	r := s.reminders()
	r.mu.Lock()
	delete(r.m, [2]string{chatID, userID})
	r.mu.Unlock()
	s.forgets++
	return nil
}

// The throttles keep the attempt times per key, as the real store does;
// the budget arithmetic is bot.ThrottlePolicy.Wait, which the real store's
// script mirrors.

func (s *memStore) until(t bot.Throttle, now time.Time) time.Time {
	var live []time.Time
	for _, at := range s.fails[t.Key] {
		if now.Sub(at) < t.Policy.Window {
			live = append(live, at)
		}
	}
	s.fails[t.Key] = live
	if len(live) == 0 {
		return time.Time{}
	}
	if u := live[len(live)-1].Add(t.Policy.Wait(len(live))); u.After(now) && len(live) >= t.Policy.Free {
		return u
	}
	return time.Time{}
}

func (s *memStore) Throttled(ctx context.Context, ts []bot.Throttle, now time.Time) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return time.Time{}, bot.ErrUnavailable
	}
	var latest time.Time
	for _, t := range ts {
		if u := s.until(t, now); u.After(latest) {
			latest = u
		}
	}
	return latest, nil
}

func (s *memStore) Reserve(ctx context.Context, ts []bot.Throttle, now time.Time) (bot.Reservation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return bot.Reservation{}, bot.ErrUnavailable
	}
	for _, t := range ts {
		if u := s.until(t, now); !u.IsZero() {
			return bot.Reservation{Until: u}, nil
		}
	}
	r := bot.Reservation{OK: true, Throttles: ts}
	for _, t := range ts {
		s.fails[t.Key] = append(s.fails[t.Key], now)
		if n := len(s.fails[t.Key]); n >= t.Policy.Free {
			if u := now.Add(t.Policy.Wait(n)); u.After(r.Until) {
				r.Until = u
			}
		}
	}
	return r, nil
}

func (s *memStore) Finish(ctx context.Context, r bot.Reservation, o bot.Outcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return bot.ErrUnavailable
	}
	for _, t := range r.Throttles {
		switch o {
		case bot.Succeeded:
			delete(s.fails, t.Key)
		case bot.NotEvaluated:
			if f := s.fails[t.Key]; len(f) > 0 {
				s.fails[t.Key] = f[:len(f)-1]
			}
		}
	}
	return nil
}
