package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
	"github.com/shebao/shebao/records"
)

// TestRemindOnce opts the demo people in, then runs `shebao remind --once`
// as an operator would: a dry run lists, a real run sends through the Bot
// API once, a second run sends nothing, and a blocked user is turned off.
func TestRemindOnce(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	store, err := redisstore.Open(ctx, redisstore.Options{URL: "redis://" + mr.Addr(), Keys: mustKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := "2026-11-26T09:30:00+08:00"
	at, _ := time.Parse(time.RFC3339, now)
	// Valid at the pretended time for the pass, and in the future for
	// Redis's own expiry.
	until := at.Add(24 * time.Hour)
	if time.Now().After(at) {
		until = time.Now().Add(24 * time.Hour)
	}
	for i, p := range records.Demo() {
		if err := store.SetReminder(ctx, bot.ReminderSetting{Chat: tg(int64(i + 1)), User: tg(int64(i + 1)),
			Slot: bot.SlotMorning, PersonID: p.ID, Until: until, Lang: "en"}); err != nil {
			t.Fatal(err)
		}
	}
	fake := telegramtest.New(testToken)
	defer fake.Close()
	fake.Block(3) // the employee whose employer has not paid
	vars := map[string]string{"REDIS_URL": "redis://" + mr.Addr(), "TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL, "SHEBAO_KEYS": testKeys}

	var out, logs bytes.Buffer
	if err := run(ctx, []string{"remind", "--once", "--dry-run", "--now", now}, env(vars), strings.NewReader(""), &out, &logs); err != nil {
		t.Fatalf("dry run: %v\n%s", err, logs.String())
	}
	for _, want := range []string{"4 due, 0 sent", "would send to chat tg:2: window 2026-08", "would send to chat tg:3: missed 2026-10", "310104********0020"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), records.Demo()[1].ID) {
		t.Error("dry-run output shows a full ID number")
	}
	if n := len(fake.Sent()); n != 0 {
		t.Fatalf("dry run sent %d messages", n)
	}

	out.Reset()
	if err := run(ctx, []string{"remind", "--once", "--now", now}, env(vars), strings.NewReader(""), &out, &logs); err != nil {
		t.Fatalf("pass: %v\n%s", err, logs.String())
	}
	if !strings.Contains(out.String(), "3 sent, 1 failed") {
		t.Errorf("pass output:\n%s", out.String())
	}
	sent := fake.Sent()
	if len(sent) != 3 {
		t.Fatalf("sent %d messages, want 3: %+v", len(sent), sent)
	}
	if !strings.Contains(sent[0].ReplyMarkup, `"remind:off"`) || !strings.Contains(sent[0].ReplyMarkup, `"backpay:"`) {
		t.Errorf("reminder buttons: %s", sent[0].ReplyMarkup)
	}
	if _, on, _ := store.Reminder(ctx, tg(3), tg(3)); on {
		t.Error("reminders still on for the user who blocked the bot")
	}

	// Later the same morning: nothing more.
	out.Reset()
	if err := run(ctx, []string{"remind", "--once", "--now", "2026-11-26T11:00:00+08:00"}, env(vars), strings.NewReader(""), &out, &logs); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Sent()); n != 3 {
		t.Errorf("second pass sent %d more", n-3)
	}
	if strings.Contains(logs.String(), records.Demo()[1].ID) {
		t.Error("logs show a full ID number")
	}
}

func TestRemindUsage(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"remind"}, env(nil), strings.NewReader(""), &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "--once") {
		t.Errorf("remind without --once: %v", err)
	}
	err = run(context.Background(), []string{"remind", "--once", "--now", "tomorrow"}, env(nil), strings.NewReader(""), &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("bad --now: %v", err)
	}
}

