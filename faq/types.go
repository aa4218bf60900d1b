package faq

import (
	"unicode"
)

// Lang is the language of a question or an answer.
type Lang string

// Supported languages.
const (
	ZH Lang = "zh"
	EN Lang = "en"
)

// DetectLang reports the dominant script of text: ZH when its Han
// characters outweigh its Latin words (two characters make about one
// word), else EN. "where can i see my 医保 balance" is English; "医保
// card 丢了怎么办" is Chinese. A tie, and a text with neither, is ZH only if
// it has any Han at all.
func DetectLang(text string) Lang {
	han, words := scriptCounts(text)
	switch {
	case han == 0:
		return EN
	case han >= 2*words:
		return ZH
	}
	return EN
}

// ScriptOf is DetectLang for a text that has Han characters or Latin
// words; ok is false for one that has neither ("12393?", "👍"), whose
// language only the client can tell.
func ScriptOf(text string) (l Lang, ok bool) {
	han, words := scriptCounts(text)
	if han == 0 && words == 0 {
		return ZH, false
	}
	return DetectLang(text), true
}

// scriptCounts counts the Han characters and the Latin words of text.
func scriptCounts(text string) (han, words int) {
	inWord := false
	for _, r := range text {
		if unicode.Is(unicode.Han, r) {
			han++
		}
		latin := r < 0x80 && unicode.IsLetter(r)
		if latin && !inWord {
			words++
		}
		inWord = latin
	}
	return han, words
}

// hasHan reports whether text contains any Han character.
func hasHan(text string) bool {
	for _, r := range text {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

// Citation names one article of one law. Law is the law's short Chinese
// name, as in data/laws.json ("社会保险法"); FAQ.Label renders it for a day.
type Citation struct {
	Law     string `json:"law"`
	Article int    `json:"article"`
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

// Entry is one curated question and answer. What the answer says, and
// what it rests on, can change on a day (a law takes effect): Versions
// hold each wording in force from its From day, the first from always.
type Entry struct {
	ID          string
	QuestionsZH []string
	QuestionsEN []string
	KeywordsZH  []string
	KeywordsEN  []string
	Local       bool      // answer depends on local practice
	Versions    []Version // by From, the first with a zero From
	// Requires names concept groups (concepts.go) of which a question must
	// name one for this entry to answer it: the entry on treatment abroad
	// requires "abroad", so it never answers a question about another
	// province.
	Requires []string
	// Scope is "employee" or "resident" for an entry about one scheme
	// only; it does not answer a question about the other scheme alone.
	Scope string
}

// Version is an entry's answer from one day on.
type Version struct {
	From      Date // zero for the first version
	AnswerZH  string
	AnswerEN  string
	Citations []Citation
	Source    string // source note
	// ChangeZH and ChangeEN announce this version before its From day, in
	// one plain line ("自2027年1月1日起，……"), citing ChangeCitations.
	ChangeZH, ChangeEN string
	ChangeCitations    []Citation
}

// Answer is the version's answer in lang.
func (v Version) Answer(lang Lang) string {
	if lang == EN {
		return v.AnswerEN
	}
	return v.AnswerZH
}

// Change is the version's announcement in lang.
func (v Version) Change(lang Lang) string {
	if lang == EN {
		return v.ChangeEN
	}
	return v.ChangeZH
}

// At returns the version in force on day, and the first later version
// that announces itself (nil when none).
func (e Entry) At(day Date) (cur Version, next *Version) {
	i := 0
	for j, v := range e.Versions {
		if !day.Before(v.From) {
			i = j
		}
	}
	for j := i + 1; j < len(e.Versions); j++ {
		if e.Versions[j].Change(ZH) != "" {
			next = &e.Versions[j]
			break
		}
	}
	return e.Versions[i], next
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

// Query is one question to answer.
type Query struct {
	Text string
	// Lang is the answer language; neither ZH nor EN means the language
	// of Text.
	Lang Lang
	// Day is the day the answer is for (required): it decides which laws
	// are cited.
	Day Date
	// User identifies the asker for the per-user LLM limit ("tg:42");
	// it never leaves the process.
	User string
}

// Note is a line that goes with an answer: a change a published law will
// make from a later day, or a caveat on an article (a later or higher
// rule that changes it). It is our own words, and Citations are what it
// rests on.
type Note struct {
	From      Date // zero: applies already
	Text      string
	Citations []Citation
}

// Answer is the reply to one question.
type Answer struct {
	Day       Date       // the day the answer is for
	Text      string     // plain text in the requested language; for an article request, the Chinese original then the labelled English rendering
	Citations []Citation // empty when Abstained
	// Notes are the coming change to an entry's answer, or the caveats on
	// a requested article.
	Notes     []Note
	EntryID   string // "" for article requests and abstentions
	Score     float64
	Abstained bool
	Article   *Article // set when the question was a direct article request
	Related   []string // IDs of up to 3 related entries
	// Safety is SafetyEmergency or SafetyCrisis when the message needs a
	// person before a policy (SafetyText says what); "" otherwise. A
	// crisis gets no policy answer at all.
	Safety string
	// Also is the entry of a second question in the same message ("怎么补？
	// 补了有等待期吗"); "" when there is none.
	Also    string
	Phrased bool // true when the LLM phrased the text and it passed validation
}
