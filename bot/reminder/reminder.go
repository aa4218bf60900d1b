// Package reminder runs the reminder passes: it reads who opted in (from the
// state store), what is due for each of them (from the records), and sends
// each due reminder exactly once, paced, in the daytime slot the user chose.
//
// Exactly once rests on two things in the store, not on this process: a
// lease, so one replica runs a pass at a time, and a sent-mark per (person,
// kind, month) claimed atomically before the message goes out. The store
// keeps a person's marks under a keyed tag of the person, never the ID
// number, and deletes them when the user forgets the verification. A claim that
// loses means someone else sent it; a send that fails for a reason worth
// retrying releases the mark for a later pass. A crash between claim and
// send loses that one reminder rather than risk sending it twice.
//
// The package knows nothing of Telegram or Redis: the Sender and the Store
// are interfaces declared here, and the texts come from bot.ReminderReply.
package reminder

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/records"
)

// Sender sends replies to a chat (bot.Sender); a router over the
// channels' adapters is one.
type Sender = bot.Sender

// Subscribers lists who opted in, and turns a user's reminders off.
type Subscribers interface {
	// ScanReminders returns about count settings of slot from cursor (0
	// to start); next is 0 after the last batch. A setting may come twice.
	ScanReminders(ctx context.Context, slot string, cursor uint64, count int) (batch []bot.ReminderSetting, next uint64, err error)
	StopReminder(ctx context.Context, chat, user string) error
}

// Marks are flags with a lifetime, set atomically. A mark is about a
// person (a resident ID number), so that the store can name it without the
// number and find it again to forget it, or about no one (person "").
type Marks interface {
	// Claim sets mark unless it is set and reports whether this call set it.
	Claim(ctx context.Context, person, mark string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, person, mark string) error
	Marked(ctx context.Context, person, mark string) (bool, error)
}

// Leases let one replica at a time run a pass.
type Leases interface {
	// Lease takes or renews the lease for token and reports whether
	// token holds it.
	Lease(ctx context.Context, name, token string, ttl time.Duration) (bool, error)
	Unlease(ctx context.Context, name, token string) error
}

// Store is what a pass keeps in the shared state store (bot/redisstore).
type Store interface {
	Subscribers
	Marks
	Leases
}

// Blocklist tells whether a chat's user blocked the bot (a 403 seen by the
// interactive side).
type Blocklist interface {
	Blocked(ctx context.Context, chat string) (bool, error)
}

// Metrics is told the outcome of each pass.
type Metrics interface {
	ReminderPass(s Summary)
}

// Config wires a Scheduler. Store and Records are required; Sender too
// unless every pass is a dry run.
type Config struct {
	Store   Store
	Records *records.DB
	Sender  Sender
	// Channels are the channels Sender reaches (bot.ChannelTelegram, …);
	// nil: every one. A process that runs some channels only (one process
	// per channel on one Redis) names them: its passes skip the other
	// channels' chats and mark a slot done for its own channels, so that
	// the other channels' processes still run the slot that day.
	Channels []string
	// Keys checks the phone tag of a setting (bot.PhoneMatches): a
	// reminder goes out only while the phone on record is the one the user
	// verified with. Nil skips the check.
	Keys *keyring.Ring
	// Blocklist, when set, is checked before each send.
	Blocklist Blocklist
	// Blocked reports whether a send error means the chat will never take
	// a message: the user blocked the bot, deleted their account, or the
	// chat is gone. Their reminders are then turned off. Nil: never.
	Blocked func(error) bool
	// Retryable reports whether the reminder may be sent again after this
	// send error. Nil: every error except the caller's cancellation, which
	// may have struck after Telegram took the message.
	Retryable func(error) bool
	// Rate is the most messages per second of this scheduler; default 25
	// (Telegram allows about 30 to different chats, and replies to users
	// need some room). It is a ceiling per replica, checked before a
	// reminder is claimed so that a closing window leaves the rest
	// unclaimed. Across replicas the Sender keeps the pace: Telegram's
	// sends reminders as bulk in the shared send budget (at most 2/3 of
	// TELEGRAM_SEND_RATE, and only while no answer is queued).
	Rate float64
	// Now and Sleep are the clock; nil means the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Batch is how many settings one scan step reads; default 1000.
	Batch int
	// LeaseTTL is how long a crashed replica keeps the lease; default
	// one minute. The holder renews it as it goes.
	LeaseTTL time.Duration
	// Recheck is how often Run looks for work in the daytime; default 10
	// minutes.
	Recheck time.Duration
	// ListSent lists each reminder sent in Summary.Planned (shebao
	// remind --once prints them). Off in serve: at 100k due users the list
	// is about 100 MB a pass that nobody reads. Dry runs always list.
	ListSent bool
	// Token names this replica in the lease; default random.
	Token   string
	Logger  *slog.Logger
	Metrics Metrics
}