// Telegram refusals that a retry would meet again: a chat that is gone
// turns its reminders off like a block; a message Telegram rejects is not
// retried at every recheck (which rescanned the whole slot each time).
func TestRemindPermanentFailures(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	store, err := redisstore.Open(ctx, redisstore.Options{URL: "redis://" + mr.Addr(), Keys: mustKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := "2026-11-26T09:30:00+08:00"
	at, _ := time.Parse(time.RFC3339, now)
	until := at.Add(24 * time.Hour)
	if time.Now().After(at) {
		until = time.Now().Add(24 * time.Hour)
	}
	for i, p := range records.Demo() {
		if err := store.SetReminder(ctx, bot.ReminderSetting{Chat: tg(int64(i + 1)), User: tg(int64(i + 1)),
			Slot: bot.SlotMorning, PersonID: p.ID, Until: until, Lang: "en"}); err != nil {
			t.Fatal(err)
		}
	}
	fake := telegramtest.New(testToken)
	defer fake.Close()
	fake.FailChat(4, 400, "Bad Request: chat not found")
	fake.FailChat(5, 400, "Bad Request: can't parse entities: unsupported start tag")
	vars := map[string]string{"REDIS_URL": "redis://" + mr.Addr(), "TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL, "SHEBAO_KEYS": testKeys}
	sendsTo := func(chat int64) int {
		n := 0
		for _, c := range fake.Calls("sendMessage") {
			if c.Params["chat_id"] == fmt.Sprint(chat) {
				n++
			}
		}
		return n
	}

	var out, logs bytes.Buffer
	if err := run(ctx, []string{"remind", "--once", "--now", now}, env(vars), strings.NewReader(""), &out, &logs); err != nil {
		t.Fatalf("pass: %v\n%s", err, logs.String())
	}
	if !strings.Contains(out.String(), "2 sent, 2 failed") || strings.Contains(out.String(), "incomplete") {
		t.Errorf("pass output:\n%s", out.String())
	}
	if _, on, _ := store.Reminder(ctx, tg(4), tg(4)); on {
		t.Error("reminders still on for a chat Telegram does not know")
	}
	if _, on, _ := store.Reminder(ctx, tg(5), tg(5)); !on {
		t.Error("reminders turned off for a message Telegram rejected")
	}
	before := sendsTo(5)

	// The next recheck the same morning: the slot is done.
	out.Reset()
	if err := run(ctx, []string{"remind", "--once", "--now", "2026-11-26T09:40:00+08:00"}, env(vars), strings.NewReader(""), &out, &logs); err != nil {
		t.Fatal(err)
	}
	if got := sendsTo(5); got != before {
		t.Errorf("the rejected reminder was sent again at the recheck: %d sendMessage calls, want %d\n%s", got, before, out.String())
	}
	if !strings.Contains(out.String(), "slots []") {
		t.Errorf("recheck output, want no slot left to run:\n%s", out.String())
	}
}

// A pass by a process that runs WeChat only (here `remind --once` with
// WECHAT_* and no Telegram token, as a WeChat-only serve would) leaves the
// Telegram chats' reminders, and the slot, to the Telegram process: its
// pass the same morning still sends them.
func TestRemindOnceLeavesOtherChannels(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	store, err := redisstore.Open(ctx, redisstore.Options{URL: "redis://" + mr.Addr(), Keys: mustKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := "2026-11-26T09:30:00+08:00"
	at, _ := time.Parse(time.RFC3339, now)
	until := at.Add(24 * time.Hour)
	if time.Now().After(at) {
		until = time.Now().Add(24 * time.Hour)
	}
	for i, p := range records.Demo() {
		if err := store.SetReminder(ctx, bot.ReminderSetting{Chat: tg(int64(i + 1)), User: tg(int64(i + 1)),
			Slot: bot.SlotMorning, PersonID: p.ID, Until: until, Lang: "en"}); err != nil {
			t.Fatal(err)
		}
	}
	base := map[string]string{"REDIS_URL": "redis://" + mr.Addr(), "SHEBAO_KEYS": testKeys}
	wx := map[string]string{"WECHAT_APP_ID": wxAppID, "WECHAT_APP_SECRET": wxSecret, "WECHAT_TOKEN": wxToken, "WECHAT_API_URL": "http://127.0.0.1:1"}
	for k, v := range base {
		wx[k] = v
	}
	var out, logs bytes.Buffer
	if err := run(ctx, []string{"remind", "--once", "--now", now}, env(wx), strings.NewReader(""), &out, &logs); err != nil {
		t.Fatalf("WeChat-only pass: %v\n%s", err, logs.String())
	}
	if !strings.Contains(out.String(), "0 sent, 0 failed") {
		t.Errorf("WeChat-only pass output:\n%s", out.String())
	}
	fake := telegramtest.New(testToken)
	defer fake.Close()
	tgVars := map[string]string{"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL}
	for k, v := range base {
		tgVars[k] = v
	}
	out.Reset()
	if err := run(ctx, []string{"remind", "--once", "--now", "2026-11-26T09:40:00+08:00"}, env(tgVars), strings.NewReader(""), &out, &logs); err != nil {
		t.Fatalf("Telegram pass: %v\n%s", err, logs.String())
	}
	if n := len(fake.Sent()); n != 4 {
		t.Errorf("the Telegram pass after the WeChat one sent %d reminders, want 4:\n%s", n, out.String())
	}
}
