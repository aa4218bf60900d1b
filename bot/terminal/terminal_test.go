package terminal

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
)

// recorder answers every message with the same reply and keeps what it got.
type recorder struct {
	got   []bot.Message
	reply bot.Reply
}

func (r *recorder) Handle(_ context.Context, m bot.Message) ([]bot.Reply, error) {
	r.got = append(r.got, m)
	return []bot.Reply{r.reply}, nil
}

func run(t *testing.T, h bot.Handler, input string) string {
	t.Helper()
	var out strings.Builder
	now := func() time.Time { return time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC) }
	if err := Run(context.Background(), Options{Handler: h, Lang: "zh", Now: now}, strings.NewReader(input), &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return out.String()
}

func TestButtonsArePressedByNumber(t *testing.T) {
	h := &recorder{reply: bot.Reply{
		Body: []bot.Block{{Spans: []bot.Span{{Text: "请选择", Bold: true}}}},
		Buttons: [][]bot.Button{
			{{Text: "中文", Data: "lang:zh"}, {Text: "English", Data: "lang:en"}},
			{{Text: "官网", Data: "https://www.nhsa.gov.cn/", Kind: bot.URL}},
		},
	}}
	out := run(t, h, "/start\n2\n3\n9\n")
	if !strings.Contains(out, "[1] 中文   [2] English") || !strings.Contains(out, "[3] 官网") {
		t.Fatalf("buttons are not numbered on screen:\n%s", out)
	}
	if strings.Contains(out, "<b>") || strings.Contains(out, "**") {
		t.Fatalf("markup reached the terminal:\n%s", out)
	}
	// /start, then "2" presses English; "3" is a link (printed, nothing
	// sent); "9" is no button and goes as text.
	if len(h.got) != 3 {
		t.Fatalf("handler got %d messages, want 3: %+v", len(h.got), h.got)
	}
	if h.got[0].Text != "/start" || h.got[1].Callback != "lang:en" || h.got[1].Text != "" || h.got[2].Text != "9" {
		t.Fatalf("messages = %+v", h.got)
	}
	if !strings.Contains(out, "→ https://www.nhsa.gov.cn/") {
		t.Fatalf("a link button does not show its address:\n%s", out)
	}
	for _, m := range h.got {
		if m.Chat != User || m.User != User || m.LanguageCode != "zh" || m.Time.IsZero() {
			t.Fatalf("message identity or time missing: %+v", m)
		}
	}
}

func TestContactStandsInForTheShareButton(t *testing.T) {
	h := &recorder{reply: bot.Reply{AskContact: "分享手机号"}}
	out := run(t, h, "/contact\n/contact 13900000000\n")
	if !strings.Contains(out, "用法 / usage: /contact") {
		t.Fatalf("a bare /contact does not explain itself:\n%s", out)
	}
	if len(h.got) != 1 || h.got[0].Contact == nil || h.got[0].Contact.Phone != "13900000000" || h.got[0].Contact.User != User {
		t.Fatalf("messages = %+v", h.got)
	}
	if !strings.Contains(out, "[分享手机号] → /contact") {
		t.Fatalf("the contact request is not shown:\n%s", out)
	}
}

func TestBlankLinesAndEndOfInput(t *testing.T) {
	h := &recorder{reply: bot.Reply{Body: []bot.Block{{Spans: []bot.Span{{Text: "好的"}}}}}}
	out := run(t, h, "\n   \n你好")
	if len(h.got) != 1 || h.got[0].Text != "你好" {
		t.Fatalf("blank lines reached the handler or the last line was lost: %+v", h.got)
	}
	if !strings.Contains(out, "好的") {
		t.Fatalf("reply missing:\n%s", out)
	}
}

func TestCancelEndsTheConversationAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out strings.Builder
	// An input that never ends: Run must return on ctx, not on input.
	r, w := io.Pipe()
	defer w.Close()
	if err := Run(ctx, Options{Handler: &recorder{}}, r, &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
