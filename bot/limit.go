package bot

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// The per-user rate limit in front of the engine. It belongs to the channel
// contract: every transport asks Limit about each message before it queues
// it, so one user cannot take the workers, the LLM or the Bot API from
// everyone else, whatever channel they write on. A message over the limit
// is not queued: the user gets one notice per RatePolicy.Notice (the
// transport passes that message on with Message.Limited set, and the
// engine answers it with the notice alone), and the rest is skipped and
// counted.

// RatePolicy is a per-user rate: Burst messages at once, then one more
// every Every (a generic cell rate: the allowance refills continuously).
// The default, a burst of 10 and 20 a minute, is far above how fast a
// person reads answers (a question takes seconds to type and an answer
// longer to read; a verification is four steps), while it caps what one
// account costs at 20 answers, and at most 20 LLM calls, a minute: the
// flood that found the problem sent 1,170 a second.
type RatePolicy struct {
	Burst int
	Every time.Duration
	// Notice is the least time between two notices to one user.
	Notice time.Duration
}

// DefaultRatePolicy is a burst of 10, then 20 messages a minute, and one
// notice a minute.
var DefaultRatePolicy = RatePolicy{Burst: 10, Every: 3 * time.Second, Notice: time.Minute}

// Off reports whether the policy limits nothing.
func (p RatePolicy) Off() bool { return p.Burst <= 0 || p.Every <= 0 }

// Verdict is what Limit says about one message.
type Verdict uint8

const (
	// Admit: within the limit; handle the message.
	Admit Verdict = iota
	// Notify: over the limit and not told yet in this notice window:
	// pass the message on with Message.Limited set.
	Notify
	// Skip: over the limit and told already: drop the message.
	Skip
)

func (v Verdict) String() string {
	switch v {
	case Notify:
		return "notified"
	case Skip:
		return "skipped"
	}
	return "admitted"
}

// RateLimiter charges messages to users in storage every replica shares,
// so the limit holds across replicas (bot/redisstore).
type RateLimiter interface {
	// Take charges one message at now to each entry of users (the same
	// user may appear more than once: each counts, in order) and returns
	// a verdict per entry.
	Take(ctx context.Context, users []string, now time.Time, p RatePolicy) ([]Verdict, error)
}

// Limit applies a RatePolicy per user. Users are identities scoped by
// channel ("tg:123"). While the shared store fails it limits in this
// process instead, with the same policy per replica: messages are still
// answered, and a flood still cannot queue without bound.
type Limit struct {
	store  RateLimiter // nil: this process only
	policy RatePolicy
	local  localLimiter
	log    *slog.Logger
	count  func(v Verdict, local bool)

	mu   sync.Mutex
	down bool // the store failed last time (logged once per change)
}

// LimitOptions configure NewLimit; every field may be zero.
type LimitOptions struct {
	// Store is the shared limiter; nil limits in this process only.
	Store RateLimiter
	// Policy; the zero value is DefaultRatePolicy, and a policy whose
	// Off is true disables the limit.
	Policy *RatePolicy
	Logger *slog.Logger
	// Count is told every verdict and whether this process decided it
	// (the store failed), for metrics.
	Count func(v Verdict, local bool)
}

// maxLocalUsers bounds the users the in-process fallback remembers.
const maxLocalUsers = 100_000

// NewLimit returns a Limit.
func NewLimit(o LimitOptions) *Limit {
	l := &Limit{store: o.Store, policy: DefaultRatePolicy, log: o.Logger, count: o.Count}
	if o.Policy != nil {
		l.policy = *o.Policy
	}
	if l.policy.Notice <= 0 {
		l.policy.Notice = DefaultRatePolicy.Notice
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.count == nil {
		l.count = func(Verdict, bool) {}
	}
	l.local.max = maxLocalUsers
	return l
}

// Policy returns the policy in force.
func (l *Limit) Policy() RatePolicy { return l.policy }

// Check charges one message to each entry of users at now and returns the
// verdicts, in order. It never fails: when the store does, this process
// decides.
func (l *Limit) Check(ctx context.Context, users []string, now time.Time) []Verdict {
	if len(users) == 0 {
		return nil
	}
	if l.policy.Off() {
		out := make([]Verdict, len(users))
		for range users {
			l.count(Admit, false)
		}
		return out
	}
	if l.store != nil {
		vs, err := l.store.Take(ctx, users, now, l.policy)
		if err == nil && len(vs) == len(users) {
			l.setDown(false, nil)
			for _, v := range vs {
				l.count(v, false)
			}
			return vs
		}
		if ctx.Err() == nil {
			l.setDown(true, err)
		}
	}
	vs := l.local.take(users, now, l.policy)
	for _, v := range vs {
		l.count(v, true)
	}
	return vs
}

func (l *Limit) setDown(down bool, err error) {
	l.mu.Lock()
	changed := l.down != down
	l.down = down
	l.mu.Unlock()
	switch {
	case changed && down:
		l.log.Warn("rate limit store unavailable; limiting in this process", "err", err)
	case changed:
		l.log.Info("rate limit store available again")
	}
}

// localLimiter is the same cell rate as the store's, in this process.
type localLimiter struct {
	mu    sync.Mutex
	users map[string]*localUser
	max   int
}

type localUser struct {
	tat    time.Time // theoretical arrival time of the next message
	notice time.Time // no notice before this
}

func (l *localLimiter) take(users []string, now time.Time, p RatePolicy) []Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == nil {
		l.users = make(map[string]*localUser)
	}
	out := make([]Verdict, len(users))
	for i, id := range users {
		u := l.users[id]
		if u == nil {
			if len(l.users) >= l.max {
				l.prune(now)
			}
			if len(l.users) >= l.max {
				continue // Admit: remembering more users would be the unbounded part
			}
			u = &localUser{}
			l.users[id] = u
		}
		out[i] = rate(&u.tat, &u.notice, now, p)
	}
	return out
}

// prune forgets users whose allowance is full again and who may be told
// again: remembering them changes nothing.
func (l *localLimiter) prune(now time.Time) {
	for id, u := range l.users {
		if !u.tat.After(now) && !u.notice.After(now) {
			delete(l.users, id)
		}
	}
}

// rate is the generic cell rate algorithm: a message is within the limit
// when the theoretical arrival time is at most (Burst-1)·Every ahead of
// now; each admitted message moves it Every further.
func rate(tat, notice *time.Time, now time.Time, p RatePolicy) Verdict {
	t := *tat
	if t.Before(now) {
		t = now
	}
	if t.Sub(now) <= time.Duration(p.Burst-1)*p.Every {
		*tat = t.Add(p.Every)
		return Admit
	}
	if now.Before(*notice) {
		return Skip
	}
	*notice = now.Add(p.Notice)
	return Notify
}

// runLimited answers a message the transport's Limit refused: the notice
// alone, in the user's language. Nothing else happens: no dialog step, no
// question, no state change.
func runLimited(t *turn) {
	t.kind, t.outcome = "limit", "notice"
	t.say(t.l(
		"您发消息太快了，有一部分我没有处理。请稍等一会儿，一次问一个问题。",
		"You are sending messages too fast, so I skipped some of them. Please wait a moment and ask one question at a time."))
}
