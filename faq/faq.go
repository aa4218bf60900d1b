// Package faq answers questions about social and medical insurance from
// curated, cited entries and from the verbatim legal texts embedded with
// it (corpus/*.md). It is a leaf: it imports nothing from this module, and
// it is the only importer of the OpenAI client.
//
// Retrieval is a hand-written BM25 over each entry's question wordings and
// keywords (both languages) and, at a lower weight, its answers. Chinese is
// cut into overlapping character bigrams (the approach of bleve's cjk
// analyzer), plus unigrams at a low weight; English is lowercased, stripped
// of stopwords and snowball-stemmed. Variants and typical misspellings are
// mapped onto one form before tokenising (断交/中断/停保 → 断缴,
// company/boss → employer). A bleve index was not used: for a corpus of a
// few hundred short entries, a map of postings answers in microseconds, is
// easy to tune field by field, and the coverage check that drives
// abstention needs to know which query bigrams a document matched, which a
// bleve result does not expose cheaply.
//
// A question is answered only when the best entry both scores high enough
// and covers most of the question's content; otherwise the reply is a
// polite refusal that points to the 12393 and 12333 hotlines. An optional
// LLM may rephrase an answer, but only from the retrieved entry and the
// articles it cites, and its output is rejected unless every citation
// (in the JSON and in the prose), every quotation and every number checks
// out against those sources, and it is in the language asked for.
package faq

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure New.
type Options struct {
	Logger *slog.Logger // nil: discard
	LLM    *LLMConfig   // nil: retrieval only
}

// LLMConfig points at any OpenAI-compatible chat completion server.
type LLMConfig struct {
	BaseURL, APIKey, Model string
	Timeout                time.Duration // 0: 15 s
	HTTPClient             *http.Client  // nil: default with sane transport
}

// Thresholds for answering rather than abstaining, tuned on the dev and
// extra question sets (see faq_test.go).
const (
	minScore        = 1.5
	minScoreCovered = 0.5
	minCoverage     = 0.5
	// minCoverageUnanchored applies to questions without any domain word.
	minCoverageUnanchored = 0.75
	relatedRatio          = 0.25 // a related entry must score at least this share of the best
	maxRelated            = 3
)

// FAQ answers questions. It is safe for concurrent use.
type FAQ struct {
	log     *slog.Logger
	corpus  *corpus
	entries []Entry
	byID    map[string]int
	index   *index
	llm     *llm
	stats   counters
}

// New parses the embedded corpus and entries. It fails if an entry is
// malformed or cites an article the corpus does not have.
func New(opts Options) (*FAQ, error) {
	raw, err := dataFS.ReadFile("data/entries.json")
	if err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	entries, err := parseEntries(raw)
	if err != nil {
		return nil, err
	}
	return newFAQ(opts, entries)
}

// newFAQ builds an FAQ over the given entries; tests and benchmarks use it
// to try other entry sets on the same corpus.
func newFAQ(opts Options, entries []Entry) (*FAQ, error) {
	return buildFAQ(opts, entries, dataFS)
}

