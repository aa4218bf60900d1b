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
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
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
	// Concurrency bounds the calls in flight (0: 8); a question beyond it
	// gets the retrieval answer at once. Each user has one call at a time.
	Concurrency int
	HTTPClient  *http.Client // nil: default with sane transport
	// Observe, when set, is told how long each call to the endpoint took
	// (call: "phrase" or "rerank"; err nil when it answered). Calls the
	// breaker or the concurrency bound kept from leaving are not made,
	// so not observed. It must be safe for concurrent use.
	Observe func(call string, d time.Duration, err error)
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
	*knowledge
	log   *slog.Logger
	llm   *llm
	stats counters
}

// knowledge is what an FAQ knows: built from data, immutable, and shared
// by every FAQ New returns in a process.
type knowledge struct {
	corpus  *corpus
	entries []Entry
	byID    map[string]int
	index   *index
	cls     *classifier // nil: retrieval by BM25 alone
}

// New parses the embedded laws, corpus and entries. It fails if an entry
// is malformed or cites an article the corpus does not have.
func New(opts Options) (*FAQ, error) {
	k, err := embedded()
	if err != nil {
		return nil, err
	}
	return withOptions(k, opts), nil
}

// embedded is the knowledge built from the embedded data, once: building
// it validates every entry, which takes a fraction of a second.
var embedded = sync.OnceValues(func() (*knowledge, error) {
	raw, err := dataFS.ReadFile("data/entries.json")
	if err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	entries, err := parseEntries(raw)
	if err != nil {
		return nil, err
	}
	k, err := buildKnowledge(entries, dataFS, corpusFS)
	if err != nil {
		return nil, err
	}
	raw, err = dataFS.ReadFile("data/model.bin")
	if err != nil {
		return nil, fmt.Errorf("read classifier: %w", err)
	}
	c, _, err := decodeModel(raw)
	if err != nil {
		return nil, fmt.Errorf("read classifier: %w", err)
	}
	k.cls = c.forEntries(entries)
	return k, nil
})

// withOptions is an FAQ over k.
func withOptions(k *knowledge, opts Options) *FAQ {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FAQ{knowledge: k, log: log}
	if opts.LLM != nil {
		f.llm = newLLM(*opts.LLM)
	}
	return f
}

// newFAQ builds an FAQ over the given entries, without the classifier
// (which is trained for the curated entries); tests and benchmarks use it
// to try other entry sets on the same corpus.
func newFAQ(opts Options, entries []Entry) (*FAQ, error) {
	return buildFAQ(opts, entries, dataFS, corpusFS)
}

// buildFAQ reads the law registry and the English article renderings from
// data, and the statute texts from files, so that a test can show a
// missing or broken file is an error.
func buildFAQ(opts Options, entries []Entry, data, files fs.FS) (*FAQ, error) {
	k, err := buildKnowledge(entries, data, files)
	if err != nil {
		return nil, err
	}
	return withOptions(k, opts), nil
}

func buildKnowledge(entries []Entry, data, files fs.FS) (*knowledge, error) {
	lawsRaw, err := fs.ReadFile(data, "data/laws.json")
	if err != nil {
		return nil, fmt.Errorf("read laws: %w", err)
	}
	reg, err := parseLaws(lawsRaw)
	if err != nil {
		return nil, err
	}
	en, err := fs.ReadFile(data, "data/articles_en.json")
	if err != nil {
		return nil, fmt.Errorf("read english articles: %w", err)
	}
	if len(en) == 0 {
		// loadCorpus reads no bytes as "no renderings"; a shipped empty
		// file is a mistake, not that.
		return nil, fmt.Errorf("read english articles: data/articles_en.json is empty")
	}
	c, err := loadCorpus(reg, files, en)
	if err != nil {
		return nil, fmt.Errorf("load corpus: %w", err)
	}
	k := &knowledge{corpus: c, entries: entries, byID: map[string]int{}}
	for i, e := range entries {
		if err := k.checkEntry(e); err != nil {
			return nil, fmt.Errorf("entry %d (%q): %w", i, e.ID, err)
		}
		k.byID[e.ID] = i
	}
	k.index = buildIndex(entries)
	return k, nil
}

