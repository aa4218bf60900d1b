package bot

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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
	// PhoneTag is a keyed tag (keyring.Ring.Tag) of the phone the user
	// verified with, never the phone: each records access compares it with
	// the phone now on record. Empty for a link written by an older
	// release, which adopts the phone on record at its next use.
	PhoneTag string
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
	Load(ctx context.Context, chat, user string) (State, error)
	// Save writes the named parts of st. A zero Dialog or Link deletes it.
	Save(ctx context.Context, chat, user string, st State, parts Part) error
	// Forget deletes everything kept about the user in that chat and
	// about the person they verified as: language, dialog, link, reminder
	// setting and its index entry, and the person's reminder marks. Only
	// the verification throttles stay (see Attempts), so that forgetting
	// cannot reset them.
	Forget(ctx context.Context, chat, user string) error
}

// Attempts throttles verification attempts per key: a user ("user:<id>"),
// an ID number ("id:<number>"). A store derives the names it keeps from the
// keys (keyed tags) and never stores a key itself.
//
// An attempt is charged before it is evaluated (Reserve) and counts as
// failed unless Finish says otherwise, so concurrent attempts cannot exceed
// a throttle's budget: the check and the charge are one atomic step per
// throttle.
type Attempts interface {
	// Throttled returns the latest time until which any of ts admits no
	// attempt, or the zero time when all admit one at now. It charges
	// nothing: an early hint to the user, not the decision.
	Throttled(ctx context.Context, ts []Throttle, now time.Time) (time.Time, error)
	// Reserve charges one attempt to each of ts, in order: a throttle is
	// charged only when every one before it admitted the attempt. When one
	// does not, the earlier charges are withdrawn and the reservation is
	// not OK. Until is when to try again (not OK), or when the next attempt
	// will be admitted should this one fail (OK; zero: at once).
	Reserve(ctx context.Context, ts []Throttle, now time.Time) (Reservation, error)
	// Finish settles an OK reservation: success clears its throttles (the
	// owner proved who they are), failure keeps the charge, NotEvaluated
	// withdraws it (the attempt could not be judged, say the records were
	// unreadable).
	Finish(ctx context.Context, r Reservation, o Outcome) error
}

// Throttle is one key with its policy.
type Throttle struct {
	Key    string
	Policy ThrottlePolicy
}

// LogValue names the kind of key only: an ID number's is the number.
func (t Throttle) LogValue() slog.Value {
	kind, _, _ := strings.Cut(t.Key, ":")
	return slog.StringValue(kind)
}

// ThrottlePolicy is an exponential back-off: Free attempts are admitted at
// once; after that each attempt must wait Delay after the previous one,
// doubled for every attempt beyond Free, at most MaxDelay. An attempt
// counts for Window.
type ThrottlePolicy struct {
	Free     int
	Delay    time.Duration
	MaxDelay time.Duration
	Window   time.Duration
}

// Wait is how long after the latest of n attempts the next is admitted.
func (p ThrottlePolicy) Wait(n int) time.Duration {
	if n < p.Free {
		return 0
	}
	d := p.Delay
	for i := p.Free; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// Valid reports whether a store can apply p.
func (p ThrottlePolicy) Valid() bool {
	return p.Free >= 1 && p.Delay >= time.Millisecond && p.MaxDelay >= p.Delay && p.Window >= p.MaxDelay
}

// Reservation is one charged (or refused) attempt.
type Reservation struct {
	OK    bool
	Until time.Time
	// Throttles and Token identify the charge for Finish.
	Throttles []Throttle
	Token     string
}

// LogValue leaves the throttles' keys out.
func (r Reservation) LogValue() slog.Value {
	kinds := make([]string, len(r.Throttles))
	for i, t := range r.Throttles {
		kinds[i] = t.LogValue().String()
	}
	return slog.GroupValue(slog.Bool("ok", r.OK), slog.Time("until", r.Until), slog.Any("throttles", kinds))
}

// Outcome is how an attempt ended.
type Outcome uint8

const (
	Failed Outcome = iota
	Succeeded
	NotEvaluated
)

// Reminder slots: the time of day (Asia/Shanghai) a user's reminders go out.
const (
	SlotMorning   = "morning"   // 09:00
	SlotAfternoon = "afternoon" // 14:00
	SlotEvening   = "evening"   // 19:00
)

// ReminderSetting is one user's opt-in to reminders. It exists only while
// reminders are on.
type ReminderSetting struct {
	Chat, User string
	Slot       string    // SlotMorning, SlotAfternoon or SlotEvening
	PersonID   string    // the verified person; never logged or shown unmasked
	Until      time.Time // the verification expires then, and the setting with it
	Lang       string    // "zh" or "en"
	// PhoneTag is the link's Link.PhoneTag: a reminder goes out only
	// while the phone on record is still the one verified.
	PhoneTag string
}

// Reminders keeps reminder settings (Config.Reminders); the engine offers
// reminders only when one is configured. Sessions.Forget deletes the
// setting too.
type Reminders interface {
	// Reminder returns the user's setting; ok is false when reminders
	// are off.
	Reminder(ctx context.Context, chat, user string) (s ReminderSetting, ok bool, err error)
	// SetReminder turns reminders on, or rewrites the chat's setting (the
	// slot, the language, the phone tag). Turning them on makes the chat
	// the person's one reminder chat: a setting of the same person in
	// another chat stops, so a person verified in two chats is reminded
	// once, where they chose. A rewrite stops nothing.
	SetReminder(ctx context.Context, s ReminderSetting) error
	// StopReminder turns reminders off; off already is no error.
	StopReminder(ctx context.Context, chat, user string) error
}
