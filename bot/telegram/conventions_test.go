package telegram

import (
	"strings"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// engineEnv is the adapter in front of the real engine: an embedded Redis
// store, the demo records and the curated FAQ. The clock stands still at
// the test's start: the store's expiries run on Redis's real clock.
func engineEnv(t *testing.T) (*env, *webhook) {
	t.Helper()
	now := time.Now()
	ctx := testCtx(t)
	store, err := redisstore.OpenEmbedded(ctx, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := records.OpenDemo(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine := bot.New(bot.Config{Sessions: store, Attempts: store, Reminders: store, FAQ: f, Records: db,
		Keys: store.Keys(), Now: func() time.Time { return now }})
	e := newEnv(t, func(o *Options) {
		o.Handler, o.Coordinator, o.Blocklist = engine, store, store
		o.Now = func() time.Time { return now }
	})
	if err := e.a.identify(ctx); err != nil { // learns the username for deep links
		t.Fatal(err)
	}
	return e, &webhook{t: t, e: e}
}

// last is the latest message chat shows.
func last(t *testing.T, e *env, chat int64) telegramtest.Message {
	t.Helper()
	msgs := e.fake.Chat(chat)
	if len(msgs) == 0 {
		t.Fatalf("chat %d shows nothing", chat)
	}
	return msgs[len(msgs)-1]
}

// press has the user of m's chat press the button of m whose data starts
// with prefix.
func press(t *testing.T, w *webhook, m telegramtest.Message, prefix string) {
	t.Helper()
	data, _ := telegramtest.Buttons(m)
	for _, d := range data {
		if strings.HasPrefix(d, prefix) {
			w.deliver(telegramtest.PressUpdate(m, d))
			return
		}
	}
	t.Fatalf("message %q has no button %s… (buttons %v)", m.Text, prefix, data)
}

// verify takes chat through /verify as the first demo person.
func verify(t *testing.T, e *env, w *webhook, chat int64) {
	t.Helper()
	p := records.Demo()[0].Person
	w.deliver(telegramtest.TextUpdate(chat, "/verify"))
	w.deliver(telegramtest.TextUpdate(chat, p.ID))
	w.deliver(telegramtest.ContactUpdate(chat, p.Phone, chat))
	if got := strings.Join(shown(e.fake.Chat(chat)), "\n"); !strings.Contains(got, "验证成功") || !strings.Contains(got, records.MaskID(p.ID)) {
		t.Fatalf("verification did not succeed: %q", got)
	}
}

// Choosing a language from /lang edits the menu into the confirmation:
// the user sees one message, without the buttons, not a menu and an
// answer under it.
func TestLanguageMenuEditedInPlace(t *testing.T) {
	e, w := engineEnv(t)
	w.deliver(telegramtest.TextUpdate(5, "/lang"))
	menu := last(t, e, 5)
	if !strings.Contains(menu.Text, "请选择语言") {
		t.Fatalf("/lang shows %q", menu.Text)
	}
	press(t, w, menu, "lang:en")
	chat := e.fake.Chat(5)
	if len(chat) != 1 || chat[0].ID != menu.ID || !strings.Contains(chat[0].Text, "I will reply in English") {
		t.Fatalf("chat shows %q, want the menu edited into the English confirmation", shown(chat))
	}
	if data, _ := telegramtest.Buttons(chat[0]); len(data) != 0 {
		t.Errorf("the confirmation keeps the menu's buttons %v", data)
	}
}

// Choosing a reminder time edits the reminder menu: after turning
// reminders on and changing the time, the chat still shows one reminder
// message, with the current setting and its buttons.
func TestReminderMenuEditedInPlace(t *testing.T) {
	e, w := engineEnv(t)
	verify(t, e, w, 5)
	w.deliver(telegramtest.TextUpdate(5, "/remind"))
	menu := last(t, e, 5)
	before := len(e.fake.Chat(5))
	press(t, w, menu, "remind:on")
	if m := last(t, e, 5); m.ID != menu.ID || !strings.Contains(m.Text, "已开启缴费提醒") {
		t.Fatalf("after turning reminders on the chat ends with %q (message %d), want the menu %d edited", m.Text, m.ID, menu.ID)
	}
	press(t, w, last(t, e, 5), "remind:evening")
	m := last(t, e, 5)
	if m.ID != menu.ID || !strings.Contains(m.Text, "晚上 19:00") {
		t.Errorf("after choosing the evening the chat ends with %q (message %d), want the menu edited", m.Text, m.ID)
	}
	if data, _ := telegramtest.Buttons(m); len(data) == 0 {
		t.Error("the edited reminder menu lost its buttons")
	}
	if n := len(e.fake.Chat(5)); n != before {
		t.Errorf("chat grew from %d to %d messages; button presses must not stack new ones", before, n)
	}
}

// A deep link t.me/<bot>?start=<payload> (a QR code on a bureau's page)
// opens the private chat with "/start <payload>" and runs that route;
// an unknown payload gets the normal welcome.
func TestStartDeepLinks(t *testing.T) {
	e, w := engineEnv(t)
	w.deliver(telegramtest.TextUpdate(5, "/start verify"))
	if m := last(t, e, 5); !strings.Contains(m.Text, "18位居民身份证号码") {
		t.Errorf("/start verify shows %q, want the verification prompt", m.Text)
	}
	w.deliver(telegramtest.TextUpdate(5, "/cancel"))

	w.deliver(telegramtest.TextUpdate(6, "/start xyz"))
	if m := last(t, e, 6); !strings.Contains(m.Text, "社保医保小助手") {
		t.Errorf("/start xyz shows %q, want the welcome", m.Text)
	}
	addressed := telegramtest.TextUpdate(7, "/start@"+telegramtest.BotUsername+" verify")
	w.deliver(addressed)
	if m := last(t, e, 7); !strings.Contains(m.Text, "18位居民身份证号码") {
		t.Errorf("/start@bot verify shows %q, want the verification prompt", m.Text)
	}

	verify(t, e, w, 8)
	w.deliver(telegramtest.TextUpdate(8, "/start records"))
	if m := last(t, e, 8); !strings.Contains(m.Text, "近24个月缴费记录") {
		t.Errorf("/start records shows %q, want the records", m.Text)
	}
}

// In a group a start payload is not acted on: nothing personal is asked
// there. A personal command there points to the private chat by a deep
// link, and that link's payload runs the command in private.
func TestStartDeepLinkInGroup(t *testing.T) {
	e, w := engineEnv(t)
	group := func(text string) models.Update {
		u := telegramtest.TextUpdate(-100, text)
		u.Message.Chat = models.Chat{ID: -100, Type: models.ChatTypeSupergroup, Title: "社保交流群"}
		u.Message.From.ID = 5
		return u
	}
	w.deliver(group("/start@" + telegramtest.BotUsername + " verify"))
	if m := last(t, e, -100); strings.Contains(m.Text, "身份证号码。") || !strings.Contains(m.Text, "社保医保小助手") {
		t.Errorf("/start verify in a group shows %q, want the welcome and no verification", m.Text)
	}
	w.deliver(group("/verify@" + telegramtest.BotUsername))
	link := "https://t.me/" + telegramtest.BotUsername + "?start=verify"
	if m := last(t, e, -100); !strings.Contains(m.Text, `href="`+link+`"`) {
		t.Fatalf("/verify in a group shows %q, want a link to %s", m.Text, link)
	}
	w.deliver(telegramtest.TextUpdate(5, "/start verify"))
	if m := last(t, e, 5); !strings.Contains(m.Text, "18位居民身份证号码") {
		t.Errorf("following the group's link shows %q, want the verification prompt", m.Text)
	}
}
