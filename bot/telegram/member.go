package telegram

import (
	"context"

	"github.com/go-telegram/bot/models"
)

// unblocker is a Blocklist that can forget a mark (bot/redisstore's can).
type unblocker interface {
	Unblock(ctx context.Context, chat string) error
}

// chatMember handles a change of the bot's own membership of a chat
// (my_chat_member). In a private chat, kicked means the user blocked the
// bot: the chat is marked at once, so reminders stop before they meet a
// 403; back to member means they unblocked it. In a group it tells that
// the bot was added or removed. Nothing is sent.
func (a *Adapter) chatMember(ctx context.Context, m *models.ChatMemberUpdated) outcome {
	chat := tgID(m.Chat.ID)
	was, is := inChat(m.OldChatMember), inChat(m.NewChatMember)
	if m.Chat.Type == models.ChatTypePrivate {
		switch {
		case m.NewChatMember.Type == models.ChatMemberTypeBanned:
			if bl := a.opts.Blocklist; bl != nil {
				if err := bl.MarkBlocked(ctx, chat); err != nil {
					a.log.Warn("mark chat blocked", "err", err)
					return outcomeError
				}
			}
			return outcomeBlocked
		case is && !was:
			if u, ok := a.opts.Blocklist.(unblocker); ok {
				if err := u.Unblock(ctx, chat); err != nil {
					a.log.Warn("unmark blocked chat", "err", err)
					return outcomeError
				}
			}
			return outcomeUnblocked
		}
		return outcomeIgnored
	}
	switch {
	case is && !was:
		a.log.Info("bot added to a chat", "chat_type", string(m.Chat.Type), "status", string(m.NewChatMember.Type))
		return outcomeAdded
	case was && !is:
		a.log.Info("bot removed from a chat", "chat_type", string(m.Chat.Type), "status", string(m.NewChatMember.Type))
		return outcomeRemoved
	}
	return outcomeIgnored
}

// inChat reports whether a member status means the bot is in the chat.
func inChat(c models.ChatMember) bool {
	switch c.Type {
	case models.ChatMemberTypeOwner, models.ChatMemberTypeAdministrator, models.ChatMemberTypeMember:
		return true
	case models.ChatMemberTypeRestricted:
		return c.Restricted != nil && c.Restricted.IsMember
	}
	return false
}