// Scheduler runs reminder passes. Its methods may be called concurrently,
// also from several processes: the store keeps them apart.
type Scheduler struct {
	cfg Config
	log *slog.Logger
}

// New returns a Scheduler for cfg.
func New(cfg Config) *Scheduler {
	if cfg.Rate <= 0 {
		cfg.Rate = 25
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = time.Minute
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 10 * time.Minute
	}
	if cfg.Token == "" {
		cfg.Token = rand.Text()
	}
	if cfg.Blocked == nil {
		cfg.Blocked = func(error) bool { return false }
	}
	if cfg.Retryable == nil {
		cfg.Retryable = func(err error) bool {
			return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, log: cfg.Logger}
}

// sleep is the real clock's wait. bot/telegram has the same few lines, but
// this package must not import the transport.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slots in order, with the hour each starts. Slots and quiet hours are
// local time where users live, records.Shanghai: the zone the records count
// months in, so "today" and "this month" never disagree.
var slots = []struct {
	name string
	hour int
}{{bot.SlotMorning, 9}, {bot.SlotAfternoon, 14}, {bot.SlotEvening, 19}}

// Quiet hours: no reminder is sent from quietFrom to quietUntil local time.
const (
	quietFrom  = 21
	quietUntil = 8
)

// Quiet reports whether t falls in the quiet hours, 21:00–08:00 Shanghai.
func Quiet(t time.Time) bool {
	h := t.In(records.Shanghai).Hour()
	return h >= quietFrom || h < quietUntil
}

// quietStart is the next start of quiet hours at or after t.
func quietStart(t time.Time) time.Time {
	l := t.In(records.Shanghai)
	return time.Date(l.Year(), l.Month(), l.Day(), quietFrom, 0, 0, 0, records.Shanghai)
}

// nextSlotStart is the first slot start after t.
func nextSlotStart(t time.Time) time.Time {
	l := t.In(records.Shanghai)
	for d := 0; d < 2; d++ {
		for _, s := range slots {
			st := time.Date(l.Year(), l.Month(), l.Day()+d, s.hour, 0, 0, 0, records.Shanghai)
			if st.After(t) {
				return st
			}
		}
	}
	return t.Add(24 * time.Hour) // unreachable
}

const (
	leaseName = "pass"
	// sentTTL outlives the 24 months a gap is looked at, so a month is
	// never reminded twice while it can still come up.
	sentTTL = 26 * 31 * 24 * time.Hour
	doneTTL = 36 * time.Hour
)

// Summary is what one pass did.
type Summary struct {
	Start      time.Time
	Slots      []string // the slots the pass worked on
	Candidates int      // opted-in settings read
	Due        int      // people with something to send
	Sent       int
	Failed     int            // sends that failed (blocked users included)
	Skipped    map[string]int // by reason (the Skip constants)
	Incomplete bool           // stopped before every slot was done: resumes next window
	DryRun     bool
	// Planned lists what a dry run would send, or what a pass sent when
	// Config.ListSent is set.
	Planned []Planned
}

// Planned is one reminder of a pass.
type Planned struct {
	Chat  string
	Kind  bot.ReminderKind
	Month records.Month
	Reply bot.Reply
}

func (s *Summary) skip(reason string) { s.Skipped[reason]++ }

// LogValue summarises without any chat, person or text.
func (s Summary) LogValue() slog.Value {
	var skipped []slog.Attr
	for k, v := range s.Skipped {
		skipped = append(skipped, slog.Int(k, v))
	}
	return slog.GroupValue(
		slog.Any("slots", s.Slots), slog.Int("candidates", s.Candidates), slog.Int("due", s.Due),
		slog.Int("sent", s.Sent), slog.Int("failed", s.Failed),
		slog.Attr{Key: "skipped", Value: slog.GroupValue(skipped...)},
		slog.Bool("incomplete", s.Incomplete), slog.Bool("dry_run", s.DryRun))
}

// Run runs passes until ctx ends: one at each slot start, and every
// Recheck in the daytime so that a pass cut short, or one whose replica
// died, is taken up again.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		now := s.cfg.Now()
		if !Quiet(now) {
			if _, err := s.Pass(ctx, false); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("reminder pass", "err", err)
			}
		}
		now = s.cfg.Now()
		wait := min(nextSlotStart(now).Sub(now), s.cfg.Recheck)
		if Quiet(now) {
			wait = nextSlotStart(now).Sub(now)
		}
		if err := s.cfg.Sleep(ctx, wait); err != nil {
			return nil
		}
	}
}

