package telegram

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shebao/shebao/bot"
)

// The send budget: every sendMessage and editMessageText of every replica
// waits for it, so that together they keep to Telegram's limits (about 30
// messages a second overall, 1 a second in a chat, 20 a minute in a
// group) and Telegram has no reason to answer 429. The budget lives in
// Redis (SendBudget, redisstore.Store); while Redis does not answer, each
// replica paces itself at the configured rate (local), so answers never
// stop, at the price of exceeding the rate by the number of replicas for
// that while. A 429 that comes anyway still waits its retry_after (call).
//
// Answers (bot.Interactive) take the next free global slot, however far
// ahead, and wait for it: they queue in the order they came, across
// replicas. Reminders (bot.Bulk, Send) take a slot only when it is free
// now, with none queued ahead for an answer, and at most
// SendLimits.BulkShare of the rate: a burst of reminders delays an answer
// by one slot (1/30 s) at most, and leaves a third of the rate free for
// answers.

// SendBudget is the budget shared by the replicas. TakeSend asks for one
// send to chat at now: when taken, it may go after wait; when not, ask
// again after wait. See redisstore.Store.TakeSend.
type SendBudget interface {
	TakeSend(ctx context.Context, chat string, class bot.SendClass, now time.Time, p bot.SendPolicy) (wait time.Duration, taken bool, err error)
}

// BudgetMetrics receives what the budget does; implementations must be
// safe for concurrent use.
type BudgetMetrics interface {
	// BudgetWait observes how long a send waited for the budget
	// (class "interactive" or "bulk"), 0 included.
	BudgetWait(class string, d time.Duration)
	// BudgetFallback counts a send paced by the local limiter because
	// the shared budget did not answer.
	BudgetFallback()
}

// SendLimits are the limits the adapter keeps to. Zero fields take
// Telegram's, as documented on each.
type SendLimits struct {
	// Off paces nothing: for a Bot API without limits (the load
	// harness's fake, tests). TELEGRAM_SEND_RATE=0.
	Off bool
	// Rate is sends a second, all chats together (TELEGRAM_SEND_RATE);
	// DefaultSendRate when 0.
	Rate float64
	// BulkShare is the part of Rate reminders may use; 2/3 when 0.
	BulkShare float64
	// ChatEvery and ChatBurst: a private chat gets ChatBurst messages at
	// once (a multi-part answer), then one every ChatEvery; 1 s and 3.
	ChatEvery time.Duration
	ChatBurst int
	// GroupPerMinute is a group's or channel's limit, with the same
	// burst; 20.
	GroupPerMinute int
	// CallerClock times the shared budget by this process's clock instead
	// of the Redis server's (tests on virtual time). By default every
	// replica asks by the server's one clock, so replicas whose clocks
	// disagree, or a request delayed on its way, cannot bunch sends.
	CallerClock bool
}

// DefaultSendRate is Telegram's limit for a bot's messages a second.
const DefaultSendRate = 30

func (l SendLimits) withDefaults() SendLimits {
	if l.Rate <= 0 {
		l.Rate = DefaultSendRate
	}
	if l.BulkShare <= 0 || l.BulkShare > 1 {
		l.BulkShare = 2.0 / 3
	}
	if l.ChatEvery <= 0 {
		l.ChatEvery = time.Second
	}
	if l.ChatBurst <= 0 {
		l.ChatBurst = 3
	}
	if l.GroupPerMinute <= 0 {
		l.GroupPerMinute = 20
	}
	return l
}

// policy is the budget of one send to chatID. Group and channel ids are
// negative in the Bot API. A group's burst counts against its minute: a
// burst b and one every minute/(n-b+1) never fit more than n into a
// minute.
func (l SendLimits) policy(chatID int64) bot.SendPolicy {
	p := bot.SendPolicy{
		Every:     perSecond(l.Rate),
		BulkEvery: perSecond(l.Rate * l.BulkShare),
		ChatEvery: l.ChatEvery,
		ChatBurst: l.ChatBurst,
	}
	if chatID < 0 {
		b := min(l.ChatBurst, l.GroupPerMinute)
		p.ChatBurst = b
		p.ChatEvery = ceilMicro(time.Minute / time.Duration(l.GroupPerMinute-b+1))
	}
	return p
}

// perSecond is the interval of rate a second.
func perSecond(rate float64) time.Duration {
	return ceilMicro(time.Duration(float64(time.Second) / rate))
}

// ceilMicro rounds d up to the microsecond, the shared budget's unit:
// 1s/30 rounded down would fit a 31st send into a second.
func ceilMicro(d time.Duration) time.Duration {
	return (d + time.Microsecond - 1) / time.Microsecond * time.Microsecond
}

// budget is the adapter's side of the send budget: the shared one, and
// the local one it falls back on.
type budget struct {
	shared  SendBudget // nil: local only
	limits  SendLimits
	local   localBudget
	metrics BudgetMetrics
	log     *slog.Logger
	now     func() time.Time
	// degraded is set while the shared budget fails: the first failure
	// logs a warning, the first success after it says so at Info.
	degraded atomic.Bool
}

