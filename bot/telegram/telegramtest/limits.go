package telegramtest

import (
	"math"
	"sync"
	"time"
)

// Limits are Telegram's send limits as the fake enforces them on
// sendMessage: a send over one is answered 429 with a retry_after, and
// not delivered. Zero fields enforce nothing.
type Limits struct {
	// Global is the most sends, all chats together, in any Window (1 s
	// when 0).
	Global int
	Window time.Duration
	// ChatBurst and ChatEvery: a private chat takes ChatBurst messages
	// at once, then one every ChatEvery (a generic cell rate).
	ChatBurst int
	ChatEvery time.Duration
	// GroupPerMinute is the most sends to one group (a negative chat
	// id) in any minute.
	GroupPerMinute int
	// Slack is how much earlier than allowed a send may come and still
	// pass: the network between a sender and the fake jitters.
	Slack time.Duration
}

// SendStats is what a Meter saw.
type SendStats struct {
	Sent    int // sends admitted
	TooMany int // sends answered 429
	// MaxGlobal is the most admitted sends in any Window; MaxChat the
	// most to one chat in any Window; MaxGroup the most to one group in
	// any minute. They are exact (no Slack).
	MaxGlobal, MaxChat, MaxGroup int
}

// Meter counts sends and enforces Limits. It is safe for concurrent use.
type Meter struct {
	l     Limits
	mu    sync.Mutex
	all   []time.Time // admitted sends in the last Window
	chats map[int64]*chatMeter
	stats SendStats
}

type chatMeter struct {
	tat    time.Time   // a private chat's cell rate
	recent []time.Time // admitted sends in the last Window (groups: minute)
}

// NewMeter enforces l.
func NewMeter(l Limits) *Meter {
	if l.Window <= 0 {
		l.Window = time.Second
	}
	return &Meter{l: l, chats: map[int64]*chatMeter{}}
}

// Admit counts a send to chat at now. It returns 0 when the send is
// within the limits, or else the retry_after to answer (seconds, at
// least 1), and then counts it as refused.
func (m *Meter) Admit(chat int64, now time.Time) (retryAfter int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	group := chat < 0
	window := m.l.Window
	if group {
		window = time.Minute
	}
	c := m.chats[chat]
	if c == nil {
		c = &chatMeter{}
		m.chats[chat] = c
	}
	m.all = since(m.all, now.Add(-m.l.Window))
	c.recent = since(c.recent, now.Add(-window))
	var wait time.Duration
	if m.l.Global > 0 {
		if n := len(m.all); n >= m.l.Global {
			if oldest := m.all[n-m.l.Global]; oldest.After(now.Add(-m.l.Window + m.l.Slack)) {
				wait = max(wait, oldest.Add(m.l.Window).Sub(now))
			}
		}
	}
	switch {
	case group && m.l.GroupPerMinute > 0:
		if n := len(c.recent); n >= m.l.GroupPerMinute {
			if oldest := c.recent[n-m.l.GroupPerMinute]; oldest.After(now.Add(-time.Minute + m.l.Slack)) {
				wait = max(wait, oldest.Add(time.Minute).Sub(now))
			}
		}
	case !group && m.l.ChatEvery > 0 && m.l.ChatBurst > 0:
		tolerance := time.Duration(m.l.ChatBurst-1)*m.l.ChatEvery + m.l.Slack
		if ahead := c.tat.Sub(now); ahead > tolerance {
			wait = max(wait, ahead-tolerance+m.l.Slack)
		}
	}
	if wait > 0 {
		m.stats.TooMany++
		return max(1, int(math.Ceil(wait.Seconds())))
	}
	if c.tat.Before(now) {
		c.tat = now
	}
	c.tat = c.tat.Add(m.l.ChatEvery)
	m.all = append(m.all, now)
	c.recent = append(c.recent, now)
	m.stats.Sent++
	m.stats.MaxGlobal = max(m.stats.MaxGlobal, len(m.all))
	if group {
		m.stats.MaxGroup = max(m.stats.MaxGroup, len(since(c.recent, now.Add(-time.Minute))))
	} else {
		m.stats.MaxChat = max(m.stats.MaxChat, len(since(c.recent, now.Add(-m.l.Window))))
	}
	return 0
}

// Stats returns what the meter saw so far.
func (m *Meter) Stats() SendStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// since drops the times of ts (in order) not after from.
func since(ts []time.Time, from time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(from) {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}
