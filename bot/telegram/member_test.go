package telegram

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// unblockList is a Blocklist that also forgets marks, like redisstore's.
type unblockList struct {
	fakeBlocklist
	unblocked []int64
}

func (b *unblockList) Unblock(_ context.Context, chat string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.blocked, untg(chat))
	b.unblocked = append(b.unblocked, untg(chat))
	return nil
}

// TestMemberUpdatesWebhook: a user who blocks the bot is marked at once,
// before any reminder meets a 403; unblocking clears the mark; a group add
// and removal are counted and logged; nothing is sent and the engine sees
// none of it.
func TestMemberUpdatesWebhook(t *testing.T) {
	bl := &unblockList{fakeBlocklist: fakeBlocklist{blocked: map[int64]bool{}}}
	metrics := &countMetrics{}
	e := newEnv(t, func(o *Options) { o.Blocklist = bl; o.Metrics = metrics })
	const (
		member = models.ChatMemberTypeMember
		kicked = models.ChatMemberTypeBanned
		left   = models.ChatMemberTypeLeft
	)
	steps := []struct {
		u       models.Update
		blocked bool
		count   string
	}{
		{telegramtest.MemberUpdate(7, models.ChatTypePrivate, member, kicked), true, "member/blocked"},
		{telegramtest.MemberUpdate(7, models.ChatTypePrivate, kicked, member), false, "member/unblocked"},
		{telegramtest.MemberUpdate(-100, models.ChatTypeSupergroup, left, member), false, "member/added"},
		{telegramtest.MemberUpdate(-100, models.ChatTypeSupergroup, member, left), false, "member/removed"},
	}
	for i, st := range steps {
		st.u.ID = int64(i + 1)
		if rec := postUpdate(t, e, st.u, e.options.WebhookSecret); rec.Code != http.StatusOK {
			t.Fatalf("step %d: status %d", i, rec.Code)
		}
		if got := bl.isBlocked(7); got != st.blocked {
			t.Errorf("step %d: chat 7 blocked = %v, want %v", i, got, st.blocked)
		}
		if metrics.get(st.count) != 1 {
			t.Errorf("step %d: %s counted %d times", i, st.count, metrics.get(st.count))
		}
	}
	if len(e.h.messages()) != 0 || len(e.fake.Sent()) != 0 {
		t.Errorf("engine saw %v, sent %v: membership changes are not messages", e.h.messages(), e.fake.Sent())
	}
	if logs := e.logs.String(); !strings.Contains(logs, "bot added to a chat") || !strings.Contains(logs, "bot removed from a chat") {
		t.Errorf("group add and removal not logged:\n%s", logs)
	}
}

// TestMemberUpdatesPolling: polling asks for my_chat_member and marks a
// block as soon as the update arrives, while the other chats are answered
// as usual; the update is confirmed.
func TestMemberUpdatesPolling(t *testing.T) {
	bl := &unblockList{fakeBlocklist: fakeBlocklist{blocked: map[int64]bool{}}}
	e := newEnv(t, func(o *Options) { o.Blocklist = bl; o.WebhookURL, o.WebhookSecret = "", "" })
	ctx, cancel := context.WithCancel(testCtx(t))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := e.a.RunPolling(ctx); err != nil {
			t.Error(err)
		}
	})
	e.fake.PushMember(7, models.ChatTypePrivate, models.ChatMemberTypeMember, models.ChatMemberTypeBanned)
	last := e.fake.PushText(8, "hi")
	if _, err := e.fake.WaitSent(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	if got := e.fake.Confirmed(); got != last+1 {
		t.Errorf("confirmed offset %d, want %d", got, last+1)
	}
	if !bl.isBlocked(7) {
		t.Error("chat 7 not marked blocked")
	}
	calls := e.fake.Calls("getUpdates")
	if len(calls) == 0 || !strings.Contains(calls[0].Params["allowed_updates"], "my_chat_member") {
		t.Errorf("getUpdates did not ask for my_chat_member: %v", calls)
	}
	if got := e.fake.Sent(); len(got) != 1 || got[0].ChatID != 8 {
		t.Errorf("sent %+v, want one reply to chat 8", got)
	}
}