func (f *knowledge) checkEntry(e Entry) error {
	switch {
	case e.ID == "":
		return fmt.Errorf("empty id")
	case len(e.QuestionsZH)+len(e.QuestionsEN) == 0:
		return fmt.Errorf("no question wordings")
	case len(e.Versions) == 0:
		return fmt.Errorf("no answer")
	case !e.Versions[0].From.IsZero():
		return fmt.Errorf("the first version must have no from date")
	}
	if _, dup := f.byID[e.ID]; dup {
		return fmt.Errorf("duplicate id")
	}
	for _, g := range e.Requires {
		if _, ok := groups[g]; !ok {
			return fmt.Errorf("requires unknown concept group %q", g)
		}
	}
	if e.Scope != "" && e.Scope != "employee" && e.Scope != "resident" {
		return fmt.Errorf("scope must be employee or resident, not %q", e.Scope)
	}
	for i, v := range e.Versions {
		if i > 0 && !e.Versions[i-1].From.Before(v.From) {
			return fmt.Errorf("version %d: from dates must increase", i)
		}
		if err := f.checkVersion(v, i > 0); err != nil {
			return fmt.Errorf("version %d: %w", i, err)
		}
	}
	return nil
}

// checkVersion checks that a version's answer is there in both languages
// and that everything it cites, in its citations or in its prose, is an
// article of the corpus and is cited.
func (f *knowledge) checkVersion(v Version, later bool) error {
	if strings.TrimSpace(v.AnswerZH) == "" || strings.TrimSpace(v.AnswerEN) == "" {
		return fmt.Errorf("answer missing in a language")
	}
	if (v.ChangeZH == "") != (v.ChangeEN == "") {
		return fmt.Errorf("change line missing in a language")
	}
	if v.ChangeZH != "" && (!later || len(v.ChangeCitations) == 0) {
		return fmt.Errorf("a change line belongs to a later version and must cite what it rests on")
	}
	for _, c := range append(slices.Clone(v.Citations), v.ChangeCitations...) {
		if _, ok := f.corpus.articles[c]; !ok {
			return fmt.Errorf("citation %s article %d is not in the corpus", c.Law, c.Article)
		}
	}
	for _, p := range []struct {
		text  string
		cited []Citation
	}{{v.AnswerZH, v.Citations}, {v.AnswerEN, v.Citations}, {v.ChangeZH, v.ChangeCitations}, {v.ChangeEN, v.ChangeCitations}} {
		named, ok := f.corpus.laws.proseCitations(p.text, "")
		if !ok {
			return fmt.Errorf("the text names a law that is not in laws.json, or an article without its law: %q", p.text)
		}
		for _, c := range named {
			if !slices.Contains(p.cited, c) {
				return fmt.Errorf("the text names %s article %d, which the version does not cite", c.Law, c.Article)
			}
		}
	}
	return nil
}

type versionJSON struct {
	From            Date       `json:"from,omitzero"`
	AnswerZH        string     `json:"answer_zh"`
	AnswerEN        string     `json:"answer_en"`
	Citations       []Citation `json:"citations"`
	Source          string     `json:"source"`
	ChangeZH        string     `json:"change_zh,omitempty"`
	ChangeEN        string     `json:"change_en,omitempty"`
	ChangeCitations []Citation `json:"change_citations,omitempty"`
}

// entryJSON is an entry in data/entries.json: the first version's fields
// sit in the entry itself, later ones in versions.
type entryJSON struct {
	ID          string   `json:"id"`
	QuestionsZH []string `json:"questions_zh"`
	QuestionsEN []string `json:"questions_en"`
	versionJSON
	Local      bool          `json:"local"`
	KeywordsZH []string      `json:"keywords_zh"`
	KeywordsEN []string      `json:"keywords_en"`
	Requires   []string      `json:"requires,omitempty"`
	Scope      string        `json:"scope,omitempty"`
	Versions   []versionJSON `json:"versions,omitempty"`
}

