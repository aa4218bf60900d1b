package bot_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/shebao/shebao/bot"
)

// The descriptions fit Telegram's limits (512 and 120 characters, counted
// in UTF-16 units), name only commands that exist, and name no law in
// free text (citations come from the registry, with their dates).
func TestDescriptions(t *testing.T) {
	zh, en := bot.Descriptions()
	commands := map[string]bool{}
	for _, c := range bot.Commands() {
		commands[c.Name] = true
	}
	command := regexp.MustCompile(`/([a-z_]+)`)
	for lang, d := range map[string]bot.Description{"zh": zh, "en": en} {
		if n := len(utf16.Encode([]rune(d.Text))); n == 0 || n > 512 {
			t.Errorf("%s description has %d characters, want 1 to 512", lang, n)
		}
		if n := len(utf16.Encode([]rune(d.Short))); n == 0 || n > 120 {
			t.Errorf("%s short description has %d characters, want 1 to 120", lang, n)
		}
		for _, text := range []string{d.Text, d.Short} {
			for _, m := range command.FindAllStringSubmatch(text, -1) {
				if !commands[m[1]] {
					t.Errorf("%s description names /%s, which is no command", lang, m[1])
				}
			}
			if strings.ContainsAny(text, "《》") {
				t.Errorf("%s description names a law in free text: %q", lang, text)
			}
		}
	}
	if zh == en {
		t.Error("zh and en descriptions are the same")
	}
}
