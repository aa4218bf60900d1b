package telegram

import (
	"strings"
	"unicode"
)

// maxMessageLen is Telegram's limit on a message's text. Telegram counts
// characters after parsing the HTML; textLen counts the raw HTML in UTF-16
// units (tags and entities included, astral characters twice), which is
// never less, so a part within the limit here is never rejected as too long.
const maxMessageLen = 4096

func textLen(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// splitHTML splits a reply in Telegram's HTML subset into parts of at most
// limit units. It prefers line boundaries (tags never span lines, see
// bot.Reply; the newline at a split is dropped). A line longer than limit
// is cut between characters, never inside a tag or an entity, and the
// open tags are closed before the cut and reopened after it. Parts without
// visible text are dropped, since Telegram rejects empty messages.
func splitHTML(s string, limit int) []string {
	if textLen(s) <= limit {
		if htmlBlank(s) {
			return nil
		}
		return []string{s}
	}
	var parts []string
	var cur strings.Builder
	curLen, started := 0, false
	emit := func(p string) {
		if !htmlBlank(p) {
			parts = append(parts, p)
		}
	}
	for _, line := range strings.Split(s, "\n") {
		n := textLen(line)
		sep := 0
		if started {
			sep = 1
		}
		if curLen+sep+n <= limit {
			if started {
				cur.WriteByte('\n')
			}
			cur.WriteString(line)
			curLen += sep + n
			started = true
			continue
		}
		if started {
			emit(cur.String())
			cur.Reset()
		}
		last := line
		if n > limit {
			chunks := splitLine(line, limit)
			for _, c := range chunks[:len(chunks)-1] {
				emit(c)
			}
			last = chunks[len(chunks)-1]
		}
		// Later lines may join the line's last piece.
		cur.WriteString(last)
		curLen, started = textLen(last), true
	}
	if started {
		emit(cur.String())
	}
	return parts
}

type tagToken struct {
	name string // lower case
	raw  string // the opening tag as written, attributes included
}

// splitLine cuts one line into chunks of at most limit units (limit >= 2).
func splitLine(line string, limit int) []string {
	var chunks []string
	var stack []tagToken
	var b strings.Builder
	n := 0        // units in b
	closeLen := 0 // units of the closing tags the chunk still needs
	fresh := true // b holds only reopened tags
	plain := false

	start := func() {
		b.Reset()
		n = 0
		for _, t := range stack {
			b.WriteString(t.raw)
			n += textLen(t.raw)
		}
		fresh = true
	}
	closeAll := func() {
		for i := len(stack) - 1; i >= 0; i-- {
			b.WriteString("</" + stack[i].name + ">")
		}
	}

	for i := 0; i < len(line); {
		tok, kind := nextToken(line[i:])
		if plain && kind != tokText {
			i += len(tok)
			continue
		}
		cost := textLen(tok)
		newClose := closeLen
		var name string
		switch kind {
		case tokOpen:
			name = tagName(tok)
			newClose += textLen("</" + name + ">")
		case tokClose:
			name = tagName(tok)
			if stackIndex(stack, name) >= 0 {
				newClose -= textLen("</" + name + ">")
			}
		}
		if n+cost+newClose > limit && !(plain && fresh) {
			if !fresh {
				closeAll()
				chunks = append(chunks, b.String())
				start()
				continue // retry the token in the new chunk
			}
			// Even a fresh chunk cannot hold the reopened tags, the token
			// and the closing tags (a huge link, deep nesting): keep the
			// text and drop the formatting for the rest of the line.
			plain = true
			stack, closeLen = nil, 0
			b.Reset()
			n = 0
			continue
		}
		i += len(tok)
		b.WriteString(tok)
		n += cost
		closeLen = newClose
		fresh = false
		switch kind {
		case tokOpen:
			stack = append(stack, tagToken{name: name, raw: tok})
		case tokClose:
			if j := stackIndex(stack, name); j >= 0 {
				stack = append(stack[:j], stack[j+1:]...)
			}
		}
	}
	closeAll()
	return append(chunks, b.String())
}

func stackIndex(stack []tagToken, name string) int {
	for j := len(stack) - 1; j >= 0; j-- {
		if stack[j].name == name {
			return j
		}
	}
	return -1
}

type tokenKind int

const (
	tokText  tokenKind = iota // one character or one entity
	tokOpen                   // <b>, <a href="...">
	tokClose                  // </b>
)

// nextToken returns the token at the start of s: a whole tag, a whole
// entity, or one character.
func nextToken(s string) (string, tokenKind) {
	switch s[0] {
	case '<':
		if end := strings.IndexByte(s, '>'); end > 0 {
			if strings.HasPrefix(s, "</") {
				return s[:end+1], tokClose
			}
			return s[:end+1], tokOpen
		}
	case '&':
		// Longest entity in Telegram's subset is &quot; / &#x1F600;.
		if end := strings.IndexByte(s, ';'); end > 1 && end <= 10 && !strings.ContainsAny(s[1:end], " <&") {
			return s[:end+1], tokText
		}
	}
	for i := range s {
		if i > 0 {
			return s[:i], tokText
		}
	}
	return s, tokText
}

// tagName returns the lower-case element name of an opening or closing tag.
func tagName(tag string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(tag, "<"), "/")
	s = strings.TrimSuffix(s, ">")
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		s = s[:i]
	}
	return strings.ToLower(s)
}

// htmlBlank reports whether s shows no visible character.
func htmlBlank(s string) bool {
	for i := 0; i < len(s); {
		tok, kind := nextToken(s[i:])
		i += len(tok)
		if kind == tokText && strings.TrimSpace(tok) != "" {
			return false
		}
	}
	return true
}
