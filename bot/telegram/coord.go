package telegram

import (
	"context"
	"time"

	"github.com/shebao/shebao/bot"
)

// Handler, Coordinator and Blocklist are the channel contract's (bot).
type (
	Handler     = bot.Handler
	Coordinator = bot.Coordinator
	Blocklist   = bot.Blocklist
)

// Limit is the per-user rate limit (bot.Limit). Check returns one verdict
// per entry of users, in order; it never fails, and decides alone when its
// store is down. Quiet reports a user refused moments ago and still to be
// refused: their updates are then dropped before they are even decoded.
type Limit interface {
	Check(ctx context.Context, users []string, now time.Time) []bot.Verdict
	Quiet(user string, now time.Time) bool
}
