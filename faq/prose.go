package faq

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// This file checks what an LLM wrote in the prose of an answer, where the
// JSON fields cannot vouch for it: the articles it names, the passages it
// puts in quotation marks, its language and its numbers. Each check errs
// on the side of rejecting: a rejected phrasing costs only a fallback to
// the curated answer, while a wrong citation or an invented hotline
// misleads the user.

// zhNum is one article number, in digits or Chinese numerals.
const zhNum = `[0-9]+|[零〇一二两三四五六七八九十百千]+`

var (
	// zhCiteElem is one element of a Chinese article list: 第七十四条,
	// 第六十三 (the 条 comes later in the list), 90条.
	zhCiteElem = regexp.MustCompile(`(第\s*)?(` + zhNum + `)(\s*条)?`)
	// zhCiteSep joins two elements of a list or range.
	zhCiteSep = regexp.MustCompile(`^\s*(、|，|,|和|及|与|以及|或者?|至|到|-|—|–|~|～)\s*$`)
	// enCiteGroup is "Article 74", "Arts. 4 and 74", "Articles 63, 64 and
	// 90", "Arts. 63-65".
	enCiteGroup = regexp.MustCompile(`(?i)\b(?:articles?|arts?)\b\.?\s*(?:nos?\.?\s*)?\d+` +
		`(?:\s*(?:,|and|&|or|to|through|-|–|—)\s*(?:(?:articles?|arts?)\b\.?\s*)?\d+)*`)
	enCiteElem = regexp.MustCompile(`\d+`)
	// bookTitle is a title in 《》; each must be one of the four laws.
	bookTitle = regexp.MustCompile(`《([^》]*)》`)
	// enOfLaw is the law after an English article list: "Art. 32 of the
	// handling regulation".
	enOfLaw = regexp.MustCompile(`(?i)^\s*,?\s*of\s+(?:the\s+)?`)
	// enLawLike is what reads as a law's name after "of the".
	enLawLike = regexp.MustCompile(`(?i)^(?:[\w-]+\s+){0,6}?(?:law|laws|regulations?|act|measures|rules|provisions)\b`)
	// enLawName finds capitalised law names ("Labour Contract Law"), to
	// reject those that are not one of ours.
	enLawName = regexp.MustCompile(`\b(?:[A-Z][\w-]*\s+(?:(?:on|of|the|and|for)\s+)*){1,10}(?:Law|Laws|Regulations?|Act|Measures|Rules|Provisions)\b`)
	// zhLawLike is a Han run that ends like a statute's name.
	zhLawLike = regexp.MustCompile(`\p{Han}+(?:法|条例|办法|细则)$`)
)

// lawMention is a place where the prose names a law.
type lawMention struct {
	end int
	law string
}

