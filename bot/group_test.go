package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// Nothing a verified user can send in a group makes the bot ask for, or
// show, anything personal there: every command (bare and with an
// argument), every button, a contact and a typed ID number.
func TestGroupNeverAsksForOrShowsPersonalData(t *testing.T) {
	ctx := context.Background()
	db, err := records.OpenDemo(ctx, testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	const user, group, id = 100, -1001, "110105198803120014"
	// The fake keeps the link per user, so a route that showed records
	// in a group would find them there.
	store.link[tg(user)] = bot.Link{PersonID: id, Until: testNow.Add(24 * time.Hour)}
	e := bot.New(bot.Config{Sessions: store, Attempts: store, Reminders: store, FAQ: f, Records: db, Now: func() time.Time { return testNow }})

	var inputs []bot.Message
	for _, c := range bot.Commands() {
		inputs = append(inputs, bot.Message{Text: "/" + c.Name}, bot.Message{Text: "/" + c.Name + " yes"})
	}
	for _, data := range []string{"verify:", "records:", "balance:", "backpay:", "documents:", "remind:on", "remind:off",
		"remind:evening", "forget:", "forget:yes", "lang:en", "lang:zh"} {
		inputs = append(inputs, bot.Message{Callback: data})
	}
	inputs = append(inputs,
		bot.Message{Text: id},
		bot.Message{Text: "我的身份证 110105 19880312 0014 查一下"},
		bot.Message{Contact: &bot.Contact{User: tg(user), Phone: "13900000011"}},
		bot.Message{Text: "/start verify"},
	)
	for _, m := range inputs {
		m.Chat, m.User, m.ChatType, m.Time = tg(group), tg(user), bot.ChatSupergroup, testNow
		m.PrivateChatURL = "https://t.me/ShebaoBot?start="
		replies, err := e.Handle(ctx, m)
		if err != nil {
			t.Errorf("%+v: %v", m, err)
		}
		for _, r := range replies {
			switch {
			case r.AskContact != "":
				t.Errorf("%q%q: asks for a contact in the group", m.Text, m.Callback)
			case strings.Contains(bot.PlainText(r), "110105"), strings.Contains(bot.PlainText(r), "0014"), strings.Contains(bot.PlainText(r), "¥"),
				strings.Contains(bot.PlainText(r), "139"):
				t.Errorf("%q%q: shows something personal in the group:\n%s", m.Text, m.Callback, bot.PlainText(r))
			case strings.Contains(bot.PlainText(r), "请发送您的18位"), strings.Contains(bot.PlainText(r), "send your 18-digit"):
				t.Errorf("%q%q: asks for an ID number in the group", m.Text, m.Callback)
			}
		}
		if d := store.dialog[tg(group)]; d.Name != "" {
			t.Errorf("%q%q: started dialog %q in the group", m.Text, m.Callback, d.Name)
		}
	}
	if store.forgets != 0 || !store.link[tg(user)].Valid(testNow) {
		t.Errorf("the group changed the user's private state: %d forgets, link %v", store.forgets, store.link[tg(user)].Valid(testNow))
	}
}