func newBudget(opts Options, log *slog.Logger) *budget {
	return &budget{
		shared:  opts.Budget,
		limits:  opts.SendLimits.withDefaults(),
		local:   localBudget{chats: map[string]time.Time{}},
		metrics: opts.BudgetMetrics,
		log:     log,
		now:     time.Now,
	}
}

// budgetKey carries the send a Bot API call makes (withBudget) to the
// call's attempts (attempt), each of which waits for the budget.
type budgetKey struct{}

type budgetSend struct {
	chatID int64
	class  bot.SendClass
}

// withBudget marks ctx's call as a message to chatID in class.
func withBudget(ctx context.Context, chatID int64, class bot.SendClass) context.Context {
	return context.WithValue(ctx, budgetKey{}, budgetSend{chatID, class})
}

// waitFor is wait for the message of ctx's call (withBudget); it returns
// at once for a call that sends no message.
func (b *budget) waitFor(ctx context.Context) error {
	s, ok := ctx.Value(budgetKey{}).(budgetSend)
	if !ok {
		return nil
	}
	return b.wait(ctx, s.chatID, s.class)
}

// wait blocks until one send to chatID may go. Only the end of ctx stops
// it, and then its error is returned.
func (b *budget) wait(ctx context.Context, chatID int64, class bot.SendClass) error {
	if b.limits.Off {
		return nil
	}
	p := b.limits.policy(chatID)
	chat := tgID(chatID)
	start := b.now()
	for {
		now := b.now()
		wait, taken, server, err := b.take(ctx, chat, class, now, p)
		if err != nil {
			return err
		}
		// The slot is at now+wait, whatever the round trip to Redis
		// took: a send let go late bunches with the next. A wait by the
		// server's clock counts from its answer: a little late, never
		// early.
		at := now.Add(wait)
		if server {
			at = b.now().Add(wait)
		}
		if d := at.Sub(b.now()); d > 0 {
			if err := sleepCtx(ctx, d); err != nil {
				return err
			}
		}
		if taken {
			if b.metrics != nil {
				b.metrics.BudgetWait(class.String(), b.now().Sub(start))
			}
			return nil
		}
	}
}

// take asks the shared budget, or the local one when the shared one
// fails. It returns an error only when ctx ended.
func (b *budget) take(ctx context.Context, chat string, class bot.SendClass, now time.Time, p bot.SendPolicy) (wait time.Duration, taken, server bool, err error) {
	if b.shared != nil {
		at := time.Time{} // the server's clock
		if b.limits.CallerClock {
			at = now
		}
		wait, taken, err := b.shared.TakeSend(ctx, chat, class, at, p)
		if err == nil {
			if b.degraded.CompareAndSwap(true, false) {
				b.log.Info("send budget shared again")
			}
			return wait, taken, at.IsZero(), nil
		}
		if ctx.Err() != nil {
			return 0, false, false, ctx.Err()
		}
		if b.degraded.CompareAndSwap(false, true) {
			b.log.Warn("send budget unavailable; pacing this replica alone at the configured rate", "err", err)
		}
		if b.metrics != nil {
			b.metrics.BudgetFallback()
		}
		if !errors.Is(err, bot.ErrUnavailable) {
			b.log.Debug("send budget", "err", err)
		}
	}
	wait, taken = b.local.take(chat, class, now, p)
	return wait, taken, false, nil
}

// localBudget is the shared budget's algorithm (redisstore's sendScript)
// in one process: the global, bulk and per-chat theoretical arrival times.
type localBudget struct {
	mu     sync.Mutex
	global time.Time
	bulk   time.Time
	chats  map[string]time.Time
	swept  time.Time
}

func (l *localBudget) take(chat string, class bot.SendClass, now time.Time, p bot.SendPolicy) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		// Chats whose time is past hold nothing: forget them, like the
		// expiring keys in Redis.
		for k, t := range l.chats {
			if t.Before(now) {
				delete(l.chats, k)
			}
		}
		l.swept = now
	}
	g := later(l.global, now)
	c := later(l.chats[chat], now)
	cslot := later(c.Add(-time.Duration(p.ChatBurst-1)*p.ChatEvery), now)
	if class == bot.Bulk {
		at := later(later(g, cslot), l.bulk)
		if at.After(now) {
			return at.Sub(now), false
		}
		l.global = now.Add(p.Every)
		l.chats[chat] = c.Add(p.ChatEvery)
		l.bulk = now.Add(p.BulkEvery)
		return 0, true
	}
	if cslot.After(g) {
		return cslot.Sub(now), false
	}
	l.global = g.Add(p.Every)
	l.chats[chat] = later(c, g).Add(p.ChatEvery)
	return g.Sub(now), true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
