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
	// the answer per entry.
	Take(ctx context.Context, users []string, now time.Time, p RatePolicy) ([]Charge, error)
}

// Charge is the answer about one message.
type Charge struct {
	Verdict Verdict
	// Quiet, for a refused message, is when another message of the user
	// could be answered differently (admitted, or bring a new notice).
	// Until then their messages are refused without asking the store:
	// the shared allowance only refills with time, so no replica can
	// admit one sooner.
	Quiet time.Time
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

	mu    sync.Mutex
	down  bool                 // the store failed last time (logged once per change)
	quiet map[string]time.Time // users refused until then (see Charge.Quiet)
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
// decides. Users refused a moment ago are refused again without asking
// the store (see Charge.Quiet): a flood costs the store one call per
// notice window, not one per message.
func (l *Limit) Check(ctx context.Context, users []string, now time.Time) []Verdict {
	if len(users) == 0 {
		return nil
	}
	out := make([]Verdict, len(users))
	if l.policy.Off() {
		for range users {
			l.count(Admit, false)
		}
		return out
	}
	var ask []string
	var at []int
	for i, u := range users {
		if l.Quiet(u, now) {
			out[i] = Skip
			l.count(Skip, false)
			continue
		}
		ask, at = append(ask, u), append(at, i)
	}
	if len(ask) == 0 {
		return out
	}
	var cs []Charge
	local := true
	if l.store != nil {
		var err error
		cs, err = l.store.Take(ctx, ask, now, l.policy)
		switch {
		case err == nil && len(cs) == len(ask):
			l.setDown(false, nil)
			local = false
		case ctx.Err() == nil:
			l.setDown(true, err)
		}
	}
	if local {
		cs = l.local.take(ask, now, l.policy)
	}
	l.mu.Lock()
	for k, c := range cs {
		out[at[k]] = c.Verdict
		if c.Verdict != Admit && c.Quiet.After(now) {
			l.rememberLocked(ask[k], c.Quiet, now)
		}
	}
	l.mu.Unlock()
	for _, c := range cs {
		l.count(c.Verdict, local)
	}
	return out
}

// Quiet reports whether user was refused moments ago and is still to be
// refused at now: a transport may then drop their message before reading
// it.
func (l *Limit) Quiet(user string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.quiet[user]
	if ok && !now.Before(until) {
		delete(l.quiet, user)
		return false
	}
	return ok
}

func (l *Limit) rememberLocked(user string, until, now time.Time) {
	if l.quiet == nil {
		l.quiet = make(map[string]time.Time)
	}
	if len(l.quiet) >= maxLocalUsers {
		for u, t := range l.quiet {
			if !now.Before(t) {
				delete(l.quiet, u)
			}
		}
		if len(l.quiet) >= maxLocalUsers {
			return // only a cache: the store still decides
		}
	}
	l.quiet[user] = until
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

func (l *localLimiter) take(users []string, now time.Time, p RatePolicy) []Charge {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == nil {
		l.users = make(map[string]*localUser)
	}
	out := make([]Charge, len(users))
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
func rate(tat, notice *time.Time, now time.Time, p RatePolicy) Charge {
	t := *tat
	if t.Before(now) {
		t = now
	}
	tau := time.Duration(p.Burst-1) * p.Every
	if t.Sub(now) <= tau {
		*tat = t.Add(p.Every)
		return Charge{Verdict: Admit}
	}
	c := Charge{Verdict: Skip}
	if !now.Before(*notice) {
		c.Verdict = Notify
		*notice = now.Add(p.Notice)
	}
	c.Quiet = t.Add(-tau)
	if notice.Before(c.Quiet) {
		c.Quiet = *notice
	}
	return c
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