// Pass runs one pass at the current time: the slots that have started today
// and are not done yet, until the quiet hours begin. With dryRun it claims
// and sends nothing and lists what it would send. The error is for the
// operator; the summary counts what was done before it.
func (s *Scheduler) Pass(ctx context.Context, dryRun bool) (Summary, error) {
	now := s.cfg.Now()
	sum := Summary{Start: now, Skipped: map[string]int{}, DryRun: dryRun}
	err := s.pass(ctx, now, &sum)
	level := slog.LevelInfo
	if len(sum.Slots) == 0 && err == nil {
		level = slog.LevelDebug // quiet hours, another replica, all done: every recheck
	}
	s.log.Log(ctx, level, "reminder pass", "summary", sum, "took", s.cfg.Now().Sub(now).String())
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.ReminderPass(sum)
	}
	return sum, err
}

func (s *Scheduler) pass(ctx context.Context, now time.Time, sum *Summary) error {
	if Quiet(now) {
		sum.skip(SkipQuietHours)
		return nil
	}
	if !sum.DryRun {
		ok, err := s.cfg.Store.Lease(ctx, leaseName, s.cfg.Token, s.cfg.LeaseTTL)
		if err != nil {
			return fmt.Errorf("reminder pass: %w", err)
		}
		if !ok {
			sum.skip(SkipLeaseHeld)
			return nil
		}
		defer func() {
			if err := s.cfg.Store.Unlease(context.WithoutCancel(ctx), leaseName, s.cfg.Token); err != nil {
				s.log.Warn("release reminder lease", "err", err)
			}
		}()
	}
	p := &run{s: s, sum: sum, deadline: quietStart(now), renewed: now, rules: map[string]records.RegionRule{},
		pace: newBucket(s.cfg.Rate, s.cfg.Now, s.cfg.Sleep)}
	local := now.In(records.Shanghai)
	day := local.Format(time.DateOnly)
	p.day = day
	for _, sl := range slots {
		if local.Hour() < sl.hour {
			break
		}
		doneMarks := s.doneMarks(day, sl.name)
		done, err := s.slotDone(ctx, doneMarks)
		if err != nil {
			return fmt.Errorf("reminder pass: %w", err)
		}
		if done {
			continue
		}
		sum.Slots = append(sum.Slots, sl.name)
		p.retry = false
		complete, err := p.slot(ctx, sl.name)
		if err != nil {
			sum.Incomplete = true
			return fmt.Errorf("reminder pass, slot %s: %w", sl.name, err)
		}
		if !complete {
			sum.Incomplete = true
			return nil
		}
		if p.retry {
			// A send worth retrying failed: leave the slot open so the
			// next recheck takes it up again (sent marks skip the rest).
			sum.Incomplete = true
			continue
		}
		if !sum.DryRun {
			for _, m := range doneMarks[len(doneMarks)-max(len(s.cfg.Channels), 1):] {
				if _, err := s.cfg.Store.Claim(ctx, "", m, doneTTL); err != nil {
					return fmt.Errorf("reminder pass: %w", err)
				}
			}
		}
	}
	if len(sum.Slots) == 0 {
		sum.skip(SkipNothingToRun)
	}
	return nil
}

