package bot

import (
	"context"
	"errors"
	"strings"
)

// The channel contract: what a transport (bot/telegram, bot/web, bot/wechat,
// bot/terminal) needs from the engine and its stores, and what it offers
// them. A transport turns its platform's input into a Message, orders and
// dedupes the messages of one chat through a Coordinator, asks Limit before
// it queues anything, hands the Message to a Handler and renders the
// Replies within its platform's rules. It is the only importer of its
// platform's library, and no transport imports another.
//
// Identities are strings scoped by channel: "tg:42" (a Telegram user or
// chat), "web:3f9c…" (a web chat session), "wx:oAbC…" (a WeChat OpenID).
// The engine never looks inside them beyond the channel prefix.

// Channels, as identity prefixes.
const (
	ChannelTelegram = "tg"
	ChannelWeb      = "web"
	ChannelWeChat   = "wx"
	ChannelTerminal = "term"
)

// ID builds the identity of a local id on a channel: ID("tg", "42") is
// "tg:42".
func ID(channel, local string) string { return channel + ":" + local }

// ChannelOf is the channel of an identity: "tg" for "tg:42", "" for a
// string that is not one.
func ChannelOf(id string) string {
	ch, _, ok := strings.Cut(id, ":")
	if !ok {
		return ""
	}
	return ch
}

// Local is the channel's own id in an identity: "42" for "tg:42".
func Local(id string) string {
	_, local, _ := strings.Cut(id, ":")
	return local
}

// Handler turns one message into the replies to send (*Engine is one).
type Handler interface {
	Handle(ctx context.Context, m Message) ([]Reply, error)
}

// Coordinator lets several replicas share one channel: it serialises the
// updates of one chat across replicas in update order and remembers which
// updates were already answered. bot/redisstore implements it.
type Coordinator interface {
	// Begin waits until update updateID is the next of chat to handle (no
	// other replica is handling an update of that chat, and no
	// earlier-numbered update of that chat is waiting) and claims it. dup
	// is true when the update was already handled: then there is nothing
	// to do and done is nil. Otherwise done must be called exactly once;
	// handled=false leaves the update unanswered so a redelivery is
	// handled again. A claim also clears the chat's blocked mark (see
	// Blocklist): a user who writes has unblocked the bot.
	Begin(ctx context.Context, chat string, updateID int64) (done func(handled bool), dup bool, err error)
}

// Blocklist remembers chats whose user blocked the bot or left the
// channel, so nothing more is sent to them until they write again
// (Coordinator.Begin clears the mark).
type Blocklist interface {
	MarkBlocked(ctx context.Context, chat string) error
}

// Sender delivers replies to a chat outside a conversation turn: reminders.
// An error that wraps ErrGone means the chat will never take a message
// again (the user blocked the bot, unsubscribed); ErrCannotPush means the
// channel cannot start a conversation at all (the web chat).
type Sender interface {
	Send(ctx context.Context, chat string, replies []Reply) error
}

var (
	// ErrGone: the chat is gone for good; stop sending to it.
	ErrGone = errors.New("chat gone")
	// ErrCannotPush: the channel only answers; it cannot send first.
	ErrCannotPush = errors.New("channel cannot send first")
)

// Caps are what a channel's clients and platform can do. The engine looks
// them up by the identity's channel (CapsOf) before it offers something
// that needs one, so transports set nothing.
type Caps struct {
	// Contact: the client can share the user's own phone number as the
	// platform verified it (Telegram's request_contact). Verification
	// takes it as the second factor; without it a one-time code goes by
	// SMS to the phone on record.
	Contact bool
	// Push: the bot can write first, as reminders need.
	Push bool
}

// channelCaps are the capabilities of each channel. The terminal's
// "/contact PHONE" stands in for Telegram's contact button; it runs no
// reminder scanner. The web chat only answers. WeChat can write first
// only with a subscription-message template (bot/wechat): serve sets
// Config.Caps to say so when one is configured.
var channelCaps = map[string]Caps{
	ChannelTelegram: {Contact: true, Push: true},
	ChannelTerminal: {Contact: true},
	ChannelWeb:      {},
	ChannelWeChat:   {},
}

// CapsOf is what the channel can do; an unknown channel can do nothing.
func CapsOf(channel string) Caps { return channelCaps[channel] }

// PushChannels are the channels that can send reminders.
func PushChannels() []string {
	var out []string
	for _, ch := range []string{ChannelTelegram, ChannelWeChat, ChannelWeb, ChannelTerminal} {
		if channelCaps[ch].Push {
			out = append(out, ch)
		}
	}
	return out
}
