package wechat

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
)

func para(spans ...bot.Span) bot.Block { return bot.Block{Kind: bot.Para, Spans: spans} }

func TestRender(t *testing.T) {
	replies := []bot.Reply{
		{Body: []bot.Block{
			para(bot.Span{Text: "医保断缴后一般可以补缴。", Bold: true}),
			{Kind: bot.Item, Spans: []bot.Span{{Text: "带身份证"}}},
			{Kind: bot.Quote, Spans: []bot.Span{{Text: "个人可以免费查询。"}}},
			para(bot.Span{Text: "依据：《社会保险法》第七十四条"}),
			{Kind: bot.Cite, Cite: &bot.Citation{Label: "《社会保险法》第七十四条", Key: "sil.74"}},
			{Kind: bot.Cite, Cite: &bot.Citation{Label: "《社会保险法》第四条", Key: "sil.4"}},
			para(bot.Span{Text: "国家医保服务平台", Link: "https://fuwu.nhsa.gov.cn/"}, bot.Span{Text: "。"}),
		}, Buttons: [][]bot.Button{
			{{Text: "📖 社保法第七十四条", Data: "art:sil.74"}, {Text: "官网", Data: "https://example.gov.cn/a", Kind: bot.URL}},
			{{Text: "输入验证码", Kind: bot.Code}, {Text: "坏链接", Data: "javascript:alert(1)", Kind: bot.URL}},
		}},
		{Body: []bot.Block{para(bot.Span{Text: "还有问题吗？"})}, Buttons: [][]bot.Button{{{Text: "相关问题", Data: "rel:x"}}}},
	}
	got := render(replies)
	want := rendered{
		parts: []string{strings.Join([]string{
			"医保断缴后一般可以补缴。",
			"• 带身份证",
			"　个人可以免费查询。",
			"依据：《社会保险法》第七十四条",
			"国家医保服务平台 https://fuwu.nhsa.gov.cn/。",
			"《社会保险法》第四条",
			"[1] 📖 社保法第七十四条",
			"官网：https://example.gov.cn/a",
			"",
			"还有问题吗？",
			"[2] 相关问题",
			"（回复数字即可选择）",
		}, "\n")},
		choices: []string{"art:sil.74", "rel:x"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(rendered{})); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}
	en := render([]bot.Reply{{Body: []bot.Block{para(bot.Span{Text: "Pick one"})}, Buttons: [][]bot.Button{{{Text: "A", Data: "a:"}}}}})
	if !strings.HasSuffix(en.parts[0], "(Reply with a number to choose.)") {
		t.Errorf("English reply ends %q", en.parts[0])
	}
}

// A long answer is split by bytes at line ends, each part within the
// limit, in order, nothing lost.
func TestRenderSplitsByBytes(t *testing.T) {
	var body []bot.Block
	var want []string
	for i := range 60 {
		l := strings.Repeat("医疗保险缴费记录查询", 6) + string(rune('A'+i%26))
		body = append(body, para(bot.Span{Text: l}))
		want = append(want, l)
	}
	got := render([]bot.Reply{{Body: body}})
	if len(got.parts) < 2 {
		t.Fatalf("%d parts, want a split", len(got.parts))
	}
	for i, p := range got.parts {
		if len(p) > MaxBytes {
			t.Errorf("part %d is %d bytes", i, len(p))
		}
		if i < len(got.parts)-1 && len(p)+1+len(want[0]) <= MaxBytes {
			t.Errorf("part %d (%d bytes) could have held another line", i, len(p))
		}
	}
	if strings.Join(got.parts, "\n") != strings.Join(want, "\n") {
		t.Error("the parts joined are not the text")
	}
	// One line longer than a message is cut at a rune boundary.
	long := strings.Repeat("断缴", 1000)
	got = render([]bot.Reply{{Body: []bot.Block{para(bot.Span{Text: long})}}})
	if strings.Join(got.parts, "") != long {
		t.Error("a cut line lost text")
	}
	for _, p := range got.parts {
		if len(p) > MaxBytes || !utf8.ValidString(p) {
			t.Errorf("part of %d bytes, valid %v", len(p), utf8.ValidString(p))
		}
	}
}

func squeeze(s string) string { return strings.NewReplacer("\n", "", " ", "").Replace(s) }

func FuzzRender(f *testing.F) {
	f.Add("医保断缴了还能补吗？\n可以。", "art:sil.74", 3, uint8(0))
	f.Add(strings.Repeat("长", 700)+"\xff\xfe\x00", "https://a.b/c", 40, uint8(5))
	f.Add("a\r\n\tb", "", 1, uint8(255))
	f.Fuzz(func(t *testing.T, text, data string, n int, kinds uint8) {
		if len(text) > 8192 || len(data) > 512 {
			t.Skip("longer than anything the engine writes")
		}
		n = (n%50+50)%50 + 1
		var replies []bot.Reply
		for i := range n {
			var d bot.Reply
			for j, l := range strings.Split(text, "\n") {
				kind := bot.BlockKind((int(kinds) + i + j) % 4)
				blk := bot.Block{Kind: kind, Spans: []bot.Span{{Text: l, Link: data}}}
				if kind == bot.Cite {
					blk = bot.Block{Kind: bot.Cite, Cite: &bot.Citation{Label: l}}
				}
				d.Body = append(d.Body, blk)
			}
			d.Buttons = [][]bot.Button{{{Text: text, Data: data, Kind: bot.ButtonKind((int(kinds) + i) % 3)}}}
			replies = append(replies, d)
		}
		lines, choices := renderLines(replies)
		got := render(replies)
		for i, p := range got.parts {
			if !utf8.ValidString(p) {
				t.Fatalf("part %d is not valid UTF-8", i)
			}
			if len(p) > MaxBytes || p == "" {
				t.Fatalf("part %d is %d bytes", i, len(p))
			}
			if strings.ContainsAny(p, "\r\x00") {
				t.Fatalf("part %d holds a control character", i)
			}
		}
		if squeeze(strings.Join(got.parts, "")) != squeeze(strings.Join(lines, "")) {
			t.Fatal("text lost or changed between lines and parts")
		}
		if len(got.choices) != len(choices) {
			t.Fatal("choices differ")
		}
		out := squeeze(strings.Join(got.parts, ""))
		for _, l := range strings.Split(text, "\n") {
			if w := squeeze(clean(l)); w != "" && !strings.Contains(out, w) {
				t.Fatalf("text %q lost", w)
			}
		}
	})
}
