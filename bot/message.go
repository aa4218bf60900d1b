// Package bot is the conversation engine of shebao: a Message goes in, the
// Replies to send come out. It knows nothing of Telegram, Redis or SQL: the
// transport (bot/telegram, or the terminal in cmd/shebao) turns its input into
// a Message and sends the Replies; state lives behind the small store
// interfaces declared in store.go.
package bot

import "time"

// Message is one thing a user did: typed text, pressed an inline button
// (Callback) or shared a contact.
type Message struct {
	// Chat is where the message was written and where replies go; User is
	// who wrote it. Both are identities scoped by channel ("tg:42"); in a
	// private chat they are the same.
	Chat string
	User string
	// Text is what the user typed. Empty for button presses and contacts.
	Text string
	// Callback is the data of a pressed inline button ("" otherwise).
	Callback string
	// Contact is set when the user shared a contact card.
	Contact *Contact
	// LanguageCode is the client's IETF language tag (Telegram's
	// language_code), used until the user picks a language with /lang.
	LanguageCode string
	// Time is when the transport received the message.
	Time time.Time
	// ChatType is where the message was written. Transports with group
	// chats must set it: the engine never asks for or shows anything
	// personal outside a private chat. Empty means private (a transport
	// with private chats only, such as the terminal).
	ChatType ChatType
	// PrivateChatURL opens a private chat with the bot when a start
	// payload ([A-Za-z0-9_-], at most 64 bytes) is appended, e.g.
	// "https://t.me/SomeBot?start=". In a group the engine sends personal
	// commands there. Empty when the transport cannot link to one.
	PrivateChatURL string
	// Remote is the client's network address (an IP) where the channel
	// sees one (the web chat): it keys the per-address limit on SMS codes
	// and is never logged or stored readable. "" elsewhere.
	Remote string
	// Limited is set by the transport when the per-user rate limit (Limit)
	// refused the message and the user is to be told once: the engine
	// answers with that notice and does nothing else.
	Limited bool
}

// ChatType is the kind of chat a message was written in.
type ChatType string

const (
	ChatPrivate    ChatType = "private"
	ChatGroup      ChatType = "group"
	ChatSupergroup ChatType = "supergroup"
	ChatChannel    ChatType = "channel"
)

// Private reports whether only the user and the bot see the chat.
func (m Message) Private() bool { return m.ChatType == "" || m.ChatType == ChatPrivate }

// Contact is a shared contact card. User is the identity of the account
// the card belongs to ("" when it is not one of the channel's users).
type Contact struct {
	User  string
	Phone string
}
