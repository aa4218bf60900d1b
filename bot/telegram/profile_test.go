package telegram

import (
	"strings"
	"testing"

	"github.com/go-telegram/bot/models"
	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
)

// writes counts the calls that change the bot's profile.
func writes(e *env) int {
	n := 0
	for _, m := range []string{"setMyCommands", "deleteMyCommands", "setMyDescription", "setMyShortDescription"} {
		n += len(e.fake.Calls(m))
	}
	return n
}

// The command menu is for private chats only, in zh (also the default)
// and en; the menus an earlier release set for every chat, groups
// included, are gone. A restart writes nothing.
func TestSetCommandsPrivateChatsOnly(t *testing.T) {
	e := newEnv(t, nil)
	old := []models.BotCommand{{Command: "verify", Description: "验证身份"}}
	for _, lang := range []string{"", "zh", "en"} {
		e.fake.SetBotCommands("default", lang, old)
	}
	zh := []Command{{Name: "start", Description: "开始"}, {Name: "/verify", Description: "验证身份"}}
	en := []Command{{Name: "start", Description: "Start"}, {Name: "verify", Description: "Verify"}}
	if err := e.a.SetCommands(testCtx(t), zh, en); err != nil {
		t.Fatal(err)
	}
	want := map[string][]models.BotCommand{
		"":   {{Command: "start", Description: "开始"}, {Command: "verify", Description: "验证身份"}},
		"zh": {{Command: "start", Description: "开始"}, {Command: "verify", Description: "验证身份"}},
		"en": {{Command: "start", Description: "Start"}, {Command: "verify", Description: "Verify"}},
	}
	for lang, cmds := range want {
		if diff := cmp.Diff(cmds, e.fake.BotCommands("all_private_chats", lang)); diff != "" {
			t.Errorf("private-chat menu for %q (-want +got):\n%s", lang, diff)
		}
		if got := e.fake.BotCommands("default", lang); len(got) != 0 {
			t.Errorf("default-scope menu for %q still there: %v (groups would show it)", lang, got)
		}
	}
	for _, c := range e.fake.Calls("setMyCommands") {
		if c.Params["scope"] != `{"type":"all_private_chats"}` {
			t.Errorf("setMyCommands with scope %q", c.Params["scope"])
		}
	}
	if n := len(e.fake.Calls("deleteMyCommands")); n != 3 {
		t.Errorf("%d deleteMyCommands calls, want one per language left by the old release", n)
	}

	before := writes(e)
	if err := e.a.SetCommands(testCtx(t), zh, en); err != nil {
		t.Fatal(err)
	}
	if n := writes(e) - before; n != 0 {
		t.Errorf("a restart with the same menu made %d writes, want none", n)
	}
}

// The descriptions are published in zh (also the default) and en; a
// restart writes nothing, a changed text only what changed.
func TestSetDescriptions(t *testing.T) {
	e := newEnv(t, nil)
	zh, en := bot.Descriptions()
	if err := e.a.SetDescriptions(testCtx(t), zh, en); err != nil {
		t.Fatal(err)
	}
	for lang, d := range map[string]bot.Description{"": zh, "zh": zh, "en": en} {
		if got := e.fake.Description(lang); got != d.Text {
			t.Errorf("description for %q: %q, want %q", lang, got, d.Text)
		}
		if got := e.fake.ShortDescription(lang); got != d.Short {
			t.Errorf("short description for %q: %q, want %q", lang, got, d.Short)
		}
	}

	before := writes(e)
	if err := e.a.SetDescriptions(testCtx(t), zh, en); err != nil {
		t.Fatal(err)
	}
	if n := writes(e) - before; n != 0 {
		t.Errorf("a restart with the same texts made %d writes, want none", n)
	}

	en.Short = "Changed."
	if err := e.a.SetDescriptions(testCtx(t), zh, en); err != nil {
		t.Fatal(err)
	}
	calls := e.fake.Calls("setMyShortDescription")
	if last := calls[len(calls)-1].Params; last["language_code"] != "en" || last["short_description"] != "Changed." {
		t.Errorf("last short description written: %v, want en's", last)
	}
	if n := writes(e) - before; n != 1 {
		t.Errorf("changing one text made %d writes, want 1", n)
	}
}

// A refused setting is reported and the others are still made; when
// Telegram does not answer, start-up is not held up setting the rest.
func TestSetProfileFailures(t *testing.T) {
	zh, en := bot.Descriptions()
	t.Run("refused", func(t *testing.T) {
		e := newEnv(t, nil)
		e.fake.FailNext("setMyDescription", 1, 400, 0)
		err := e.a.SetDescriptions(testCtx(t), zh, en)
		if err == nil || !strings.Contains(err.Error(), `description for language ""`) {
			t.Errorf("err %v, want the refused default description reported", err)
		}
		if e.fake.Description("en") != en.Text || e.fake.ShortDescription("") != zh.Short {
			t.Error("the settings after the refused one were not made")
		}
	})
	t.Run("not answering", func(t *testing.T) {
		e := newEnv(t, nil)
		e.a.maxAttempts = 2
		e.fake.FailNext("getMyCommands", 100, 500, 0)
		e.fake.FailNext("setMyCommands", 100, 500, 0)
		err := e.a.SetCommands(testCtx(t), []Command{{Name: "start", Description: "开始"}}, []Command{{Name: "start", Description: "Start"}})
		if err == nil {
			t.Fatal("no error while Telegram answers 500")
		}
		if n := len(e.fake.Calls("")); n > 2 {
			t.Errorf("%d calls to an API that answers 500, want to stop after the first read's attempts", n)
		}
	})
}