// doneMarks are the marks of a slot done for the day: the slot's, then,
// with Config.Channels, one per channel. A pass marks the slot (without
// Channels) or its channels.
func (s *Scheduler) doneMarks(day, slot string) []string {
	m := "done:" + day + ":" + slot
	out := []string{m}
	for _, ch := range s.cfg.Channels {
		out = append(out, m+":"+ch)
	}
	return out
}

// slotDone reports whether the slot is done for every channel of this
// scheduler: its own mark (every channel; what a pass without Channels
// and the release before Channels write), or each channel's.
func (s *Scheduler) slotDone(ctx context.Context, marks []string) (bool, error) {
	done, err := s.cfg.Store.Marked(ctx, "", marks[0])
	if err != nil || done || len(marks) == 1 {
		return done, err
	}
	for _, m := range marks[1:] {
		if done, err := s.cfg.Store.Marked(ctx, "", m); err != nil || !done {
			return false, err
		}
	}
	return true, nil
}

// reaches reports whether Sender reaches chat's channel.
func (s *Scheduler) reaches(chat string) bool {
	return s.cfg.Channels == nil || slices.Contains(s.cfg.Channels, bot.ChannelOf(chat))
}

// run is the state of one pass.
type run struct {
	s        *Scheduler
	sum      *Summary
	deadline time.Time // quiet hours begin: stop sending
	renewed  time.Time // when the lease was last renewed
	pace     *bucket
	day      string // the local date, for the reminded-today marks
	rules    map[string]records.RegionRule
	retry    bool // a send failed and its mark was released
}

// slot works through one slot's settings and reports whether it got to the
// end.
func (p *run) slot(ctx context.Context, slot string) (bool, error) {
	var cursor uint64
	for {
		if !p.sum.DryRun {
			if err := p.renew(ctx); err != nil {
				return false, err
			}
		}
		batch, next, err := p.s.cfg.Store.ScanReminders(ctx, slot, cursor, p.s.cfg.Batch)
		if err != nil {
			return false, err
		}
		complete, err := p.batch(ctx, batch)
		if err != nil || !complete {
			return false, err
		}
		if next == 0 {
			return true, nil
		}
		cursor = next
	}
}

