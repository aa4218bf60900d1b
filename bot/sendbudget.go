package bot

import "time"

// The send budget: how fast a channel may send, shared by every replica.
// A platform limits a bot as a whole and per chat (Telegram: about 30
// messages a second overall, 1 a second in a chat, 20 a minute in a
// group); the transport asks the budget before each send and waits the
// time it is told. Both limits are generic cell rates over one clock, the
// caller's now.

// SendPolicy is one send's limits. Every spaces the sends of all chats
// together (no burst: no second ever holds more than 1/Every); the chat
// of the send gets ChatBurst sends at once (a multi-part answer), then one
// every ChatEvery. BulkEvery spaces bulk sends (reminders) among
// themselves; 0 leaves them only the global limit.
type SendPolicy struct {
	Every     time.Duration
	ChatEvery time.Duration
	ChatBurst int
	BulkEvery time.Duration
}

// SendClass says who waits for a send.
type SendClass uint8

const (
	// Interactive: an answer to someone who just wrote. It queues for
	// the next free global slot.
	Interactive SendClass = iota
	// Bulk: a send nobody is waiting for (a reminder). It takes a global
	// slot only when none is queued for an answer, so it never makes an
	// answer wait behind it for more than one Every.
	Bulk
)

func (c SendClass) String() string {
	if c == Bulk {
		return "bulk"
	}
	return "interactive"
}
