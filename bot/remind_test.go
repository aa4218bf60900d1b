package bot_test

import (
	"context"
	"sync"

	"github.com/shebao/shebao/bot"
)

// Reminder settings of the transcript store. memStore (fake_test.go) keeps
// its own fields; the settings live here, per store, so the transcripts of
// /remind and the opt-in offer run through the same runner.
var reminderSettings sync.Map // *memStore -> *reminderMap

type reminderMap struct {
	mu sync.Mutex
	m  map[[2]string]bot.ReminderSetting
}

func (s *memStore) reminders() *reminderMap {
	v, _ := reminderSettings.LoadOrStore(s, &reminderMap{m: map[[2]string]bot.ReminderSetting{}})
	return v.(*reminderMap)
}

var _ bot.Reminders = (*memStore)(nil)

func (s *memStore) Reminder(ctx context.Context, chatID, userID string) (bot.ReminderSetting, bool, error) {
	if s.isDown() {
		return bot.ReminderSetting{}, false, bot.ErrUnavailable
	}
	r := s.reminders()
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[[2]string{chatID, userID}]
	return v, ok, nil
}

func (s *memStore) SetReminder(ctx context.Context, v bot.ReminderSetting) error {
	if s.isDown() {
		return bot.ErrUnavailable
	}
	r := s.reminders()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[[2]string{v.Chat, v.User}] = v
	return nil
}

func (s *memStore) StopReminder(ctx context.Context, chatID, userID string) error {
	if s.isDown() {
		return bot.ErrUnavailable
	}
	r := s.reminders()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, [2]string{chatID, userID})
	return nil
}

func (s *memStore) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}
