package telegram

import (
	"context"
	"time"

	"github.com/shebao/shebao/bot"
)

// Handler turns one message into the replies to send (bot.Engine).
type Handler interface {
	Handle(ctx context.Context, m bot.Message) ([]bot.Reply, error)
}

// Coordinator lets several replicas share one webhook: it serialises the
// updates of one chat across replicas in update_id order and remembers which
// updates were already answered. bot/redisstore implements it.
type Coordinator interface {
	// Begin waits until update updateID is the next of chatID to handle
	// (no other replica is handling an update of that chat, and no
	// earlier-numbered update of that chat is waiting) and claims it.
	// dup is true when the update was already handled: then there is
	// nothing to do and done is nil. Otherwise done must be called exactly
	// once; handled=false leaves the update unanswered so a redelivery is
	// handled again. A claim also clears the chat's blocked mark (see
	// Blocklist): a user who writes has unblocked the bot.
	Begin(ctx context.Context, chatID, updateID int64) (done func(handled bool), dup bool, err error)
}

// Limit is the per-user rate limit (bot.Limit). Check returns one verdict
// per entry of users, in order; it never fails, and decides alone when its
// store is down. Quiet reports a user refused moments ago and still to be
// refused: their updates are then dropped before they are even decoded.
type Limit interface {
	Check(ctx context.Context, users []string, now time.Time) []bot.Verdict
	Quiet(user string, now time.Time) bool
}

// Blocklist remembers chats whose user blocked the bot (HTTP 403), so
// nothing more is sent to them until they write again (Coordinator.Begin
// clears the mark).
type Blocklist interface {
	MarkBlocked(ctx context.Context, chatID int64) error
}
