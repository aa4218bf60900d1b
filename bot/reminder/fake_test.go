package reminder

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/shebao/shebao/bot"
)

// memStore is an in-memory Store. Leases can be disabled to let two passes
// run at once, which is what happens when a lease expires under a stalled
// replica.
type memStore struct {
	mu       sync.Mutex
	settings map[[2]string]bot.ReminderSetting
	marks    map[string]time.Time // mark -> expiry
	lease    string
	noLease  bool // every Lease call succeeds
	now      func() time.Time
	stops    int
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{settings: map[[2]string]bot.ReminderSetting{}, marks: map[string]time.Time{}, now: now}
}

func (s *memStore) add(r bot.ReminderSetting) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settings[[2]string{r.Chat, r.User}] = r
}

func (s *memStore) ScanReminders(ctx context.Context, slot string, cursor uint64, count int) ([]bot.ReminderSetting, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []bot.ReminderSetting
	for _, r := range s.settings {
		if r.Slot == slot {
			all = append(all, r)
		}
	}
	sort.Slice(all, func(i, j int) bool { return untg(all[i].User) < untg(all[j].User) })
	// The cursor is the last user returned, so deletions during a scan
	// do not skip anyone (as SSCAN guarantees).
	i := sort.Search(len(all), func(i int) bool { return uint64(untg(all[i].User)) > cursor })
	end := min(i+count, len(all))
	if end == len(all) {
		return all[i:end], 0, nil
	}
	return all[i:end], uint64(untg(all[end-1].User)), nil
}

func (s *memStore) StopReminder(ctx context.Context, chatID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.settings, [2]string{chatID, userID})
	s.stops++
	return nil
}

// markName keys the fake's marks: the mark, after the person it is about.
func markName(person, mark string) string {
	if person == "" {
		return mark
	}
	return person + "/" + mark
}

func (s *memStore) Claim(ctx context.Context, person, mark string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mark = markName(person, mark)
	if exp, ok := s.marks[mark]; ok && s.now().Before(exp) {
		return false, nil
	}
	s.marks[mark] = s.now().Add(ttl)
	return true, nil
}

func (s *memStore) Release(ctx context.Context, person, mark string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.marks, markName(person, mark))
	return nil
}

func (s *memStore) Marked(ctx context.Context, person, mark string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.marks[markName(person, mark)]
	return ok && s.now().Before(exp), nil
}

func (s *memStore) Lease(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.noLease {
		return true, nil
	}
	if s.lease == "" || s.lease == token {
		s.lease = token
		return true, nil
	}
	return false, nil
}

func (s *memStore) Unlease(ctx context.Context, name, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease == token {
		s.lease = ""
	}
	return nil
}

// clock is virtual time: Sleep moves it instead of waiting.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return nil
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// sent is one message the fake sender took.
type sent struct {
	chat  int64
	at    time.Time
	reply bot.Reply
}

var errBlocked = errors.New("fake: bot blocked by user")

// sender records messages at the virtual time they were sent. fail, when
// set, decides an error per chat instead.
type sender struct {
	mu    sync.Mutex
	clock *clock
	msgs  []sent
	fail  func(chat int64) error
	after func(n int) // called after the n-th successful send
}

func (s *sender) Send(ctx context.Context, chat string, replies []bot.Reply) error {
	chatID := untg(chat)
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.fail != nil {
		if err := s.fail(chatID); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	for _, r := range replies {
		s.msgs = append(s.msgs, sent{chat: chatID, at: s.clock.Now(), reply: r})
	}
	n, after := len(s.msgs), s.after
	s.mu.Unlock()
	if after != nil {
		after(n)
	}
	return nil
}

func (s *sender) chats() map[int64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]int{}
	for _, m := range s.msgs {
		out[m.chat]++
	}
	return out
}