func parseEntries(raw []byte) ([]Entry, error) {
	var js []entryJSON
	if err := json.Unmarshal(raw, &js); err != nil {
		return nil, fmt.Errorf("parse entries: %w", err)
	}
	out := make([]Entry, len(js))
	for i, j := range js {
		e := Entry{ID: j.ID, QuestionsZH: j.QuestionsZH, QuestionsEN: j.QuestionsEN, KeywordsZH: j.KeywordsZH,
			KeywordsEN: j.KeywordsEN, Local: j.Local, Requires: j.Requires, Scope: j.Scope}
		for _, v := range append([]versionJSON{j.versionJSON}, j.Versions...) {
			e.Versions = append(e.Versions, Version(v))
		}
		out[i] = e
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

// ErrNoDay is returned by Answer for a Query without a day: which laws
// an answer cites depends on it.
var ErrNoDay = errors.New("a query needs the day it is answered for")

// Answer answers one question for q.Day, in q.Lang (the language of the
// question if q.Lang is neither ZH nor EN). The error is reserved for real
// failures; an unanswerable question is an abstained Answer, and an LLM
// failure falls back to the retrieval answer.
func (f *FAQ) Answer(ctx context.Context, q Query) (Answer, error) {
	if err := ctx.Err(); err != nil {
		return Answer{}, fmt.Errorf("answer: %w", err)
	}
	if q.Day.IsZero() {
		return Answer{}, fmt.Errorf("answer: %w", ErrNoDay)
	}
	lang := q.Lang
	if lang != ZH && lang != EN {
		lang = DetectLang(q.Text)
	}
	f.stats.questions.Add(1)
	text := clean(q.Text)
	if c, ok := f.corpus.laws.articleRequest(text); ok {
		return f.answerArticle(c, lang, q.Day), nil
	}
	care := safety(text)
	if care == SafetyCrisis {
		f.log.Debug("faq safety", "kind", care)
		return Answer{Day: q.Day, Text: SafetyText(care, lang), Safety: care}, nil
	}
	m := f.understand(ctx, text, lang)
	if !m.ok {
		f.log.Debug("faq abstain", "reason", m.why, "best", m.id(f), "score", round2(m.score), "coverage", round2(m.cov))
		if care != "" {
			return Answer{Day: q.Day, Text: SafetyText(care, lang), Safety: care}, nil
		}
		return f.abstain(lang, q.Day, m.score), nil
	}
	e := f.entries[m.doc]
	ans := f.EntryAnswer(e, lang, q.Day)
	ans.Score = m.score
	ans.Safety = care
	ans.Related = f.related(m.hits, m.doc)
	if m.also >= 0 {
		ans.Also = f.entries[m.also].ID
	}
	f.stats.entryAnswers.Add(1)
	f.log.Debug("faq answer", "entry", e.ID, "score", round2(m.score), "coverage", round2(m.cov))
	if f.llm != nil {
		v, _ := e.At(q.Day)
		f.phrase(ctx, q.Text, q.User, lang, e.ID, v, &ans)
	}
	return ans, nil
}

// match is retrieval's verdict on one text: the best entry, how well it
// matched, and whether that is good enough to answer.
type match struct {
	doc   int
	score float64
	cov   float64
	hits  []hit
	ok    bool
	exact bool   // text is a curated wording
	also  int    // a second question's entry, or -1
	why   string // when not ok: "off topic", "no match", "low confidence", "not ours"
}

func (m match) id(f *FAQ) string {
	if m.doc < 0 || m.doc >= len(f.entries) {
		return ""
	}
	return f.entries[m.doc].ID
}

// Thresholds of the classifier's probability, tuned on the tuning sets
// (testdata/tune-*.json) and the dev and extra sets, never on the
// held-out set.
var (
	// clsSure: the classifier alone decides.
	clsSure = 0.5
	// clsAgree: below clsSure, a BM25 match the classifier gives at least
	// this much is taken.
	clsAgree = 0.1
	// clsAlone: without a BM25 match, the classifier's best is taken from
	// this probability.
	clsAlone = 0.3
	// clsUnanchored: a question without any domain word (医保, 社保,
	// insurance, pension …) and without a close BM25 match is answered
	// only when the classifier is this sure.
	clsUnanchored = 0.9
	// maxClauses: a message of more clauses than this is not split into
	// two questions.
	maxClauses = 6
	// clsOverOOS: without a BM25 match, the best entry must be at least
	// this share of the "not ours" class.
	clsOverOOS = 1.0
	// clsClause: each of two clauses must be this sure of its entry for
	// the message to count as two questions.
	clsClause = 0.6
)

// understand finds the entry that answers a cleaned message, if one does:
// the classifier and BM25 together, over the message's clauses.
func (f *FAQ) understand(ctx context.Context, text string, lang Lang) match {
	if _, ok := f.index.exact[keyOfNormalized(normalize(text))]; ok {
		// A curated wording, word for word, before any clause is
		// dropped: "insured in one province but got sick in another"
		// is one question, not its last clause.
		return f.match(text)
	}
	parts := clauses(text)
	whole := strings.Join(parts, "，")
	if f.cls == nil {
		return f.match(whole)
	}
	m := f.decide(ctx, whole, lang)
	// A long story of many sentences is one question told at length;
	// only a short message of a few clauses is read as two questions.
	if len(parts) >= 2 && len(parts) <= maxClauses && m.ok {
		// Two questions in one message: the first asked is the main one.
		var ds []int
		for _, p := range parts {
			pr := f.cls.classify(p)
			if b := argmaxP(pr); b != f.cls.outOfScopeClass() && pr[b] >= clsClause && !slices.Contains(ds, b) {
				ds = append(ds, b)
			}
		}
		if len(ds) >= 2 {
			m.doc = ds[0]
			m.also = ds[1]
		}
	}
	return m
}

// decide combines the classifier and BM25 on one text, and, when an LLM
// is configured and they are unsure, lets it choose among the best
// candidates.
func (f *FAQ) decide(ctx context.Context, text string, lang Lang) match {
	norm := normalize(text)
	aq := analyzeNormalized(norm)
	bm := f.matchAnalyzed(text, norm, aq)
	if bm.why == "off topic" || bm.exact {
		return bm
	}
	pr := f.cls.classifyAnalyzed(aq)
	oos := f.cls.outOfScopeClass()
	for k := range oos {
		if pr[k] > 0 && !f.entries[k].fits(norm) {
			pr[k] = 0 // out of the entry's scope: never its pick
		}
	}
	if bm.ok && !f.entries[bm.doc].fits(norm) {
		bm.ok = false
	}
	// b is the best entry; "not ours" competes with it as a class.
	b := argmaxP(pr[:oos])
	m := match{doc: b, score: pr[b], cov: bm.cov, hits: bm.hits, also: -1}
	switch {
	case pr[oos] >= clsSure:
		m.doc, m.why = -1, "not ours"
	case !aq.anchored && !bm.ok && pr[b] < clsUnanchored:
		// No word of the domain and no close wording: a question about
		// flights or phones shares a verb with an entry, not a topic.
		m.doc, m.why = -1, "not ours"
	case pr[b] >= clsSure:
		m.ok = true
	case bm.ok && (bm.doc == b || pr[bm.doc] >= clsAgree):
		m.doc, m.score, m.ok = bm.doc, pr[bm.doc], true
	case pr[b] >= clsAlone && pr[b] > pr[oos]*clsOverOOS:
		m.ok = true
	default:
		m.why = "low confidence"
	}
	if f.llm != nil && m.doc >= 0 && m.score < clsSure {
		f.rerank(ctx, text, lang, pr[:oos], &m)
	}
	return m
}

// rerankCandidates is how many entries the LLM chooses among.
const rerankCandidates = 3

// rerank asks the LLM which of the best few entries the question asks
// about. Its choice must be one of them; anything else, or a failure,
// keeps the decision retrieval made.
func (f *FAQ) rerank(ctx context.Context, text string, lang Lang, pr []float64, m *match) {
	order := make([]int, len(pr))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(pr[b], pr[a]) })
	cands := order[:min(rerankCandidates, len(order))]
	qs := make([]string, len(cands))
	for i, d := range cands {
		qs[i] = f.entries[d].Question(lang)
		if qs[i] == "" {
			qs[i] = f.entries[d].Question(ZH)
		}
	}
	k, ok := f.llm.rerank(ctx, text, qs)
	f.stats.rerankCalls.Add(1)
	if !ok {
		return
	}
	f.stats.rerankAccepted.Add(1)
	m.doc, m.score, m.ok = cands[k], pr[cands[k]], true
}

