package wechat

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/shebao/shebao/bot"
)

// MaxBytes is the most UTF-8 bytes one text message carries. WeChat's own
// limit is documented in bytes and enforced unevenly; 2048 is the figure
// that always passes.
const MaxBytes = 2048

// rendered is a turn's replies as WeChat text messages: plain text (WeChat
// shows no markup), each within MaxBytes, and the numbered choices they
// offer. choices[n-1] is the callback data the user picks by sending n.
type rendered struct {
	parts   []string
	choices []string
}

// render turns a turn's replies into as few text messages as fit: every
// message spends the user's allowance (see window), so replies are packed
// together, split only at line ends, and a line is cut only when it is
// longer than a message. Callback buttons become numbered choices the
// user answers by number, numbered across the turn as the terminal does;
// URL buttons show their address; Code buttons need nothing (the user
// types the code). Citations show their label unless the text already
// does.
func render(replies []bot.Reply) rendered {
	lines, choices := renderLines(replies)
	return rendered{parts: pack(lines, MaxBytes), choices: choices}
}

// renderLines is the turn's text as lines, before packing, and its
// choices.
func renderLines(replies []bot.Reply) (lines, choices []string) {
	var r rendered
	for _, rep := range replies {
		body := bodyLines(rep)
		var opts []string
		for _, row := range rep.Buttons {
			for _, b := range row {
				switch b.Kind {
				case bot.Callback:
					r.choices = append(r.choices, b.Data)
					opts = append(opts, "["+strconv.Itoa(len(r.choices))+"] "+clean(b.Text))
				case bot.URL:
					if u := safeURL(b.Data); u != "" {
						opts = append(opts, clean(b.Text)+"："+u)
					}
				}
			}
		}
		if len(body) == 0 && len(opts) == 0 {
			continue
		}
		if len(lines) > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, body...)
		lines = append(lines, opts...)
	}
	if len(r.choices) > 0 {
		lines = append(lines, choiceHint(strings.Join(lines, "\n")))
	}
	return lines, r.choices
}

// choiceHint tells how to pick, in the reply's language.
func choiceHint(text string) string {
	if hasHan(text) {
		return "（回复数字即可选择）"
	}
	return "(Reply with a number to choose.)"
}

// bodyLines renders a reply's blocks as lines of plain text: items get a
// bullet, quoted statute text an indent, links their address after the
// text, and a citation block its label when no line shows it already.
func bodyLines(r bot.Reply) []string {
	var lines []string
	var labels []string
	for _, blk := range r.Body {
		if blk.Kind == bot.Cite {
			if blk.Cite != nil && blk.Cite.Label != "" {
				labels = append(labels, clean(blk.Cite.Label))
			}
			continue
		}
		var b strings.Builder
		switch blk.Kind {
		case bot.Item:
			b.WriteString("• ")
		case bot.Quote:
			b.WriteString("　")
		}
		for _, s := range blk.Spans {
			b.WriteString(clean(s.Text))
			if u := safeURL(s.Link); u != "" && u != s.Text {
				b.WriteString(" " + u)
			}
		}
		lines = append(lines, strings.TrimRight(b.String(), " "))
	}
	all := strings.Join(lines, "\n")
	for _, l := range labels {
		if !strings.Contains(all, l) {
			lines = append(lines, l)
		}
	}
	// No leading or trailing blank lines: they cost bytes and show as gaps.
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// clean makes text safe for a text message: valid UTF-8, one line, no
// control characters.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
}

// safeURL is u when it is an http(s) URL without spaces or control
// characters, else "".
func safeURL(u string) string {
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return ""
	}
	for _, r := range u {
		if r <= ' ' || r == 0x7f || !utf8.ValidRune(r) || r == utf8.RuneError {
			return ""
		}
	}
	return u
}

// pack joins lines into messages of at most max bytes, breaking between
// lines. A line longer than max is cut at rune boundaries. A message
// never starts or ends with a blank line.
func pack(lines []string, max int) []string {
	var parts []string
	var cur strings.Builder
	flush := func() {
		s := strings.Trim(cur.String(), "\n")
		if s != "" {
			parts = append(parts, s)
		}
		cur.Reset()
	}
	for _, l := range lines {
		for len(l) > max {
			flush()
			cut := cutAt(l, max)
			parts = append(parts, l[:cut])
			l = l[cut:]
		}
		need := len(l)
		if cur.Len() > 0 {
			need++
		}
		if cur.Len()+need > max {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(l)
	}
	flush()
	return parts
}

// cutAt is the largest rune boundary of s at or before max, preferring
// one just after a sentence end within the last quarter.
func cutAt(s string, max int) int {
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	for i := cut; i > max*3/4; {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		if strings.ContainsRune("。！？；.!?;", r) {
			return i
		}
		i -= size
	}
	if cut == 0 {
		_, size := utf8.DecodeRuneInString(s)
		cut = size
	}
	return cut
}

func hasHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}