// batch handles one scanned batch: one records query for all of it, then
// each person in turn.
func (p *run) batch(ctx context.Context, batch []bot.ReminderSetting) (bool, error) {
	cfg := &p.s.cfg
	now := cfg.Now()
	p.sum.Candidates += len(batch)
	ids := make([]string, 0, len(batch))
	live := batch[:0:0]
	for _, r := range batch {
		if !p.s.reaches(r.Chat) {
			p.sum.skip(SkipOtherChannel)
			continue
		}
		if !now.Before(r.Until) {
			p.sum.skip(SkipUnverified)
			continue
		}
		ids = append(ids, r.PersonID)
		live = append(live, r)
	}
	if len(live) == 0 {
		return true, nil
	}
	sts, err := cfg.Records.Standings(ctx, ids)
	if err != nil {
		return false, err
	}
	byID := make(map[string]records.Standing, len(sts))
	for _, st := range sts {
		byID[st.ID] = st
	}
	for i, r := range live {
		st, ok := byID[r.PersonID]
		switch {
		case !ok:
			p.sum.skip(SkipUnknown)
			continue
		case st.Category == records.Resident:
			p.sum.skip(SkipResident)
			continue
		case !st.HasMedical:
			p.sum.skip(SkipNoMedical)
			continue
		}
		gaps, err := cfg.Records.MedicalGaps(ctx, st, now)
		if err != nil {
			return false, err
		}
		rule, ok := p.rules[st.Region]
		if !ok {
			// Rule copies the region's texts; a pass meets few regions.
			rule = cfg.Records.Rule(ctx, st.Region)
			p.rules[st.Region] = rule
		}
		cands := dueReminders(st, gaps, rule, now)
		if len(cands) == 0 {
			p.sum.skip(SkipNothingDue)
			continue
		}
		more, err := p.person(ctx, r, st, rule, cands)
		if err != nil {
			return false, err
		}
		if !more {
			// The window closed: the rest of the batch waits too.
			p.sum.Skipped[SkipWindowEnded] += len(live) - i
			return false, nil
		}
	}
	return true, nil
}

// markFor names the sent-mark of a reminder, a mark about the person.
func markFor(c candidate) string {
	return "sent:" + string(c.kind) + ":" + c.month.String()
}

// person sends the first due reminder of one person that nobody sent
// before: at most one message per person and pass. It reports false when
// the sending window has closed.
func (p *run) person(ctx context.Context, r bot.ReminderSetting, st records.Standing, rule records.RegionRule, cands []candidate) (bool, error) {
	cfg := &p.s.cfg
	p.sum.Due++
	// At most one reminder a day for a person: the next one waits for
	// tomorrow's pass, however many are due.
	dayMark := "day:" + p.day
	if today, err := cfg.Store.Marked(ctx, r.PersonID, dayMark); err != nil || today {
		if today {
			p.sum.skip(SkipToday)
		}
		return true, err
	}
	for _, c := range cands {
		mark := markFor(c)
		reply := bot.ReminderReply(bot.ReminderNote{Kind: c.kind, Lang: r.Lang, PersonID: r.PersonID,
			Month: c.month, Gap: c.gap, DueDay: rule.DueDay, Rule: rule})
		// A cheap read first: a rerun over people already reminded must
		// not wait for the pace.
		sent, err := cfg.Store.Marked(ctx, r.PersonID, mark)
		if err != nil {
			return false, err
		}
		if sent {
			continue
		}
		// Something will go out: only to whoever verified with the phone
		// that is still on record.
		if ok, err := p.samePhone(ctx, r); err != nil || !ok {
			return err == nil, err
		}
		if p.sum.DryRun {
			p.sum.Planned = append(p.sum.Planned, Planned{Chat: r.Chat, Kind: c.kind, Month: c.month, Reply: reply})
			return true, nil
		}
		// Wait for the pace before claiming, so that a window closing
		// during the wait leaves nothing claimed and unsent.
		if err := p.pace.wait(ctx, p.deadline); err != nil {
			if errors.Is(err, errPastDeadline) {
				return false, nil
			}
			return false, err
		}
		if err := p.renew(ctx); err != nil {
			return false, err
		}
		if cfg.Blocklist != nil {
			blocked, err := cfg.Blocklist.Blocked(ctx, r.Chat)
			if err != nil {
				return false, err
			}
			if blocked {
				p.sum.skip(SkipBlocked)
				p.stop(ctx, r)
				return true, nil
			}
		}
		won, err := cfg.Store.Claim(ctx, r.PersonID, mark, sentTTL)
		if err != nil {
			return false, err
		}
		if !won {
			continue
		}
		err = cfg.Sender.Send(ctx, r.Chat, []bot.Reply{reply})
		switch {
		case err == nil:
			p.sum.Sent++
			if _, err := cfg.Store.Claim(context.WithoutCancel(ctx), r.PersonID, dayMark, doneTTL); err != nil {
				p.s.log.Warn("set reminded-today mark", "err", err)
			}
			if cfg.ListSent {
				p.sum.Planned = append(p.sum.Planned, Planned{Chat: r.Chat, Kind: c.kind, Month: c.month, Reply: reply})
			}
		case errors.Is(err, bot.ErrCannotPush):
			// The channel cannot reach the user now (WeChat outside its
			// reply window, with no subscription message): nothing went
			// out, so the mark goes back for a later pass. Skipped and
			// counted, not failed.
			p.sum.skip(SkipCannotPush)
			if rerr := cfg.Store.Release(context.WithoutCancel(ctx), r.PersonID, mark); rerr != nil {
				p.s.log.Warn("release reminder mark after a skipped send", "err", rerr)
			}
		case cfg.Blocked(err):
			// The mark stays: had the user not blocked us, they would
			// have had it. Their reminders end here.
			p.sum.Failed++
			p.sum.skip(SkipBlocked)
			p.stop(ctx, r)
		default:
			p.sum.Failed++
			if cfg.Retryable(err) {
				p.retry = true
				if rerr := cfg.Store.Release(context.WithoutCancel(ctx), r.PersonID, mark); rerr != nil {
					p.s.log.Warn("release reminder mark after failed send", "err", rerr)
				}
			}
			p.s.log.Warn("send reminder", "chat", r.Chat, "kind", c.kind, "err", err)
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
		}
		return true, nil
	}
	p.sum.skip(SkipAlreadySent)
	return true, nil
}

