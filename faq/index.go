package faq

import (
	"math"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// BM25 parameters. k1 is lower than the usual 1.2 because an entry lists
// several wordings of one question: a term repeated across wordings should
// saturate quickly rather than let long entries win.
const (
	bm25K1 = 0.9
	bm25B  = 0.5
)

// Field weights: the question wordings and keywords say what an entry is
// about; its answer mentions many things in passing.
const (
	weightQuestion = 1.0
	weightKeyword  = 1.0
	weightAnswer   = 0.25
)

type posting struct {
	doc int32
	tf  float32
}

// index is an in-memory BM25 index over entries. Every document holds the
// wordings of both languages, so a question in either language finds the
// entry; the answer language is chosen later.
type index struct {
	postings map[string][]posting
	idf      map[string]float64
	norm     []float64 // per document: k1 * (1 - b + b*len/avglen)
	terms    []map[string]bool
	// exact maps a curated wording, reduced by wordingKey, to its entry:
	// BM25 ignores word order, so a question typed exactly as curated
	// could otherwise lose to an entry that shares its words.
	exact map[string]int
	pool  sync.Pool // of *scratch
}

// wordingKey reduces a question to its letters, digits and Han
// characters after normalisation, so punctuation and spacing do not
// matter.
func wordingKey(s string) string { return keyOfNormalized(normalize(s)) }

// keyOfNormalized is wordingKey of a text already normalized.
func keyOfNormalized(norm string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, norm)
}

func buildIndex(entries []Entry) *index {
	ix := &index{postings: map[string][]posting{}, idf: map[string]float64{}, exact: map[string]int{}}
	n := len(entries)
	lens := make([]float64, n)
	ix.terms = make([]map[string]bool, n)
	total := 0.0
	for d, e := range entries {
		tf := map[string]float64{}
		add := func(texts []string, w float64) {
			for _, t := range texts {
				for _, tok := range analyze(t).tokens {
					tf[tok.term] += w * tok.weight
					lens[d] += w * tok.weight
				}
			}
		}
		for _, q := range append(slices.Clone(e.QuestionsZH), e.QuestionsEN...) {
			if k := wordingKey(q); k != "" {
				if _, dup := ix.exact[k]; !dup {
					ix.exact[k] = d
				}
			}
		}
		add(e.QuestionsZH, weightQuestion)
		add(e.QuestionsEN, weightQuestion)
		add(e.KeywordsZH, weightKeyword)
		add(e.KeywordsEN, weightKeyword)
		// One version's answer: versions say much the same, and summing
		// them would make an entry with a dated version look longer.
		add([]string{e.Versions[0].AnswerZH, e.Versions[0].AnswerEN}, weightAnswer)
		total += lens[d]
		ix.terms[d] = make(map[string]bool, len(tf))
		for term, f := range tf {
			ix.postings[term] = append(ix.postings[term], posting{doc: int32(d), tf: float32(f)})
			ix.terms[d][term] = true
		}
	}
	avg := 1.0
	if n > 0 && total > 0 {
		avg = total / float64(n)
	}
	ix.norm = make([]float64, n)
	for d := range lens {
		ix.norm[d] = bm25K1 * (1 - bm25B + bm25B*lens[d]/avg)
	}
	for term, ps := range ix.postings {
		df := float64(len(ps))
		ix.idf[term] = math.Log(1 + (float64(n)-df+0.5)/(df+0.5))
	}
	return ix
}

type hit struct {
	doc   int
	score float64
}

// scratch is per-query working memory, pooled because a query touches a
// large share of the documents and reallocating N floats each time shows
// up in the latency tail.
type scratch struct {
	scores  []float64
	touched []int32
}

// search scores every document sharing a term with q and returns the best
// k hits, best first.
func (ix *index) search(q analyzed, k int) []hit {
	n := len(ix.norm)
	if n == 0 {
		return nil
	}
	sc, _ := ix.pool.Get().(*scratch)
	if sc == nil || len(sc.scores) != n {
		sc = &scratch{scores: make([]float64, n)}
	}
	defer ix.pool.Put(sc)
	scores, touched := sc.scores, sc.touched[:0]
	seen := make(map[string]bool, len(q.tokens))
	for _, tok := range q.tokens {
		// A repeated query term counts once: "医保医保医保" is not a
		// stronger question than "医保".
		if seen[tok.term] {
			continue
		}
		seen[tok.term] = true
		// A unigram only helps where its bigrams found nothing (a typo,
		// a one-character word); elsewhere it would add a little score
		// to nearly every document at a real cost in time.
		if tok.unigram && q.bigramKnown(tok.pos, ix) {
			continue
		}
		idf := ix.idf[tok.term]
		for _, p := range ix.postings[tok.term] {
			if scores[p.doc] == 0 {
				touched = append(touched, p.doc)
			}
			tf := float64(p.tf)
			scores[p.doc] += tok.weight * idf * tf * (bm25K1 + 1) / (tf + ix.norm[p.doc])
		}
	}
	// Keep the k best in a small sorted slice: k is tiny, so this beats
	// sorting every touched document.
	hits := make([]hit, 0, k+1)
	for _, d := range touched {
		h := hit{int(d), scores[d]}
		scores[d] = 0
		if h.score <= 0 || (len(hits) == k && !better(h, hits[k-1])) {
			continue
		}
		i := len(hits)
		hits = append(hits, h)
		for i > 0 && better(h, hits[i-1]) {
			hits[i] = hits[i-1]
			i--
		}
		hits[i] = h
		if len(hits) > k {
			hits = hits[:k]
		}
	}
	sc.touched = touched
	return hits
}

func better(a, b hit) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.doc < b.doc
}

// coverage is the share of the question's content that document d
// matches: Han characters covered by a matching bigram, plus English
// content words present. It guards against a high score earned on one
// common word ("办理" in "怎么办理护照") while the rest of the question is
// about something the FAQ does not cover.
func (ix *index) coverage(q analyzed, d int) float64 {
	if d < 0 || d >= len(ix.terms) {
		return 0
	}
	terms := ix.terms[d]
	covered := map[int]bool{}
	for _, tok := range q.tokens {
		if tok.pos < 0 || tok.unigram || !terms[tok.term] {
			continue
		}
		covered[tok.pos], covered[tok.pos+1] = true, true
	}
	// Content the FAQ has never seen (a place name, a relative) counts
	// half: it is context around the question more often than its topic.
	// Unanchored questions face a stricter threshold, so this does not let
	// foreign topics through.
	weight := func(term string) float64 {
		if _, known := ix.idf[term]; known {
			return 1
		}
		return 0.5
	}
	have, want := 0.0, 0.0
	for pos, c := range q.hanChars {
		w := weight(c)
		want += w
		if covered[pos] {
			have += w
		}
	}
	for _, t := range q.enTerms {
		w := weight(t)
		want += w
		if terms[t] {
			have += w
		}
	}
	if want == 0 {
		return 0
	}
	return have / want
}
