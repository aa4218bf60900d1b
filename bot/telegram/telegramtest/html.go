package telegramtest

import (
	"fmt"
	"html"
	"regexp"
	"strings"
)

var numericEntity = regexp.MustCompile(`^&#([0-9]{1,7}|[xX][0-9a-fA-F]{1,6});`)

// telegramTags is the HTML subset Telegram accepts (span and tg-emoji left
// out: the engine does not produce them).
var telegramTags = map[string]bool{
	"b": true, "strong": true, "i": true, "em": true, "u": true, "ins": true,
	"s": true, "strike": true, "del": true, "code": true, "pre": true, "a": true,
	"tg-spoiler": true, "blockquote": true,
}

// CheckHTML parses s as Telegram's HTML subset and returns its text
// content, or an error for unknown tags and entities, unbalanced tags, or a
// bare '<' or '&'.
func CheckHTML(s string) (string, error) {
	var stack []string
	var text strings.Builder
	for i := 0; i < len(s); {
		switch s[i] {
		case '<':
			end := strings.IndexByte(s[i:], '>')
			if end < 0 {
				return "", fmt.Errorf("unterminated tag at %d", i)
			}
			tag := s[i : i+end+1]
			name := tagName(tag)
			if !telegramTags[name] {
				return "", fmt.Errorf("tag %q not in Telegram's subset", tag)
			}
			if strings.HasPrefix(tag, "</") {
				if len(stack) == 0 || stack[len(stack)-1] != name {
					return "", fmt.Errorf("closing %q does not match open %v", tag, stack)
				}
				stack = stack[:len(stack)-1]
			} else {
				if name == "a" && !strings.HasPrefix(tag, `<a href="`) {
					return "", fmt.Errorf("link without href: %q", tag)
				}
				stack = append(stack, name)
			}
			i += end + 1
		case '&':
			matched := false
			for _, ent := range []string{"&lt;", "&gt;", "&amp;", "&quot;"} {
				if strings.HasPrefix(s[i:], ent) {
					text.WriteString(html.UnescapeString(ent))
					i += len(ent)
					matched = true
					break
				}
			}
			if m := numericEntity.FindString(s[i:]); !matched && m != "" {
				// Telegram accepts every numeric entity (&#39; from
				// html.EscapeString among them).
				text.WriteString(html.UnescapeString(m))
				i += len(m)
				matched = true
			}
			if !matched {
				return "", fmt.Errorf("bare & at %d", i)
			}
		case '>':
			return "", fmt.Errorf("bare > at %d", i)
		default:
			text.WriteByte(s[i])
			i++
		}
	}
	if len(stack) > 0 {
		return "", fmt.Errorf("unclosed %v", stack)
	}
	return text.String(), nil
}

func tagName(tag string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(tag, "<"), "/")
	s = strings.TrimSuffix(s, ">")
	if i := strings.IndexAny(s, " \t\n"); i >= 0 {
		s = s[:i]
	}
	return strings.ToLower(s)
}
