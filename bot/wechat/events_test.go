package wechat

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/wechat/wechattest"
)

// WeChat waits 5 seconds for an answer: the POST is acknowledged with
// "success" once the message is held, before the engine has answered,
// and the answer follows through the customer-service API.
func TestAcknowledgedBeforeHandled(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	e := newEnv(t, envOpts{handler: func(h bot.Handler) bot.Handler {
		return handlerFunc(func(ctx context.Context, m bot.Message) ([]bot.Reply, error) {
			started <- struct{}{}
			<-release
			return h.Handle(ctx, m)
		})
	}})
	d, err := e.fake.Text(t.Context(), "oSlow", "查社保缴费记录要钱吗")
	if err != nil || d.Status != http.StatusOK || d.Body != "success" {
		t.Fatalf("POST: %+v %v", d, err)
	}
	<-started // the engine has the message and is not done with it
	held := 0
	e.stores[0].HeldMessages(t.Context(), channel, func(string, time.Time, []byte) { held++ })
	if held != 1 || len(e.fake.Texts("oSlow")) != 0 {
		t.Errorf("acknowledged: %d held, %d sent; want it held and not yet answered", held, len(e.fake.Texts("oSlow")))
	}
	close(release)
	if _, err := e.fake.WaitTexts(t.Context(), "oSlow", 1); err != nil {
		t.Fatal(err)
	}
	e.settle()
}

// A follow gets the welcome with its next steps; a menu click runs its
// command; an unfollow turns reminders off and marks the chat, and a
// reminder to it then goes nowhere.
func TestFollowClickUnfollow(t *testing.T) {
	e := newEnv(t, envOpts{template: "tmplR"})
	ctx := t.Context()
	const user = "oEvents"
	chat := bot.ID(bot.ChannelWeChat, user)
	e.fake.Event(ctx, user, "subscribe", "")
	got, err := e.fake.WaitTexts(ctx, user, 1)
	if err != nil || !strings.Contains(got[0], "下一步") || !strings.Contains(got[0], "[1]") {
		t.Fatalf("welcome: %q %v", got, err)
	}
	e.fake.Event(ctx, user, "CLICK", MenuKey("records"))
	got, err = e.fake.WaitTexts(ctx, user, 2)
	if err != nil || !strings.Contains(got[1], "先验证身份") {
		t.Fatalf("我的记录 (/records) before verifying: %q %v", got, err)
	}
	e.fake.Event(ctx, user, "CLICK", "cmd:no-such-command")
	if got, err = e.fake.WaitTexts(ctx, user, 3); err != nil || !strings.Contains(got[2], "社保医保小助手") {
		t.Fatalf("unknown key: %q %v", got, err)
	}
	e.settle()

	st := e.stores[0]
	if err := st.SetReminder(ctx, bot.ReminderSetting{Chat: chat, User: chat, Slot: bot.SlotMorning, PersonID: "350203199309200050", Until: e.now().Add(time.Hour), Lang: "zh"}); err != nil {
		t.Fatal(err)
	}
	e.fake.Post(ctx, wechattest.Message{From: user, Type: "event", Event: "subscribe_msg_popup_event", Template: "tmplR", Status: "accept"}, wechattest.PostOpts{})
	e.settle()
	e.fake.Event(ctx, user, "unsubscribe", "")
	e.settle()
	if _, on, err := st.Reminder(ctx, chat, chat); on || err != nil {
		t.Errorf("reminders still on after the unfollow (%v)", err)
	}
	if b, err := st.Blocked(ctx, chat); !b || err != nil {
		t.Errorf("unfollowed chat not marked (%v)", err)
	}
	if n := len(e.fake.Texts(user)); n != 3 {
		t.Errorf("%d messages; the unfollow and the subscription answer nothing", n)
	}
}