// samePhone reports whether the phone on record is still the one the
// setting's user verified with. When it is not (or the tag's key has left
// the keyring, so it cannot be told), the reminders end: the next records
// access asks the user to verify again. A setting from an older release
// has no tag and is not checked; the user's next records access adds one.
func (p *run) samePhone(ctx context.Context, r bot.ReminderSetting) (bool, error) {
	cfg := &p.s.cfg
	if cfg.Keys == nil || r.PhoneTag == "" {
		return true, nil
	}
	person, err := cfg.Records.Person(ctx, r.PersonID)
	if errors.Is(err, records.ErrNotFound) {
		p.sum.skip(SkipUnknown)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if ok, _, err := bot.PhoneMatches(cfg.Keys, r.PhoneTag, r.PersonID, person.Phone); err == nil && ok {
		return true, nil
	}
	p.sum.skip(SkipPhoneChanged)
	if !p.sum.DryRun {
		p.s.log.Info("phone on record is not the one verified: reminders off", "chat", r.Chat)
		if err := cfg.Store.StopReminder(ctx, r.Chat, r.User); err != nil {
			p.s.log.Warn("turn reminders off after a phone change", "chat", r.Chat, "err", err)
		}
	}
	return false, nil
}

func (p *run) stop(ctx context.Context, r bot.ReminderSetting) {
	p.s.log.Info("chat blocked the bot or is gone: reminders off", "chat", r.Chat)
	if err := p.s.cfg.Store.StopReminder(ctx, r.Chat, r.User); err != nil {
		p.s.log.Warn("turn reminders off for unreachable chat", "chat", r.Chat, "err", err)
	}
}

// errLeaseLost stops a pass whose replica stalled long enough for another
// to take over.
var errLeaseLost = errors.New("reminder lease lost to another replica")

// renew keeps the lease while the pass is sending, every third of its TTL.
func (p *run) renew(ctx context.Context) error {
	now := p.s.cfg.Now()
	if now.Sub(p.renewed) < p.s.cfg.LeaseTTL/3 {
		return nil
	}
	ok, err := p.s.cfg.Store.Lease(ctx, leaseName, p.s.cfg.Token, p.s.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	if !ok {
		return errLeaseLost
	}
	p.renewed = now
	return nil
}
