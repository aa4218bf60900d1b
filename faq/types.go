package faq

import (
	"strconv"
	"strings"
	"unicode"
)

// Lang is the language of a question or an answer.
type Lang string

// Supported languages.
const (
	ZH Lang = "zh"
	EN Lang = "en"
)

// DetectLang reports ZH if the text contains Han characters, else EN.
func DetectLang(text string) Lang {
	for _, r := range text {
		if unicode.Is(unicode.Han, r) {
			return ZH
		}
	}
	return EN
}

// Citation names one article of one law. Law is one of the short Chinese
// names (LawSIL, LawHandling, LawMedFund, LawCollection).
type Citation struct {
	Law     string `json:"law"`
	Article int    `json:"article"`
}

// Label renders the citation for people: 《社会保险法》第七十四条 or
// "Social Insurance Law, Art. 74".
func (c Citation) Label(lang Lang) string {
	if lang == EN {
		name := c.Law
		if l, ok := lawByName(c.Law); ok {
			name = l.english
		}
		return name + ", Art. " + strconv.Itoa(c.Article)
	}
	return "《" + c.Law + "》第" + zhNumber(c.Article) + "条"
}

// Key is a short ASCII form ("sil.74") that fits Telegram callback data.
func (c Citation) Key() string {
	l, ok := lawByName(c.Law)
	if !ok {
		return ""
	}
	return l.key + "." + strconv.Itoa(c.Article)
}

// ParseCitationKey is the inverse of Key. It does not check that the
// article exists; FAQ.Article does.
func ParseCitationKey(s string) (Citation, bool) {
	prefix, num, ok := strings.Cut(s, ".")
	if !ok {
		return Citation{}, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > 9999 {
		return Citation{}, false
	}
	for _, l := range laws {
		if l.key == prefix {
			return Citation{Law: l.name, Article: n}, true
		}
	}
	return Citation{}, false
}

// Article is one article of a law, as found in the corpus.
type Article struct {
	Citation
	Chapter string // e.g. 第九章 社会保险经办 (if known)
	Text    string // Chinese original, verbatim from the corpus (paragraphs joined by "\n"): the authority
	English string // English text, paragraphs joined by "\n"; "" if none
	// Official is true only when all of English is the official
	// translation (SIL Arts 1-3). Otherwise English is our own rendering,
	// except for its first OfficialParas paragraphs.
	Official bool
	// OfficialParas is how many leading paragraphs of English are the
	// official translation: SIL Art. 4 has an official paragraph 1 and an
	// unofficial paragraph 2.
	OfficialParas int
}

// Entry is one curated question and answer.
type Entry struct {
	ID          string
	QuestionsZH []string
	QuestionsEN []string
	AnswerZH    string
	AnswerEN    string
	Citations   []Citation
	Local       bool   // answer depends on local practice
	Source      string // source note
	KeywordsZH  []string
	KeywordsEN  []string
}

// Question is the first wording of the question in lang.
func (e Entry) Question(lang Lang) string {
	qs := e.QuestionsZH
	if lang == EN {
		qs = e.QuestionsEN
	}
	if len(qs) == 0 {
		return ""
	}
	return qs[0]
}

// Answer is the curated answer in lang.
func (e Entry) Answer(lang Lang) string {
	if lang == EN {
		return e.AnswerEN
	}
	return e.AnswerZH
}

// Answer is the reply to one question.
type Answer struct {
	Text      string     // plain text in the requested language; for an article request, the Chinese original then the labelled English rendering
	Citations []Citation // empty when Abstained
	EntryID   string     // "" for article requests and abstentions
	Score     float64
	Abstained bool
	Article   *Article // set when the question was a direct article request
	Related   []string // IDs of up to 3 related entries
	Phrased   bool     // true when the LLM phrased the text and it passed validation
}
