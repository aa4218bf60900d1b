package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// The budget scenario: two replicas on one Redis behind one webhook, the
// send budget on at its defaults (TELEGRAM_SEND_RATE unset: 30 a second,
// 1 a second per chat after a burst of 3), and a fake that enforces
// Telegram's limits on sendMessage, answering 429 with retry_after over
// them (telegramtest.Meter), and counts the sends per second and per chat.

// budgetLimits are Telegram's limits as the fake enforces them. Slack
// forgives a send that comes a little early: on loopback a send let go on
// time can still arrive after a later one, by the scheduler's jitter.
func budgetLimits(slack time.Duration) telegramtest.Limits {
	return telegramtest.Limits{Global: 30, ChatBurst: 3, ChatEvery: time.Second, GroupPerMinute: 20, Slack: slack}
}

// budgetReport is what the fake saw in a budget phase.
type budgetReport struct {
	Limits           string  `json:"limits"`
	Sent             int     `json:"sends_admitted"`
	TooMany          int     `json:"sends_refused_429"`
	MaxPerSecond     int     `json:"max_sends_in_any_second"`
	MaxChatPerSecond int     `json:"max_sends_to_one_chat_in_any_second"`
	PartsPerAnswer   float64 `json:"messages_per_answer"`
	// QueueSec is the budget's queueing delay with every user waiting:
	// users × messages per answer / the bots' rate. A first reply waits
	// at most about that long for its slot.
	QueueSec float64 `json:"budget_queue_sec"`
	Rate     float64 `json:"bots_send_rate"`
}

func newBudgetReport(l telegramtest.Limits, s telegramtest.SendStats, r *result, sendRate string) *budgetReport {
	rate := 30.0 // the bots' default
	if v, err := strconv.ParseFloat(sendRate, 64); err == nil && v > 0 {
		rate = v
	}
	b := &budgetReport{
		Limits: fmt.Sprintf("%d/s overall, per chat %d at once then 1 per %s, %d/min per group, slack %s",
			l.Global, l.ChatBurst, l.ChatEvery, l.GroupPerMinute, l.Slack),
		Sent: s.Sent, TooMany: s.TooMany, MaxPerSecond: s.MaxGlobal, MaxChatPerSecond: s.MaxChat, Rate: rate,
	}
	if r.Answered > 0 {
		b.PartsPerAnswer = float64(r.Messages) / float64(r.Answered)
		b.QueueSec = float64(r.Users) * b.PartsPerAnswer / rate
	}
	return b
}

func (b *budgetReport) write(w *strings.Builder) {
	fmt.Fprintf(w, "  send budget: fake enforced %s\n", b.Limits)
	fmt.Fprintf(w, "    sends admitted %d, refused with 429: %d; most in any second %d overall, %d to one chat\n",
		b.Sent, b.TooMany, b.MaxPerSecond, b.MaxChatPerSecond)
	fmt.Fprintf(w, "    bots at TELEGRAM_SEND_RATE %g; %.2f messages per answer: queueing delay with every user waiting %.1fs (users × messages / rate)\n",
		b.Rate, b.PartsPerAnswer, b.QueueSec)
}

// meterSends answers sendMessage 429 when it is over the meter's limits,
// and lets everything else through to the fake.
func meterSends(m *telegramtest.Meter) func(w http.ResponseWriter, r *http.Request, method string, p apiParams) bool {
	return func(w http.ResponseWriter, r *http.Request, method string, p apiParams) bool {
		if method != "sendMessage" {
			return false
		}
		ra := m.Admit(p.int("chat_id"), time.Now())
		if ra == 0 {
			return false
		}
		writeAPI(w, http.StatusTooManyRequests, fmt.Sprintf(
			`{"ok":false,"error_code":429,"description":"Too Many Requests: retry after %d","parameters":{"retry_after":%d}}`, ra, ra))
		return true
	}
}