func argmaxP(p []float64) int {
	best := 0
	for k := range p {
		if p[k] > p[best] {
			best = k
		}
	}
	return best
}

// match finds the entry that answers text by BM25, if one does.
func (f *FAQ) match(text string) match {
	norm := normalize(text)
	return f.matchAnalyzed(text, norm, analyzeNormalized(norm))
}

// matchAnalyzed is match of a text already normalized and analyzed.
func (f *FAQ) matchAnalyzed(text, norm string, aq analyzed) match {
	curatedDoc, curated := f.index.exact[keyOfNormalized(norm)]
	if !curated && isOffTopic(text) {
		return match{doc: -1, also: -1, why: "off topic"}
	}
	hits := f.index.search(aq, maxRelated+1)
	if len(hits) == 0 {
		return match{doc: -1, also: -1, why: "no match"}
	}
	if curated && hits[0].doc != curatedDoc {
		hits = promote(hits, curatedDoc)
	}
	best := hits[0]
	m := match{doc: best.doc, score: best.score, cov: f.index.coverage(aq, best.doc), hits: hits, exact: curated, also: -1}
	need := minCoverage
	if !aq.anchored {
		need = minCoverageUnanchored
	}
	// A question made only of common domain words ("how to pay medical
	// insurance") scores low for lack of rare terms, yet is plainly ours.
	floor := minScore
	if aq.anchored && m.cov >= 0.8 {
		floor = minScoreCovered
	}
	m.ok = best.score >= floor && m.cov >= need
	if !m.ok {
		m.why = "low confidence"
	}
	return m
}

