package telegram

import (
	"strings"

	"github.com/shebao/shebao/bot"
)

// renderHTML renders a reply's body in Telegram's HTML subset: <b>, <i>
// and <a href>, every text escaped, one line per block, and no tag across
// a line, so that splitHTML may cut at any line. Citation blocks are left
// out: Telegram shows an answer's citations as its "依据" line and as
// buttons that open each article.
func renderHTML(r bot.Reply) string {
	var b strings.Builder
	first := true
	for _, blk := range r.Body {
		if blk.Kind == bot.Cite {
			continue
		}
		if !first {
			b.WriteByte('\n')
		}
		first = false
		if blk.Kind == bot.Item {
			b.WriteString("• ")
		}
		for _, s := range blk.Spans {
			writeSpan(&b, s)
		}
	}
	return b.String()
}

// writeSpan writes one span; a span's text never holds a newline in a
// reply the engine built, but one that does keeps each line's tags whole.
func writeSpan(b *strings.Builder, s bot.Span) {
	for i, line := range strings.Split(s.Text, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		if line == "" {
			continue
		}
		open, close := "", ""
		if s.Bold {
			open, close = open+"<b>", "</b>"+close
		}
		if s.Italic {
			open, close = open+"<i>", "</i>"+close
		}
		if u := safeURL(s.Link); u != "" {
			open, close = open+`<a href="`+attrEscaper.Replace(u)+`">`, "</a>"+close
		}
		b.WriteString(open + textEscaper.Replace(line) + close)
	}
}

// safeURL is u if it is a link Telegram may show (http, https, tg), else "".
func safeURL(u string) string {
	l := strings.ToLower(u)
	if strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "tg://") {
		return u
	}
	return ""
}

// Telegram's HTML knows &lt;, &gt;, &amp; and &quot; by name; these are
// all a reply needs.
var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
)
