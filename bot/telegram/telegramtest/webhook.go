package telegramtest

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-telegram/bot/models"
)

// webhookState is the webhook as setWebhook left it, and what
// getWebhookInfo reports about its deliveries.
type webhookState struct {
	url, secret   string
	allowed       []string
	lastError     string
	lastErrorDate int64
}

// Webhook returns the webhook's URL, secret and update kinds as the bot
// last set them; a zero URL when none is set.
func (s *Server) Webhook() (url, secret string, allowed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hook.url, s.hook.secret, s.hook.allowed
}

// SetWebhook sets the webhook as if another process had (a zero URL
// deletes it), without recording a call.
func (s *Server) SetWebhook(url, secret string, allowed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = webhookState{url: url, secret: secret, allowed: allowed}
}

// FailDeliveries makes getWebhookInfo report msg as the last error
// delivering to the webhook.
func (s *Server) FailDeliveries(msg string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook.lastError, s.hook.lastErrorDate = msg, at.Unix()
}

func (s *Server) webhook(w http.ResponseWriter, method string, params map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "setWebhook":
		var allowed []string
		if a := params["allowed_updates"]; a != "" {
			if err := json.Unmarshal([]byte(a), &allowed); err != nil {
				writeError(w, http.StatusBadRequest, "Bad Request: can't parse allowed updates", 0)
				return
			}
		}
		s.hook = webhookState{url: params["url"], secret: params["secret_token"], allowed: allowed}
	case "deleteWebhook":
		s.hook = webhookState{}
	case "getWebhookInfo":
		// Telegram counts the updates not yet delivered or confirmed.
		info := models.WebhookInfo{URL: s.hook.url, PendingUpdateCount: len(s.queue),
			LastErrorMessage: s.hook.lastError, LastErrorDate: int(s.hook.lastErrorDate)}
		if s.hook.url != "" {
			info.AllowedUpdates = s.hook.allowed
		}
		writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: info})
		return
	}
	writeJSON(w, http.StatusOK, apiResponse{OK: true, Result: true})
}

// MemberUpdate is a change of the bot's own membership of chatID
// (my_chat_member): from status was to is ("member", "kicked", "left",
// "administrator"). chatType is "private", "group" or "supergroup"; in a
// private chat the user is chatID, elsewhere user 7 made the change.
func MemberUpdate(chatID int64, chatType models.ChatType, was, is models.ChatMemberType) models.Update {
	from := user(chatID)
	if chatType != models.ChatTypePrivate {
		from = user(7)
	}
	botUser := models.User{ID: 42, IsBot: true, FirstName: "Shebao", Username: BotUsername}
	member := func(t models.ChatMemberType) models.ChatMember {
		m := models.ChatMember{Type: t}
		switch t {
		case models.ChatMemberTypeMember:
			m.Member = &models.ChatMemberMember{User: &botUser}
		case models.ChatMemberTypeBanned:
			m.Banned = &models.ChatMemberBanned{User: &botUser}
		case models.ChatMemberTypeLeft:
			m.Left = &models.ChatMemberLeft{User: &botUser}
		case models.ChatMemberTypeAdministrator:
			m.Administrator = &models.ChatMemberAdministrator{User: botUser}
		}
		return m
	}
	return models.Update{MyChatMember: &models.ChatMemberUpdated{
		Chat: models.Chat{ID: chatID, Type: chatType}, From: from, Date: int(time.Now().Unix()),
		OldChatMember: member(was), NewChatMember: member(is),
	}}
}

// PushMember queues a membership change (see MemberUpdate).
func (s *Server) PushMember(chatID int64, chatType models.ChatType, was, is models.ChatMemberType) int64 {
	return s.Push(MemberUpdate(chatID, chatType, was, is))
}
