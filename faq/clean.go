package faq

import (
	"html"
	"regexp"
	"strings"
	"sync"
	"unicode"

	"github.com/longbridgeapp/opencc"
)

// This file turns a message as people type it into the text retrieval
// reads: markup stripped, traditional characters and Hong Kong variants
// converted to simplified, Cantonese function words read as Mandarin, and
// symbols and emoji dropped. It keeps masked ID and phone numbers
// (110105********0014, 139****0011) whole: their stars are not Markdown.

var (
	htmlTag     = regexp.MustCompile(`(?s)<[a-zA-Z/!][^<>]{0,200}>`)
	mdLink      = regexp.MustCompile(`\[([^\[\]]{1,200})\]\([^()\s]{1,500}\)`)
	maskedIDRun = regexp.MustCompile(`[0-9]{3,6}\*{4,8}[0-9]{3,4}[0-9Xx]?`)
	// mdMarks are Markdown emphasis, code, heading, quote and bullet
	// marks; they are dropped wherever they stand.
	mdMarks = strings.NewReplacer("**", " ", "__", " ", "~~", " ", "`", " ", "*", " ", "#", " ", "> ", " ", "- ", " ", "• ", " ", "·", " ")
)

// cantonese maps Cantonese words onto the Mandarin ones the entries use.
// It runs after the conversion to simplified characters, so its keys are
// simplified. Only unambiguous forms are here: 点 alone is also "o'clock"
// and 系 alone is also "department", so only their phrases are mapped.
var cantonese = map[string][]string{
	"了":    {"咗"},
	"不":    {"唔"},
	"没有":   {"冇"},
	"是不是":  {"系唔系", "系咪", "系米"},
	"什么":   {"乜嘢", "乜野", "咩嘢", "乜", "咩"},
	"怎么":   {"点样", "点解", "点办"},
	"怎么办":  {"点算好", "点算"},
	"还":    {"仲"},
	"的":    {"嘅"},
	"他":    {"佢"},
	"他们":   {"佢哋"},
	"我们":   {"我哋"},
	"你们":   {"你哋"},
	"哪里":   {"边度", "边处"},
	"谁":    {"边个"},
	"多少":   {"几多"},
	"给":    {"畀", "俾"},
	"找":    {"揾", "搵"},
	"看":    {"睇"},
	"现在":   {"而家", "依家"},
	"拿":    {"攞"},
	"东西":   {"嘢"},
	"这么":   {"咁"},
	"上班":   {"返工"},
	"工作":   {"份工"},
	"老板":   {"老细", "老细佬"},
	"缴社保":  {"买社保"},
	"缴医保":  {"买医保"},
	"可不可以": {"可唔可以", "得唔得"},
	"":     {"㗎", "喎", "啰", "嚟", "咯", "囉", "啩", "嘞", "喇", "咧"},
}

var cantoneseReplacer = newReplacer(cantonese, false)

// t2s converts traditional characters and Hong Kong variants to
// simplified. The converter is shared: building it reads ~1 MB of
// dictionaries, and converting is read-only.
var t2s = sync.OnceValues(func() (*opencc.OpenCC, error) { return opencc.New("hk2s") })

// simplified caches, per Han rune, its simplified form ("" when it is
// simplified already). Converting rune by rune ignores the phrase table
// (乾隆 stays 乾), which is fine for retrieval and costs a map look-up a
// character instead of tens of microseconds a question.
var simplified sync.Map // rune → string

func toSimplified(s string, cc *opencc.OpenCC) string {
	var b strings.Builder
	changed := false
	for i, r := range s {
		if r < 0x3400 || !unicode.Is(unicode.Han, r) {
			if changed {
				b.WriteRune(r)
			}
			continue
		}
		v, ok := simplified.Load(r)
		if !ok {
			out, err := cc.Convert(string(r))
			if err != nil || out == string(r) {
				out = ""
			}
			v, _ = simplified.LoadOrStore(r, out)
		}
		to := v.(string)
		switch {
		case to != "" && !changed:
			b.Grow(len(s))
			b.WriteString(s[:i])
			b.WriteString(to)
			changed = true
		case to != "":
			b.WriteString(to)
		case changed:
			b.WriteRune(r)
		}
	}
	if !changed {
		return s
	}
	return b.String()
}

// clean is the first step of reading a question: see the file comment.
func clean(s string) string {
	if strings.ContainsAny(s, "<&[") {
		s = mdLink.ReplaceAllString(s, "$1")
		s = htmlTag.ReplaceAllString(s, " ")
		s = html.UnescapeString(s)
	}
	if strings.ContainsAny(s, "*_~`#>-•·") {
		// Masked numbers keep their stars: swap them out and back.
		masked := maskedIDRun.FindAllString(s, -1)
		if len(masked) > 0 {
			s = maskedIDRun.ReplaceAllString(s, "\x00")
		}
		s = mdMarks.Replace(s)
		for _, m := range masked {
			s = strings.Replace(s, "\x00", m, 1)
		}
	}
	if cc, err := t2s(); err == nil {
		s = toSimplified(s, cc)
	}
	s = cantoneseReplacer.Replace(s)
	// Emoji and other symbols carry no topic; they become spaces so that
	// they still separate words.
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.So, r) || unicode.Is(unicode.Sk, r) || (r >= 0xfe00 && r <= 0xfe0f) {
			return ' '
		}
		return r
	}, s)
}
