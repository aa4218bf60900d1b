package telegram

import (
	"strings"
	"testing"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// replyFrom turns fuzz bytes into a reply with any text in any style,
// links good and bad, items, quotes and citations.
func replyFrom(data []byte) bot.Reply {
	texts := []string{"社保", "<b>", "&amp;", "a&b", `"q"`, "</i>", "😀", " ", "\n", "x<y>z", "'"}
	links := []string{"", "https://si.example.cn/a?b=1&c=\"2\"", "javascript:alert(1)", "tg://resolve?domain=x", "HTTP://X.CN"}
	var r bot.Reply
	var blk bot.Block
	for _, c := range data {
		switch {
		case c < 200:
			blk.Spans = append(blk.Spans, bot.Span{Text: texts[int(c)%len(texts)], Bold: c&1 == 1, Italic: c&2 == 2, Link: links[int(c/4)%len(links)]})
		case c < 230:
			r.Body = append(r.Body, blk)
			blk = bot.Block{Kind: bot.BlockKind(c % 3)}
		default:
			r.Body = append(r.Body, bot.Block{Kind: bot.Cite, Cite: &bot.Citation{Label: "《社会保险法》第七十四条", Key: "sil.74", Text: "<全文>"}})
		}
	}
	r.Body = append(r.Body, blk)
	return r
}

// FuzzRenderHTML: whatever a reply holds, Telegram gets valid HTML of its
// subset, the text the user should see, and no link but http(s) and tg.
func FuzzRenderHTML(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 210, 5, 6, 240, 7})
	f.Add([]byte{9, 10, 11, 201, 12, 13})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := replyFrom(data)
		out := renderHTML(r)
		content, err := telegramtest.CheckHTML(out)
		if err != nil {
			t.Fatalf("invalid HTML %q: %v", out, err)
		}
		var want strings.Builder
		first := true
		for _, blk := range r.Body {
			if blk.Kind == bot.Cite {
				continue
			}
			if !first {
				want.WriteByte('\n')
			}
			first = false
			if blk.Kind == bot.Item {
				want.WriteString("• ")
			}
			for _, s := range blk.Spans {
				want.WriteString(s.Text)
			}
		}
		if content != want.String() {
			t.Errorf("shows %q, want %q", content, want.String())
		}
		if strings.Contains(strings.ToLower(out), "javascript:") {
			t.Errorf("unsafe link kept: %q", out)
		}
		for _, p := range splitHTML(out, maxMessageLen) {
			if _, err := telegramtest.CheckHTML(p); err != nil {
				t.Errorf("part %q: %v", p, err)
			}
		}
	})
}

func TestRenderHTML(t *testing.T) {
	r := bot.Reply{Body: []bot.Block{
		{Spans: []bot.Span{{Text: "依据：", Bold: true}, {Text: "《社会保险法》第七十四条 & <更多>"}}},
		{Kind: bot.Item, Spans: []bot.Span{{Text: "国家医保服务平台", Link: "https://fuwu.nhsa.gov.cn/"}}},
		{Kind: bot.Cite, Cite: &bot.Citation{Label: "《社会保险法》第七十四条", Key: "sil.74"}},
		{Kind: bot.Quote, Spans: []bot.Span{{Text: "个人依法享受社会保险待遇", Italic: true}}},
	}}
	want := "<b>依据：</b>《社会保险法》第七十四条 &amp; &lt;更多&gt;\n" +
		`• <a href="https://fuwu.nhsa.gov.cn/">国家医保服务平台</a>` + "\n" +
		"<i>个人依法享受社会保险待遇</i>"
	if got := renderHTML(r); got != want {
		t.Errorf("renderHTML:\n got %q\nwant %q", got, want)
	}
}
