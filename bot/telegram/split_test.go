package telegram

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

func TestSplitHTML(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
	}{
		{"short", "<b>你好</b> &amp; hi", 4096, []string{"<b>你好</b> &amp; hi"}},
		{"blank", " \n ", 4096, nil},
		{"at lines", "aaaa\nbbbb\ncccc", 9, []string{"aaaa\nbbbb", "cccc"}},
		{"long line keeps tags balanced", "<b>abcdefgh</b>", 10, []string{"<b>abc</b>", "<b>def</b>", "<b>gh</b>"}},
		{"never inside an entity", "a&amp;b&lt;c", 6, []string{"a&amp;", "b&lt;c"}},
		{"nested tags reopened with attributes", `<a href="u"><i>abcd</i></a>`, 25, []string{`<a href="u"><i>ab</i></a>`, `<a href="u"><i>cd</i></a>`}},
		{"astral characters count twice", "😀😀😀", 4, []string{"😀😀", "😀"}},
		{"line piece joins next line", "abcdefg\nh", 5, []string{"abcde", "fg\nh"}},
		{"tag too large to reopen drops formatting", `<a href="https://example.org/very/long">abcdef</a>`, 12, []string{"abcdef"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitHTML(tt.in, tt.limit)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("splitHTML(%q, %d) (-want +got):\n%s", tt.in, tt.limit, diff)
			}
		})
	}
}

// buildHTML turns fuzz bytes into a valid reply: escaped text and simple
// tags that never span lines, as the engine produces.
func buildHTML(data []byte) string {
	texts := []string{"a", "社", "保", " ", "😀", "&lt;", "&gt;", "&amp;", "&quot;", "x1", "医保"}
	tags := []string{"b", "i", "code", "a", "tg-spoiler", "pre"}
	var b strings.Builder
	var stack []string
	closeAll := func() {
		for len(stack) > 0 {
			b.WriteString("</" + stack[len(stack)-1] + ">")
			stack = stack[:len(stack)-1]
		}
	}
	for _, c := range data {
		switch {
		case c < 150:
			for range 1 + int(c)%5 {
				b.WriteString(texts[int(c)%len(texts)])
			}
		case c < 200:
			tag := tags[int(c)%len(tags)]
			if tag == "a" {
				fmt.Fprintf(&b, `<a href="https://si.example.cn/p?q=%d&amp;r=1">`, c)
			} else {
				b.WriteString("<" + tag + ">")
			}
			stack = append(stack, tag)
		case c < 235:
			if len(stack) > 0 {
				b.WriteString("</" + stack[len(stack)-1] + ">")
				stack = stack[:len(stack)-1]
			}
		default:
			closeAll()
			b.WriteString("\n")
		}
	}
	closeAll()
	return b.String()
}

func dropSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte("hello world"), uint8(0))
	f.Add([]byte{150, 1, 2, 3, 160, 4, 5, 200, 6, 240, 7, 8, 9}, uint8(3))
	f.Add([]byte{153, 153, 153, 1, 1, 1, 1, 1, 1, 1, 1, 201, 201, 201}, uint8(10))
	f.Fuzz(func(t *testing.T, data []byte, l uint8) {
		in := buildHTML(data)
		limit := 8 + int(l)
		want, err := telegramtest.CheckHTML(in)
		if err != nil {
			t.Fatalf("generator made invalid HTML %q: %v", in, err)
		}
		var got strings.Builder
		for i, p := range splitHTML(in, limit) {
			if n := utf8.RuneCountInString(p); n > limit || textLen(p) > limit {
				t.Errorf("part %d is %d runes, %d units, limit %d: %q", i, n, textLen(p), limit, p)
			}
			content, err := telegramtest.CheckHTML(p)
			if err != nil {
				t.Errorf("part %d %q: %v (input %q)", i, p, err, in)
			}
			if strings.TrimSpace(content) == "" {
				t.Errorf("part %d %q is blank", i, p)
			}
			got.WriteString(content)
		}
		// Splitting drops newlines at cuts and blank parts; all else stays.
		if dropSpace(got.String()) != dropSpace(want) {
			t.Errorf("content changed:\n in %q\nout %q", want, got.String())
		}
	})
}

func TestSplitMaxLength(t *testing.T) {
	line := strings.Repeat("<b>社保</b> &amp; ", 2000)
	parts := splitHTML(line, maxMessageLen)
	if len(parts) < 2 {
		t.Fatalf("%d parts", len(parts))
	}
	for i, p := range parts {
		if n := utf8.RuneCountInString(p); n > maxMessageLen {
			t.Errorf("part %d: %d runes", i, n)
		}
		if _, err := telegramtest.CheckHTML(p); err != nil {
			t.Errorf("part %d: %v", i, err)
		}
	}
}
