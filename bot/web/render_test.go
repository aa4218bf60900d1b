package web

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
)

func ids() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("r%d", n) }
}

func TestRenderReply(t *testing.T) {
	c := &bot.Citation{Label: "《社会保险法》第七十四条", Key: "sil.74", Text: "第一款\n第二款",
		English: "Para 1", EnglishLabel: "English (unofficial translation)"}
	r := bot.Reply{
		Body: []bot.Block{
			{Kind: bot.Para, Spans: []bot.Span{{Text: "依据：", Bold: true}, {Text: "见下"}}},
			{Kind: bot.Item, Spans: []bot.Span{{Text: "斜体", Italic: true}}},
			{Kind: bot.Quote, Spans: []bot.Span{{Text: "条文"}}},
			{Kind: bot.Para, Spans: []bot.Span{{Text: "官网", Link: "https://www.nhsa.gov.cn/"}, {Text: " x", Link: "javascript:alert(1)"}}},
			{Kind: bot.Para},
			{Kind: bot.Cite, Cite: c},
		},
		Buttons: [][]bot.Button{
			{{Text: "📖 第七十四条", Data: "art:sil.74"}, {Text: "📖 第八十六条", Data: "art:sil.86"}},
			{{Text: "相关问题", Data: "rel:e1"}},
			{{Text: "打开", Data: "https://example.org/a", Kind: bot.URL}, {Text: "坏", Data: "data:text/html,x", Kind: bot.URL}},
			{{Text: "输入验证码", Kind: bot.Code}},
		},
		Replaces: true,
	}
	got := renderReply(r, "r9", ids())
	want := []Frame{{
		Type: "reply", ID: "r1", Replaces: "r9",
		Blocks: []Block{
			{Kind: "p", Spans: []Span{{Text: "依据：", B: true}, {Text: "见下"}}},
			{Kind: "li", Spans: []Span{{Text: "斜体", I: true}}},
			{Kind: "quote", Spans: []Span{{Text: "条文"}}},
			{Kind: "p", Spans: []Span{{Text: "官网", Href: "https://www.nhsa.gov.cn/"}, {Text: " x"}}},
			{Kind: "p", Spans: []Span{}},
			{Kind: "cite", Cite: &Cite{Label: c.Label, Key: c.Key, Text: c.Text, English: c.English, EnglishLabel: c.EnglishLabel}},
		},
		Buttons: [][]Button{
			// The article shown in place loses its button; the other stays.
			{{Text: "📖 第八十六条", Kind: "callback", Data: "art:sil.86"}},
			{{Text: "相关问题", Kind: "callback", Data: "rel:e1"}},
			{{Text: "打开", Kind: "url", Data: "https://example.org/a"}},
			{{Text: "输入验证码", Kind: "code"}},
		},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("frames (-want +got):\n%s", d)
	}
	wire := string(encode(got[0]))
	for _, s := range []string{`"kind":"cite","cite":{"label":"《社会保险法》第七十四条"`, `"b":true`, `"replaces":"r9"`} {
		if !strings.Contains(wire, s) {
			t.Errorf("frame %s lacks %s", wire, s)
		}
	}
	if strings.Contains(wire, "javascript") || strings.Contains(wire, "data:") {
		t.Errorf("frame keeps a non-http link: %s", wire)
	}
}

func TestRenderReplacesOnlyWhenAsked(t *testing.T) {
	got := renderReply(bot.TextReply("好的"), "r3", ids())
	if len(got) != 1 || got[0].Replaces != "" {
		t.Errorf("a reply that does not replace got %+v", got)
	}
}

func TestRenderNothingToShow(t *testing.T) {
	if got := renderReply(bot.Reply{RemoveKeyboard: true}, "", ids()); len(got) != 0 {
		t.Errorf("a reply with no body or buttons rendered %d frames", len(got))
	}
}

func TestRenderSplitsLongReplies(t *testing.T) {
	var r bot.Reply
	article := strings.Repeat("社会保险经办机构应当及时为用人单位建立档案。\n", 300) // ~20 KB
	for i := range 4 {
		r.Body = append(r.Body, bot.Block{Kind: bot.Para, Spans: []bot.Span{{Text: fmt.Sprintf("第%d段", i)}}},
			bot.Block{Kind: bot.Cite, Cite: &bot.Citation{Label: fmt.Sprintf("第%d条", i), Key: fmt.Sprint(i), Text: article}})
	}
	r.Buttons = [][]bot.Button{{{Text: "相关问题", Data: "rel:x"}}}
	r.Replaces = true
	frames := renderReply(r, "r0", ids())
	if len(frames) < 3 {
		t.Fatalf("%d frames for four 20 KB articles; want them split", len(frames))
	}
	for i, f := range frames {
		if n := len(encode(f)); n > maxFrame {
			t.Errorf("frame %d is %d bytes, over %d", i, n, maxFrame)
		}
		if (f.Replaces != "") != (i == 0) {
			t.Errorf("frame %d replaces %q; only the first may", i, f.Replaces)
		}
		if (len(f.Buttons) > 0) != (i == len(frames)-1) {
			t.Errorf("frame %d has %d button rows; only the last should", i, len(f.Buttons))
		}
	}
	if got, want := framesText(frames), replyText(r); got != want {
		t.Errorf("text changed in splitting: %d bytes, want %d", len(got), len(want))
	}
}

func TestRenderCutsAHugeBlock(t *testing.T) {
	long := strings.Repeat("长", 40_000) + strings.Repeat("\x01", 9000)
	r := bot.Reply{Body: []bot.Block{
		{Kind: bot.Para, Spans: []bot.Span{{Text: long, Bold: true}}},
		{Kind: bot.Cite, Cite: &bot.Citation{Label: "第一条", Text: long, English: long, EnglishLabel: "English"}},
	}}
	frames := renderReply(r, "", ids())
	for i, f := range frames {
		if n := len(encode(f)); n > maxFrame {
			t.Errorf("frame %d is %d bytes, over %d", i, n, maxFrame)
		}
	}
	if got, want := framesText(frames), replyText(r); got != want {
		t.Errorf("text changed in cutting: %d bytes, want %d", len(got), len(want))
	}
}

func TestSafeLink(t *testing.T) {
	for link, want := range map[string]bool{
		"https://www.gov.cn/":        true,
		"http://12393.example/a?b=c": true,
		"HTTPS://example.org":        true,
		"javascript:alert(1)":        false,
		"JavaScript:alert(1)":        false,
		"data:text/html,<b>x</b>":    false,
		"//evil.example/":            false,
		"/relative":                  false,
		"https://":                   false,
		"vbscript:x":                 false,
		"https://a b.example/":       false,
		"":                           false,
	} {
		if got := safeLink(link) != ""; got != want {
			t.Errorf("safeLink(%q) kept=%v, want %v", link, got, want)
		}
	}
}

// replyText is every text of a reply's body, in order, as the page shows
// it: spans, then each citation's text and English. A block or citation
// cut into pieces keeps this order.
func replyText(r bot.Reply) string {
	var b strings.Builder
	for _, blk := range r.Body {
		if blk.Kind == bot.Cite {
			if blk.Cite != nil {
				b.WriteString(clean(blk.Cite.Text) + clean(blk.Cite.English))
			}
			continue
		}
		for _, s := range blk.Spans {
			b.WriteString(clean(s.Text))
		}
	}
	return b.String()
}

func framesText(frames []Frame) string {
	var b strings.Builder
	for _, f := range frames {
		for _, blk := range f.Blocks {
			if blk.Cite != nil {
				b.WriteString(blk.Cite.Text + blk.Cite.English)
			}
			for _, s := range blk.Spans {
				b.WriteString(s.Text)
			}
		}
	}
	return b.String()
}

// FuzzRender: whatever the engine hands over, every frame is valid JSON of
// the protocol within maxFrame, no text is lost or changed (beyond making
// it valid UTF-8), and no link or URL button is anything but http(s).
func FuzzRender(f *testing.F) {
	f.Add([]byte("p\x00hello\x00https://example.org\x00c\x00label\x00text\x00b\x00btn\x00data"), 3)
	f.Add([]byte("q\x00<script>alert(1)</script>\x00javascript:alert(1)\x00u\x00x\x00data:text/html,x"), 1)
	f.Add([]byte(strings.Repeat("l\x00"+strings.Repeat("很长的文字", 500)+"\x00", 20)), 2)
	f.Add([]byte("c\x00\xff\xfe\x00\u2028\u2029\x01\x02\x00b\x00\x00\x00k\x00code"), 0)
	f.Fuzz(func(t *testing.T, data []byte, mult int) {
		r := fuzzReply(data, mult)
		frames := renderReply(r, "r0", ids())
		for i, fr := range frames {
			wire := encode(fr)
			if len(wire) > maxFrame {
				t.Fatalf("frame %d is %d bytes", i, len(wire))
			}
			if !json.Valid(wire) || !utf8.Valid(wire) {
				t.Fatalf("frame %d is not valid JSON: %q", i, wire)
			}
			var back Frame
			if err := json.Unmarshal(wire, &back); err != nil {
				t.Fatalf("frame %d does not decode: %v", i, err)
			}
			for _, b := range back.Blocks {
				for _, s := range b.Spans {
					checkHTTP(t, s.Href)
				}
			}
			for _, row := range back.Buttons {
				for _, b := range row {
					if b.Kind == "url" {
						checkHTTP(t, b.Data)
						if b.Data == "" {
							t.Fatalf("url button without a URL")
						}
					}
				}
			}
		}
		if got, want := framesText(frames), replyText(r); got != want {
			t.Fatalf("text changed:\n got %q\nwant %q", got, want)
		}
	})
}

func checkHTTP(t *testing.T, link string) {
	t.Helper()
	if link == "" {
		return
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("link %q survived", link)
	}
}

// fuzzReply reads a reply from NUL-separated fields: a kind letter, then
// its fields. mult repeats the body to make long replies.
func fuzzReply(data []byte, mult int) bot.Reply {
	fields := strings.Split(string(data), "\x00")
	next := func() string {
		if len(fields) == 0 {
			return ""
		}
		s := fields[0]
		fields = fields[1:]
		return s
	}
	var r bot.Reply
	for len(fields) > 0 {
		switch k := next(); k {
		case "p", "l", "q":
			kind := map[string]bot.BlockKind{"p": bot.Para, "l": bot.Item, "q": bot.Quote}[k]
			text, link := next(), next()
			r.Body = append(r.Body, bot.Block{Kind: kind, Spans: []bot.Span{
				{Text: text, Bold: len(text)%2 == 0, Italic: len(text)%3 == 0, Link: link}, {Text: link}}})
		case "c":
			r.Body = append(r.Body, bot.Block{Kind: bot.Cite, Cite: &bot.Citation{
				Label: next(), Key: next(), Text: next(), English: next(), EnglishLabel: "English"}})
		case "b":
			r.Buttons = append(r.Buttons, []bot.Button{{Text: next(), Data: next()}})
		case "u":
			r.Buttons = append(r.Buttons, []bot.Button{{Text: next(), Data: next(), Kind: bot.URL}})
		case "k":
			r.Buttons = append(r.Buttons, []bot.Button{{Text: next(), Kind: bot.Code}})
		}
	}
	if mult < 0 {
		mult = -mult
	}
	body := r.Body
	for range mult % 8 {
		r.Body = append(r.Body, body...)
	}
	r.Replaces = len(data)%2 == 1
	return r
}