// proseCitations returns the (law, article) pairs an answer names in its
// prose, in Chinese or English. A pair's law is the law named nearest
// before it ("《社会保险法》第四条和第七十四条"), or the one right after it
// in English ("Art. 32 of the handling regulation"), or else def. ok is
// false when the prose names a law that is not one of ours, or names an
// article whose law cannot be told (def is "").
func (r *registry) proseCitations(text, def string) ([]Citation, bool) {
	s := foldWidth(text)
	var mentions []lawMention
	for _, m := range bookTitle.FindAllStringSubmatchIndex(s, -1) {
		law, ok := r.zhLawExact(strings.TrimSpace(s[m[2]:m[3]]))
		if !ok {
			return nil, false
		}
		mentions = append(mentions, lawMention{m[1], law})
	}
	for _, a := range r.zhAliases {
		for i := 0; ; {
			j := strings.Index(s[i:], a.alias)
			if j < 0 {
				break
			}
			i += j + len(a.alias)
			mentions = append(mentions, lawMention{i, a.law})
		}
	}
	lower := strings.ToLower(s)
	for _, p := range r.enNames {
		if !strings.Contains(lower, p.lit) {
			continue
		}
		for _, m := range p.re.FindAllStringIndex(s, -1) {
			mentions = append(mentions, lawMention{m[1], p.law})
		}
	}
	for _, m := range enLawName.FindAllString(s, -1) {
		if _, ok := r.enLaw(m, false); !ok {
			return nil, false
		}
	}
	lawBefore := func(at int) (string, bool) {
		best, bestEnd := def, -1
		for _, m := range mentions {
			if m.end <= at && m.end > bestEnd {
				best, bestEnd = m.law, m.end
			}
		}
		return best, best != ""
	}

	var out []Citation
	add := func(law string, from, to int) bool {
		if to < from || to-from > 200 {
			return false // a reversed or absurd range is not a citation we can vouch for
		}
		for n := from; n <= to; n++ {
			out = append(out, Citation{Law: law, Article: n})
		}
		return true
	}

	// Chinese lists: split into elements, join neighbours separated only
	// by a list or range word.
	elems := zhCiteElem.FindAllStringSubmatchIndex(s, -1)
	for i := 0; i < len(elems); {
		j := i + 1
		for j < len(elems) {
			gap := s[elems[j-1][1]:elems[j][0]]
			sep := zhCiteSep.FindStringSubmatch(gap)
			if sep == nil {
				break
			}
			// "第四条，三条途径": after a closed element, a comma only
			// continues the list if the next element says 第 again.
			if (sep[1] == "，" || sep[1] == ",") && elems[j-1][6] >= 0 && elems[j][2] < 0 {
				break
			}
			j++
		}
		group := elems[i:j]
		i = j
		// The list ends at its last 条; numbers after it are not articles.
		last := -1
		for k, e := range group {
			if e[6] >= 0 {
				last = k
			}
		}
		// It starts at the first element that says 第 or follows a law
		// name directly ("社会保险法90条").
		first := -1
		for k, e := range group[:last+1] {
			before := strings.TrimRightFunc(s[:e[0]], unicode.IsSpace)
			if e[2] >= 0 || r.endsWithLaw(before) {
				first = k
				break
			}
		}
		if first < 0 {
			continue
		}
		start := group[first][0]
		// A statute named right before the reference must be one of ours
		// ("劳动合同法第三十条").
		before := strings.TrimRightFunc(s[:start], unicode.IsSpace)
		if m := zhLawLike.FindString(before); m != "" && !r.endsWithLaw(before) {
			return nil, false
		}
		law, ok := lawBefore(start)
		if !ok {
			return nil, false
		}
		prev := -1
		rangeNext := false
		for k := first; k <= last; k++ {
			e := group[k]
			n, ok := parseArticleNumber(s[e[4]:e[5]])
			if !ok {
				return nil, false
			}
			from := n
			if rangeNext {
				from = prev + 1
			}
			if !add(law, from, n) {
				return nil, false
			}
			prev = n
			rangeNext = false
			if k < last {
				gap := strings.TrimSpace(s[e[1]:group[k+1][0]])
				rangeNext = strings.ContainsAny(gap, "至到-—–~～")
			}
		}
	}

	// English lists and ranges.
	for _, m := range enCiteGroup.FindAllStringIndex(s, -1) {
		law, ok := "", false
		if of := enOfLaw.FindStringIndex(s[m[1]:]); of != nil {
			after := s[m[1]+of[1]:]
			law, ok = r.enLawPrefix(after)
			if !ok && enLawLike.MatchString(after) {
				return nil, false // "Article 5 of the labour law"
			}
		}
		if !ok {
			if law, ok = lawBefore(m[0]); !ok {
				return nil, false
			}
		}
		g := s[m[0]:m[1]]
		nums := enCiteElem.FindAllStringIndex(g, -1)
		prev := -1
		for k, nm := range nums {
			n, err := strconv.Atoi(g[nm[0]:nm[1]])
			if err != nil {
				return nil, false
			}
			from := n
			if k > 0 {
				sep := strings.ToLower(strings.TrimSpace(g[nums[k-1][1]:nm[0]]))
				if sep == "to" || sep == "through" || sep == "-" || sep == "–" || sep == "—" {
					from = prev + 1
				}
			}
			if !add(law, from, n) {
				return nil, false
			}
			prev = n
		}
	}
	return out, true
}

func parseArticleNumber(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	return parseZHNumber(s)
}

// quotedSpans returns the text inside quotation marks: “…”, 「…」, 『…』,
// ‘…’ and straight "…".
func quotedSpans(s string) []string {
	var out []string
	pairs := []struct{ open, close string }{{"“", "”"}, {"「", "」"}, {"『", "』"}, {"‘", "’"}, {`"`, `"`}}
	for _, p := range pairs {
		rest := s
		for {
			i := strings.Index(rest, p.open)
			if i < 0 {
				break
			}
			rest = rest[i+len(p.open):]
			j := strings.Index(rest, p.close)
			if j < 0 {
				break
			}
			out = append(out, rest[:j])
			rest = rest[j+len(p.close):]
		}
	}
	return out
}

// minCheckedQuote is the length (in characters) from which a quoted span
// must be found in the sources: shorter ones are names and terms
// ("App", “断缴”) the model may reasonably put in quotes.
const minCheckedQuote = 7

// numberRun matches a number as written in prose: 12393, 0.05, 1,000.
var numberRun = regexp.MustCompile(`[0-9]+(?:[.,][0-9]+)*`)

// numbersIn returns the numbers in s with 3 or more digits, thousands
// separators removed.
func numbersIn(s string) []string {
	var out []string
	for _, n := range numberRun.FindAllString(foldWidth(s), -1) {
		n = strings.TrimRight(strings.ReplaceAll(n, ",", ""), ".")
		digits := 0
		for _, r := range n {
			if r >= '0' && r <= '9' {
				digits++
			}
		}
		if digits >= 3 {
			out = append(out, n)
		}
	}
	return out
}

// inLang reports whether an answer is written in lang. DetectLang alone is
// too weak for Chinese (one Han character makes a text Chinese) and too
// strict for English (curated English answers name Chinese apps and
// documents in Chinese), so Han text the reference answer or our law
// names contain is ignored for English, and Chinese must outweigh
// English.
func (r *registry) inLang(text string, lang Lang, ref string) bool {
	if lang == EN {
		var rest strings.Builder
		notHan := func(r rune) bool { return !unicode.Is(unicode.Han, r) }
		for _, run := range strings.FieldsFunc(text, notHan) {
			if !strings.Contains(ref, run) && !r.endsWithLaw(run) {
				rest.WriteString(run)
			}
		}
		return !hasHan(rest.String())
	}
	han, words := scriptCounts(text)
	// Two Han characters make about one English word.
	return han > 0 && han >= 2*words
}
