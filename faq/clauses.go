package faq

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// A message often holds more than its question: a back story, a second
// question, or a clause that says what it is *not* asking ("不是问补缴啊
// 我就想知道余额在哪看"). clauses cuts a cleaned message into the pieces
// retrieval scores on their own, and drops the negated ones.

// clauseBreaks end a clause wherever they stand.
const clauseBreaks = "。！？!?；;\n…"

// zhContrast and enContrast start a new clause: what follows them is what
// the user wants.
var (
	zhContrast = []string{"我就想知道", "我只想知道", "就想知道", "只想知道", "我想知道", "我想问", "我是想问", "想问一下", "而是", "另外", "还有就是",
		"还有个问题", "还想问", "顺便问", "再问一下", "再问下"}
	enContrast = []string{" but ", " instead ", " rather ", " also ", " and another thing", " another question", " i just want ",
		" i only want ", " i want to know ", " what i want to know ", " my question is "}
)

// zhNegated and enNegated mark a clause that names a topic only to set it
// aside.
var (
	zhNegated = []string{"不是问", "不是想问", "不是要问", "我不问", "不问", "不是说", "先不说", "不用说", "别说", "不是关于", "不关心", "不管",
		"不用管", "不考虑", "不是这个"}
	enNegated = []string{"not asking", "not about", "not talking about", "don't care about", "do not care about", "forget about",
		"never mind", "not interested in", "i don't mean", "i do not mean", "no need to explain", "not the question"}
)

// clauses returns the clauses of s that are not negated, in order. A
// message of one clause comes back whole; a message whose every clause
// is negated comes back whole too (then the negation is the question).
func clauses(s string) []string {
	var parts []string
	start := 0
	cut := func(end int) {
		if p := strings.TrimSpace(s[start:end]); p != "" {
			parts = append(parts, p)
		}
		start = end
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case strings.ContainsRune(clauseBreaks, r):
			cut(i)
			start = i + n
		case r == ' ' && i > 0 && i+n < len(s) && hanBefore(s, i) && hanAfter(s, i+n):
			// A space between Chinese words is how many people type a
			// comma on a phone.
			cut(i)
		case r == '-' || r == '—' || r == '–':
			if i > 0 && s[i-1] == ' ' && i+n < len(s) && s[i+n] == ' ' || r != '-' {
				cut(i)
				start = i + n
			}
		default:
			if w := prefixAt(s, i, zhContrast); w > 0 {
				cut(i)
				i += w
				continue
			} else if r < utf8.RuneSelf && unicode.IsLetter(r) && i > 0 && s[i-1] == ' ' {
				if w := prefixAt(" "+strings.ToLower(s[i:min(len(s), i+24)]), 0, enContrast); w > 0 {
					cut(i)
					i += w - 2 // the word without the spaces around it
					continue
				}
			}
		}
		i += n
	}
	cut(len(s))
	if len(parts) <= 1 {
		return []string{strings.TrimSpace(s)}
	}
	kept := parts[:0:0]
	for _, p := range parts {
		if !negated(p) {
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return []string{strings.TrimSpace(s)}
	}
	return kept
}

func negated(clause string) bool {
	c := strings.ToLower(clause)
	for _, w := range zhNegated {
		if strings.Contains(c, w) {
			return true
		}
	}
	for _, w := range enNegated {
		if strings.Contains(c, w) {
			return true
		}
	}
	return false
}

// prefixAt returns the length of the first of words that s has at i.
func prefixAt(s string, i int, words []string) int {
	for _, w := range words {
		if strings.HasPrefix(s[i:], w) {
			return len(w)
		}
	}
	return 0
}

func hanBefore(s string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return unicode.Is(unicode.Han, r)
}

func hanAfter(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.Is(unicode.Han, r)
}