// The 48-hour rule: inside the window a reminder is a customer-service
// message; outside it, without a subscription message, it is not sent at
// all (bot.ErrCannotPush, counted as skipped); with the template the user
// accepted it goes as a subscription message, whose fields fit WeChat's
// 20 characters.
func TestRemindersAndTheWindow(t *testing.T) {
	reminder := []bot.Reply{bot.TextReply("🔔 医疗保险缴费提醒（350203********0050）\n上个月的医疗保险还没有缴费记录。\n发送 /backpay 查看补缴办法。")}
	t.Run("no template", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		ctx := t.Context()
		chat := bot.ID(bot.ChannelWeChat, "oRemind")
		e.say("oRemind", "查社保缴费记录要钱吗", 1)
		if err := e.adapters[0].Send(ctx, chat, reminder); err != nil {
			t.Fatalf("inside the window: %v", err)
		}
		if got := e.fake.Texts("oRemind"); len(got) != 2 || !strings.Contains(got[1], "缴费提醒") {
			t.Fatalf("inside the window: %q", got)
		}
		calls := e.fake.Calls(sendPath)
		e.advance(48*time.Hour + time.Minute)
		err := e.adapters[0].Send(ctx, chat, reminder)
		if !errors.Is(err, bot.ErrCannotPush) {
			t.Errorf("outside the window: %v, want ErrCannotPush", err)
		}
		if n := e.fake.Calls(sendPath); n != calls {
			t.Errorf("%d customer-service sends outside the window", n-calls)
		}
		// The user writes again: the window opens again.
		e.say("oRemind", "查社保缴费记录要钱吗", 1)
		if err := e.adapters[0].Send(ctx, chat, reminder); err != nil {
			t.Errorf("after the user wrote again: %v", err)
		}
	})
	t.Run("template", func(t *testing.T) {
		e := newEnv(t, envOpts{template: "tmplR"})
		ctx := t.Context()
		for _, u := range []string{"oSub", "oNoSub"} {
			e.say(u, "查社保缴费记录要钱吗", 1)
		}
		e.fake.Post(ctx, wechattest.Message{From: "oSub", Type: "event", Event: "subscribe_msg_popup_event", Template: "tmplR", Status: "accept"}, wechattest.PostOpts{})
		e.fake.Post(ctx, wechattest.Message{From: "oNoSub", Type: "event", Event: "subscribe_msg_popup_event", Template: "tmplR", Status: "reject"}, wechattest.PostOpts{})
		e.settle()
		e.advance(49 * time.Hour)
		if err := e.adapters[0].Send(ctx, bot.ID(bot.ChannelWeChat, "oSub"), reminder); err != nil {
			t.Fatalf("subscribed: %v", err)
		}
		var tm *wechattest.Sent
		for _, s := range e.fake.Sent("oSub") {
			if s.Template != "" {
				tm = &s
			}
		}
		if tm == nil || tm.Template != "tmplR" || !strings.Contains(tm.Data["thing1"], "医疗保险缴费提醒") {
			t.Fatalf("subscription message: %+v", tm)
		}
		for k, v := range tm.Data {
			if utf8.RuneCountInString(v) > 20 || strings.Contains(v, "0050") {
				t.Errorf("%s = %q: over 20 characters, or the ID in it", k, v)
			}
		}
		if err := e.adapters[0].Send(ctx, bot.ID(bot.ChannelWeChat, "oNoSub"), reminder); !errors.Is(err, bot.ErrCannotPush) {
			t.Errorf("refused the subscription: %v, want ErrCannotPush", err)
		}
		if n := len(e.fake.Texts("oNoSub")); n != 1 {
			t.Errorf("%d texts to the user who refused, want only the answer", n)
		}
	})
}

// A draining replica refuses new messages with 503, holding nothing:
// WeChat retries them, on another replica or after the restart.
func TestDrainRefusesNewMessages(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.adapters[0].Drain()
	d, err := e.fake.Text(t.Context(), "oDrain", "查社保缴费记录要钱吗")
	if err != nil || d.Status != http.StatusServiceUnavailable {
		t.Fatalf("POST while draining: %+v %v; want 503", d, err)
	}
	held := 0
	e.stores[0].HeldMessages(t.Context(), channel, func(string, time.Time, []byte) { held++ })
	if held != 0 || e.handled.Load() != 0 {
		t.Errorf("while draining: %d held, %d handled", held, e.handled.Load())
	}
}
