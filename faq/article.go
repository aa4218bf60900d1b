package faq

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

var (
	// 第七十四条, 第74条, and (with a law name before it) 74条.
	zhArticleRef = regexp.MustCompile(`(第)?\s*([0-9]+|[零〇一二两三四五六七八九十百千]+)\s*条`)
	enArticleRef = regexp.MustCompile(`(?i)\b(?:article|art)\.?\s*(?:no\.?\s*)?(\d+)\b`)
)

// articleRequest recognises a question that asks for one article. ok is
// false when the question names no article. The law defaults to the
// Social Insurance Law when none is named, but then the question must be
// the bare reference ("第74条是什么", "What is Art 86?"); anything more
// goes to retrieval.
func (r *registry) articleRequest(q string) (Citation, bool) {
	q = foldWidth(q)
	// Cheap checks first: regexps cost more than the whole retrieval.
	hasZH := strings.Contains(q, "条")
	hasEN := strings.Contains(strings.ToLower(q), "art")
	if !hasZH && !hasEN {
		return Citation{}, false
	}
	if m := enArticleRef.FindStringSubmatchIndex(q); hasEN && m != nil {
		n, err := strconv.Atoi(q[m[2]:m[3]])
		if err != nil {
			return Citation{}, false
		}
		law, named := r.enLaw(q, true)
		if !named {
			law = LawSIL
		}
		// A Chinese law name in an English sentence still counts.
		if l, ok := r.zhLawIn(q); ok {
			law, named = l, true
		}
		if named || onlyReference(q[:m[0]]+" "+q[m[1]:]) {
			return Citation{Law: law, Article: n}, true
		}
	}
	if !hasZH {
		return Citation{}, false
	}
	for _, m := range zhArticleRef.FindAllStringSubmatchIndex(q, -1) {
		hasDi := m[2] >= 0
		law, named := r.zhLawIn(q[:m[0]])
		if !named {
			law, named = r.zhLawIn(q)
		}
		if !hasDi && !named {
			continue // "交满15年有几条规定" is not an article request
		}
		// Without a law name, "第二条" is as often ordinary speech ("有第二条
		// 办法吗", "第一条路是投诉吗") as a reference; only a question that
		// is nothing but the reference asks for the article.
		if !named && !onlyReference(q[:m[0]]+" "+q[m[1]:]) {
			continue
		}
		num := q[m[4]:m[5]]
		n, err := strconv.Atoi(num)
		if err != nil {
			var ok bool
			if n, ok = parseZHNumber(num); !ok {
				continue
			}
		}
		if !named {
			law = LawSIL
		}
		return Citation{Law: law, Article: n}, true
	}
	return Citation{}, false
}

// referenceFillerZH are the words that may surround a bare article
// reference and still leave it a request for the article. The replacer
// prefers earlier pairs at a position, so a phrase comes before any
// phrase that is its prefix (是什么意思 before 是什么, 的内容 before 的).
var referenceFillerZH = strings.NewReplacer(
	"是怎么规定的", "", "规定的是什么", "", "是什么意思", "", "的内容是什么", "", "是什么内容", "",
	"我想知道", "", "规定了什么", "", "说的是什么", "", "讲的是什么", "", "写的是什么", "", "怎么规定的", "",
	"说了什么", "", "讲了什么", "", "写了什么", "", "什么意思", "", "具体内容", "", "是怎样的", "", "讲的什么", "",
	"说的什么", "", "讲的啥", "", "说的啥", "", "说了啥", "", "讲了啥", "", "讲什么", "", "说什么", "", "是什么", "",
	"给我看", "", "我想看", "", "查一下", "", "看一下", "", "的原文", "", "的全文", "", "的内容", "", "是啥", "",
	"请问", "", "查看", "", "看看", "", "显示", "", "原文", "", "全文", "", "条文", "", "内容", "", "具体", "",
	"意思", "", "一下", "", "请", "", "的", "", "吗", "", "呢", "", "啊", "", "呀", "",
)

var referenceFillerEN = toSet(strings.Fields(`what whats is does do say says said mean means show me the text
of please tell about read full content contents display give see in wording s`))

// onlyReference reports whether rest, a question with its article
// reference cut out, holds nothing but filler and punctuation.
func onlyReference(rest string) bool {
	rest = strings.ToLower(referenceFillerZH.Replace(rest))
	words := strings.FieldsFunc(rest, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r)
	})
	for _, w := range words {
		if !referenceFillerEN[w] {
			return false
		}
	}
	return true
}

func foldWidth(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '！' && r <= '～' {
			return r - '！' + '!'
		}
		return r
	}, s)
}

// articleText renders an article for a direct request: the law's status
// on day when it is not in force, the Chinese original (the authority),
// then the English labelled as official or not, paragraph by paragraph
// where that differs, then the notes on it.
func (f *FAQ) articleText(l *Law, a *Article, lang Lang, day Date, notes []Note) string {
	var b strings.Builder
	if st := statusNote(l, ZH, day); st != "" {
		b.WriteString(strings.Trim(st, "（）") + "\n")
	}
	b.WriteString(a.Text)
	if a.English == "" {
		if lang == EN {
			b.WriteString("\n\n(No English translation of this article is available yet. 本条暂无英文译文。)")
		}
	} else {
		paras := strings.Split(a.English, "\n")
		official := min(a.OfficialParas, len(paras))
		if official > 0 {
			b.WriteString("\n\nEnglish（官方译文 / official translation）:\n")
			b.WriteString(strings.Join(paras[:official], "\n"))
		}
		if official < len(paras) {
			b.WriteString("\n\nEnglish（英文为非官方译文 / unofficial translation）:\n")
			b.WriteString(strings.Join(paras[official:], "\n"))
		}
	}
	for _, n := range notes {
		b.WriteString("\n\n" + n.Text)
	}
	return b.String()
}

func noSuchArticleText(l *Law, c Citation, lang Lang) string {
	if lang == EN {
		return "The " + l.EnglishShort + " has no Article " + strconv.Itoa(c.Article) + " (it has " + strconv.Itoa(l.Articles) +
			" articles). Please check the article number, or ask your question in your own words."
	}
	return "《" + c.Law + "》没有第" + zhNumber(c.Article) + "条（共" + zhNumber(l.Articles) +
		"条）。请核对条号，或者直接用自己的话提问。"
}