// EntryAnswer is entry e's curated answer on day, with the change a
// published law will make to it from a later day. It never calls the LLM.
func (f *FAQ) EntryAnswer(e Entry, lang Lang, day Date) Answer {
	v, next := e.At(day)
	ans := Answer{
		Day:       day,
		Text:      v.Answer(lang),
		Citations: slices.Clone(v.Citations),
		EntryID:   e.ID,
	}
	if next != nil {
		ans.Notes = []Note{{From: next.From, Text: next.Change(lang), Citations: slices.Clone(next.ChangeCitations)}}
	}
	return ans
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

// ArticleAnswer is the answer to a request for article c on day, as for a
// typed look-up: the text, the law's status and the notes on it.
func (f *FAQ) ArticleAnswer(c Citation, lang Lang, day Date) Answer {
	return f.answerArticle(c, lang, day)
}

func (f *FAQ) answerArticle(c Citation, lang Lang, day Date) Answer {
	law, known := f.corpus.laws.law(c.Law)
	a, ok := f.corpus.articles[c]
	if !known {
		return f.abstain(lang, day, 0)
	}
	if !ok {
		f.stats.abstentions.Add(1)
		return Answer{Day: day, Text: noSuchArticleText(law, c, lang), Abstained: true}
	}
	f.stats.articleAnswers.Add(1)
	cp := *a
	ans := Answer{Day: day, Citations: []Citation{c}, Score: 1, Article: &cp}
	now, later := f.corpus.laws.notes(c, day)
	for _, n := range append(now, later...) {
		ans.Notes = append(ans.Notes, Note{From: n.From, Text: n.Text(lang), Citations: slices.Clone(n.See)})
	}
	ans.Text = f.articleText(law, a, lang, day, ans.Notes)
	return ans
}

func (f *FAQ) abstain(lang Lang, day Date, score float64) Answer {
	f.stats.abstentions.Add(1)
	return Answer{Day: day, Text: abstainText(lang), Abstained: true, Score: score}
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
	// RerankCalls counts the times the LLM was asked to choose among
	// candidate entries; RerankAccepted, the times its choice was used.
	RerankCalls    uint64
	RerankAccepted uint64
	// LLMFallbacks counts rejected or failed LLM phrasings by reason:
	// "http", "timeout", "invalid_json", "bad_citation" (an article or
	// law not among those retrieved, in the JSON or the prose),
	// "bad_quote" (quoted text not in the law or the curated answer),
	// "empty", "wrong_language", "bad_number" (a number of 3 or more
	// digits not in the sources), "busy" (too many calls in flight, or
	// one already for this user), "breaker_open" (calls paused after
	// repeated failures).
	LLMFallbacks map[string]uint64
}

type counters struct {
	questions, entryAnswers, articleAnswers, abstentions atomic.Uint64
	llmCalls, llmAccepted                                atomic.Uint64
	rerankCalls, rerankAccepted                          atomic.Uint64
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
		RerankCalls:    f.stats.rerankCalls.Load(),
		RerankAccepted: f.stats.rerankAccepted.Load(),
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

// Laws returns the laws the corpus holds, in display order.
func (f *FAQ) Laws() []Law {
	out := make([]Law, len(f.corpus.laws.laws))
	for i, l := range f.corpus.laws.laws {
		out[i] = *l
	}
	return out
}

// Law returns the law with the short name.
func (f *FAQ) Law(name string) (Law, bool) {
	l, ok := f.corpus.laws.law(name)
	if !ok {
		return Law{}, false
	}
	return *l, true
}

// Label renders a citation for people on day: 《社会保险法》第七十四条, or
// "Social Insurance Law, Art. 74", followed by the law's status when it
// is not in force that day (《医疗保障法》第十条（自2027年1月1日起施行，尚未施行）).
func (f *FAQ) Label(c Citation, lang Lang, day Date) string {
	return f.corpus.laws.label(c, lang, day)
}

// Labels renders several citations in one run, naming each law once:
// 《社会保险法》第六十三条、第八十六条；《社会保险经办条例》第三十一条.
// Each law's status on day follows its articles when it is not in force.
func (f *FAQ) Labels(cs []Citation, lang Lang, day Date) string {
	return f.corpus.laws.labels(cs, lang, day)
}

// ShortLabel is a citation short enough for a button: 社保法第七十四条, or
// "SIL Art. 74".
func (f *FAQ) ShortLabel(c Citation, lang Lang) string { return f.corpus.laws.short(c, lang) }

// Key is a short ASCII form of a citation ("sil.74") that fits any
// messenger's button data; "" for a law the registry does not have.
func (f *FAQ) Key(c Citation) string { return f.corpus.laws.key(c) }

// ParseKey is the inverse of Key. It does not check that the article
// exists; Article does.
func (f *FAQ) ParseKey(s string) (Citation, bool) { return f.corpus.laws.parseKey(s) }

// CitationsIn returns the articles a text names in prose ("《社会保险法》第
// 四条和第七十四条", "Social Insurance Law Arts. 63, 86"). ok is false when
// the text names a law the registry does not have, or an article whose
// law cannot be told. Tests use it to check that every reply cites only
// what resolves.
func (f *FAQ) CitationsIn(text string) (cs []Citation, ok bool) {
	return f.corpus.laws.proseCitations(text, "")
}