// buildFAQ reads the English article renderings from data, so that a test
// can show a missing or broken file is an error.
func buildFAQ(opts Options, entries []Entry, data fs.FS) (*FAQ, error) {
	en, err := fs.ReadFile(data, "data/articles_en.json")
	if err != nil {
		return nil, fmt.Errorf("read english articles: %w", err)
	}
	if len(en) == 0 {
		// loadCorpus reads no bytes as "no renderings"; a shipped empty
		// file is a mistake, not that.
		return nil, fmt.Errorf("read english articles: data/articles_en.json is empty")
	}
	c, err := loadCorpus(en)
	if err != nil {
		return nil, fmt.Errorf("load corpus: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f := &FAQ{log: log, corpus: c, entries: entries, byID: map[string]int{}}
	for i, e := range entries {
		if err := f.checkEntry(e); err != nil {
			return nil, fmt.Errorf("entry %d (%q): %w", i, e.ID, err)
		}
		f.byID[e.ID] = i
	}
	f.index = buildIndex(entries)
	if opts.LLM != nil {
		f.llm = newLLM(*opts.LLM)
	}
	return f, nil
}

func (f *FAQ) checkEntry(e Entry) error {
	switch {
	case e.ID == "":
		return fmt.Errorf("empty id")
	case len(e.QuestionsZH)+len(e.QuestionsEN) == 0:
		return fmt.Errorf("no question wordings")
	case strings.TrimSpace(e.AnswerZH) == "" || strings.TrimSpace(e.AnswerEN) == "":
		return fmt.Errorf("answer missing in a language")
	}
	if _, dup := f.byID[e.ID]; dup {
		return fmt.Errorf("duplicate id")
	}
	for _, c := range e.Citations {
		if _, ok := f.corpus.articles[c]; !ok {
			return fmt.Errorf("citation %s article %d is not in the corpus", c.Law, c.Article)
		}
	}
	return nil
}

type entryJSON struct {
	ID          string     `json:"id"`
	QuestionsZH []string   `json:"questions_zh"`
	QuestionsEN []string   `json:"questions_en"`
	AnswerZH    string     `json:"answer_zh"`
	AnswerEN    string     `json:"answer_en"`
	Citations   []Citation `json:"citations"`
	Local       bool       `json:"local"`
	Source      string     `json:"source"`
	KeywordsZH  []string   `json:"keywords_zh"`
	KeywordsEN  []string   `json:"keywords_en"`
}

func parseEntries(raw []byte) ([]Entry, error) {
	var js []entryJSON
	if err := json.Unmarshal(raw, &js); err != nil {
		return nil, fmt.Errorf("parse entries: %w", err)
	}
	out := make([]Entry, len(js))
	for i, j := range js {
		out[i] = Entry(j)
	}
	return out, nil
}

// Article returns one article of the corpus.
func (f *FAQ) Article(c Citation) (Article, bool) {
	a, ok := f.corpus.articles[c]
	if !ok {
		return Article{}, false
	}
	return *a, true
}

// Entry returns the entry with the given ID.
func (f *FAQ) Entry(id string) (Entry, bool) {
	i, ok := f.byID[id]
	if !ok {
		return Entry{}, false
	}
	return f.entries[i], true
}

// Entries returns all entries in file order. The list is a copy; the
// entries share their slices with the FAQ and must not be modified.
func (f *FAQ) Entries() []Entry {
	return append([]Entry(nil), f.entries...)
}

// Answer answers one question in lang (DetectLang(question) if lang is
// neither ZH nor EN). The error is reserved for real failures; an
// unanswerable question is an abstained Answer, and an LLM failure falls
// back to the retrieval answer.
func (f *FAQ) Answer(ctx context.Context, question string, lang Lang) (Answer, error) {
	if err := ctx.Err(); err != nil {
		return Answer{}, fmt.Errorf("answer: %w", err)
	}
	if lang != ZH && lang != EN {
		lang = DetectLang(question)
	}
	f.stats.questions.Add(1)
	if c, ok := articleRequest(question); ok {
		return f.answerArticle(c, lang), nil
	}
	norm := normalize(question)
	curatedDoc, curated := f.index.exact[keyOfNormalized(norm)]
	if !curated && isOffTopic(question) {
		f.log.Debug("faq abstain", "reason", "off topic")
		return f.abstain(lang, 0), nil
	}
	q := analyzeNormalized(norm)
	hits := f.index.search(q, maxRelated+1)
	if len(hits) == 0 {
		f.log.Debug("faq abstain", "reason", "no match")
		return f.abstain(lang, 0), nil
	}
	if curated && hits[0].doc != curatedDoc {
		hits = promote(hits, curatedDoc)
	}
	best := hits[0]
	cov := f.index.coverage(q, best.doc)
	e := f.entries[best.doc]
	need := minCoverage
	if !q.anchored {
		need = minCoverageUnanchored
	}
	// A question made only of common domain words ("how to pay medical
	// insurance") scores low for lack of rare terms, yet is plainly ours.
	floor := minScore
	if q.anchored && cov >= 0.8 {
		floor = minScoreCovered
	}
	if best.score < floor || cov < need {
		f.log.Debug("faq abstain", "reason", "low confidence", "best", e.ID, "score", round2(best.score),
			"coverage", round2(cov), "anchored", q.anchored)
		return f.abstain(lang, best.score), nil
	}
	ans := Answer{
		Text:      e.Answer(lang),
		Citations: append([]Citation(nil), e.Citations...),
		EntryID:   e.ID,
		Score:     best.score,
	}
	ans.Related = f.related(hits, best.doc)
	f.stats.entryAnswers.Add(1)
	f.log.Debug("faq answer", "entry", e.ID, "score", round2(best.score), "coverage", round2(cov))
	if f.llm != nil {
		f.phrase(ctx, question, lang, e, &ans)
	}
	return ans, nil
}

// Related returns the IDs of up to 3 entries related to entry id, found
// by retrieval over the entry's question (never the LLM, so it is cheap
// enough for a button). It is nil for an unknown id.
func (f *FAQ) Related(id string, lang Lang) []string {
	d, ok := f.byID[id]
	if !ok {
		return nil
	}
	e := f.entries[d]
	q := e.Question(lang)
	if q == "" {
		q = e.Question(ZH) + " " + e.Question(EN)
	}
	// One extra hit, since the entry itself is usually among them.
	hits := f.index.search(analyze(q), maxRelated+2)
	if len(hits) == 0 {
		return nil
	}
	if hits[0].doc != d {
		hits = promote(hits, d)
	}
	return f.related(hits, d)
}

// related picks, from hits (best first), up to maxRelated entries other
// than self that score a fair share of the best.
func (f *FAQ) related(hits []hit, self int) []string {
	var out []string
	for _, h := range hits {
		if h.doc == self || h.score < relatedRatio*hits[0].score {
			continue
		}
		out = append(out, f.entries[h.doc].ID)
		if len(out) == maxRelated {
			break
		}
	}
	return out
}

func (f *FAQ) answerArticle(c Citation, lang Lang) Answer {
	a, ok := f.corpus.articles[c]
	if !ok {
		f.stats.abstentions.Add(1)
		return Answer{Text: noSuchArticleText(c, f.corpus.counts[c.Law], lang), Abstained: true}
	}
	f.stats.articleAnswers.Add(1)
	cp := *a
	return Answer{
		Text:      articleText(a, lang),
		Citations: []Citation{c},
		Score:     1,
		Article:   &cp,
	}
}

func (f *FAQ) abstain(lang Lang, score float64) Answer {
	f.stats.abstentions.Add(1)
	return Answer{Text: abstainText(lang), Abstained: true, Score: score}
}

func abstainText(lang Lang) string {
	if lang == EN {
		return "Sorry, that is outside what I can answer. I can only help with common questions about social insurance " +
			"and medical insurance in China. For medical insurance, call the medical security hotline 12393; for social " +
			"insurance, pensions and employment matters, call the human resources and social security hotline 12333."
	}
	return "抱歉，这个问题超出了我能回答的范围，我只能回答社保、医保方面的常见问题。" +
		"医保问题可拨打医保服务热线 12393；社保、养老、劳动保障问题可拨打人力资源和社会保障服务热线 12333。"
}

// Stats are cumulative counters since New, for metrics.
type Stats struct {
	Questions      uint64
	EntryAnswers   uint64
	ArticleAnswers uint64
	Abstentions    uint64
	LLMCalls       uint64
	LLMAccepted    uint64
	// LLMFallbacks counts rejected or failed LLM phrasings by reason:
	// "http", "timeout", "invalid_json", "bad_citation" (an article or
	// law not among those retrieved, in the JSON or the prose),
	// "bad_quote" (quoted text not in the law or the curated answer),
	// "empty", "wrong_language", "bad_number" (a number of 3 or more
	// digits not in the sources).
	LLMFallbacks map[string]uint64
}

type counters struct {
	questions, entryAnswers, articleAnswers, abstentions atomic.Uint64
	llmCalls, llmAccepted                                atomic.Uint64
	fallbacks                                            [numReasons]atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (f *FAQ) Stats() Stats {
	s := Stats{
		Questions:      f.stats.questions.Load(),
		EntryAnswers:   f.stats.entryAnswers.Load(),
		ArticleAnswers: f.stats.articleAnswers.Load(),
		Abstentions:    f.stats.abstentions.Load(),
		LLMCalls:       f.stats.llmCalls.Load(),
		LLMAccepted:    f.stats.llmAccepted.Load(),
		LLMFallbacks:   map[string]uint64{},
	}
	for r := range numReasons {
		s.LLMFallbacks[r.String()] = f.stats.fallbacks[r].Load()
	}
	return s
}

// promote moves document d to the front of hits (adding it if absent) with
// the best score, keeping the rest in order.
func promote(hits []hit, d int) []hit {
	out := []hit{{doc: d, score: hits[0].score}}
	for _, h := range hits {
		if h.doc != d {
			out = append(out, h)
		}
	}
	return out[:min(len(out), maxRelated+1)]
}

// round2 keeps logged scores short; full precision would also print long
// digit runs that log scanners mistake for ID or phone numbers.
func round2(x float64) float64 { return math.Round(x*100) / 100 }
