package bot

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable is returned by store implementations when the backing
// service cannot be reached in time. The engine answers what it can without
// state and tells the user that the rest is briefly unavailable.
var ErrUnavailable = errors.New("state store unavailable")

// State is what the engine remembers about one user in one chat.
type State struct {
	// Lang is the language the user picked with /lang: "zh", "en" or "" when
	// they never picked one.
	Lang string
	// Dialog is the multi-step dialog the chat is in; zero when none.
	// Stores expire it after a period of inactivity.
	Dialog Dialog
	// Link is the person this user verified as; zero when not verified.
	Link Link
}

// Dialog is the position in a multi-step dialog.
type Dialog struct {
	Name string            `json:"name"`
	Step string            `json:"step,omitempty"`
	Data map[string]string `json:"data,omitempty"`
}

// Link ties a messenger user to a person in the records after verification.
type Link struct {
	PersonID string    // resident ID number; never logged or shown unmasked
	Until    time.Time // the link expires then
}

// Valid reports whether the link exists and has not expired at now.
func (l Link) Valid(now time.Time) bool {
	return l.PersonID != "" && now.Before(l.Until)
}

// Part names the parts of a State that Save writes.
type Part uint8

const (
	PartLang Part = 1 << iota
	PartDialog
	PartLink
)

// Sessions loads and saves State. Implementations load all parts in one
// round trip and write only the parts named.
type Sessions interface {
	Load(ctx context.Context, chatID, userID int64) (State, error)
	// Save writes the named parts of st. A zero Dialog or Link deletes it.
	Save(ctx context.Context, chatID, userID int64, st State, parts Part) error
	// Forget deletes everything kept about the user in that chat except
	// the language choice: dialog, link and reminder settings.
	Forget(ctx context.Context, chatID, userID int64) error
}

// Attempts counts failed verification attempts per key (a user, an ID
// number) and locks a key out after too many.
type Attempts interface {
	// Locked returns the latest time until which any of keys is locked
	// out, or the zero time when none is.
	Locked(ctx context.Context, keys []string, now time.Time) (time.Time, error)
	// Fail records one failure for each key within a sliding window. When a
	// key reaches limit failures it is locked until now+lockFor, and that
	// time is returned; otherwise the zero time.
	Fail(ctx context.Context, keys []string, now time.Time, p AttemptPolicy) (time.Time, error)
}

// AttemptPolicy says how many failures within Window lock a key, and for
// how long.
type AttemptPolicy struct {
	Limit   int
	Window  time.Duration
	LockFor time.Duration
}

// Reminder slots: the time of day (Asia/Shanghai) a user's reminders go out.
const (
	SlotMorning   = "morning"   // 09:00
	SlotAfternoon = "afternoon" // 14:00
	SlotEvening   = "evening"   // 19:00
)

// ReminderSetting is one user's opt-in to reminders. It exists only while
// reminders are on.
type ReminderSetting struct {
	ChatID, UserID int64
	Slot           string    // SlotMorning, SlotAfternoon or SlotEvening
	PersonID       string    // the verified person; never logged or shown unmasked
	Until          time.Time // the verification expires then, and the setting with it
	Lang           string    // "zh" or "en"
}

// Reminders keeps reminder settings (Config.Reminders); the engine offers
// reminders only when one is configured. Sessions.Forget deletes the
// setting too.
type Reminders interface {
	// Reminder returns the user's setting; ok is false when reminders
	// are off.
	Reminder(ctx context.Context, chatID, userID int64) (s ReminderSetting, ok bool, err error)
	// SetReminder turns reminders on, or changes the slot.
	SetReminder(ctx context.Context, s ReminderSetting) error
	// StopReminder turns reminders off; off already is no error.
	StopReminder(ctx context.Context, chatID, userID int64) error
}
