package faq

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"sort"
)

// The classifier learns an entry's topic from many wordings of it (the
// entry's own and data/paraphrases.json), the way intent classifiers for
// chat assistants do: a multinomial logistic regression over the same
// features retrieval reads (Han bigrams and unigrams, English stems and
// the concepts both languages share), with one extra class for questions
// that are not ours. Every training wording is also seen once behind a
// piece of context (a back story, a city, a relative, politeness), so the
// model learns that such words carry no topic.
//
// Training is deterministic (fixed order, fixed epochs) and takes a few
// seconds, so it happens ahead of time: see model.go.

// glossWeight is the weight of the Chinese bigrams an English concept
// brings (concepts.go).
var glossWeight float32 = 0.6

const (
	clsEpochs = 30
	clsRate   = 3.0
	clsL2     = 1e-5
	// clsMaxFeatures keeps the model small: a feature seen in fewer than
	// two wordings is more often a typo than a topic.
	clsMinDF = 2
)

// feature is one input of the classifier.
type feature struct {
	id int32
	x  float32
}

// classifier is a trained model. It is immutable and safe for concurrent
// use.
type classifier struct {
	vocab map[string]int32
	rows  [][]weight // per feature, the weights that matter
	bias  []float32  // per class
	// ids names the classes: entry IDs, then "" for out of scope.
	ids []string
}

// weight is one class's weight for a feature.
type weight struct {
	class uint16
	w     float32
}

// example is one training wording and its class.
type example struct {
	text  string
	class int
}

// contextsZH and contextsEN wrap training wordings so that the model sees
// the words of a back story in every class.
var (
	contextsZH = []string{"我在深圳上班，", "麻烦问一下，", "我妈想问：", "急！", "我去年从杭州换到上海工作，", "我老公让我问问，", "你好，",
		"我是外地户口，", "请问一下", "我表哥说", "我刚毕业，", "我爸今年六十了，", "我们公司在北京，", "想咨询一下，", "我在老家县城，"}
	contextsEN = []string{"Hi, ", "Quick question: ", "My mum asks: ", "I moved from Beijing to Shanghai last year. ",
		"Sorry to bother you, ", "Hello, I'm a foreigner working in Shenzhen. ", "Please help: ", "My husband wants to know: ",
		"I just graduated. ", "Urgent: "}
)

// paraphrases are extra wordings of one entry, or of the questions that
// are not ours.
type paraphrases struct {
	ZH []string `json:"zh"`
	EN []string `json:"en"`
}

// trainingData is everything the classifier learns from.
type trainingData struct {
	entries    []Entry
	paras      map[string]paraphrases
	outOfScope paraphrases
}

// trainingSet lists every wording of every entry, each also behind a
// context, then the out-of-scope wordings.
func (td trainingData) examples() []example {
	entries, paras := td.entries, td.paras
	var out []example
	n := 0
	add := func(q string, class int, ctx []string) {
		q = clean(q)
		out = append(out, example{q, class})
		out = append(out, example{ctx[n%len(ctx)] + q, class})
		n++
	}
	for i, e := range entries {
		for _, q := range slices.Concat(e.QuestionsZH, paras[e.ID].ZH) {
			add(q, i, contextsZH)
		}
		for _, q := range slices.Concat(e.QuestionsEN, paras[e.ID].EN) {
			add(q, i, contextsEN)
		}
	}
	for _, q := range td.outOfScope.ZH {
		add(q, len(entries), contextsZH)
	}
	for _, q := range td.outOfScope.EN {
		add(q, len(entries), contextsEN)
	}
	return out
}

// featureTerms are the weighted terms of a text: the tokens retrieval
// reads (a repeated term counted once); for English, the Chinese terms of
// its concepts (concepts.go) and character 4-grams of longer words, so
// that "insurence" still shares most of its grams with "insurance".
func featureTerms(text string) map[string]float32 { return featureTermsOf(analyze(text)) }

// featureTermsOf is featureTerms of a text already analyzed.
func featureTermsOf(a analyzed) map[string]float32 {
	out := make(map[string]float32, 2*len(a.tokens))
	put := func(t string, w float32) {
		if w > out[t] {
			out[t] = w
		}
	}
	gloss := conceptTerms()
	for _, t := range a.tokens {
		w := float32(t.weight)
		if t.unigram {
			w = 0.3
		}
		put(t.term, w)
		if t.pos >= 0 {
			continue
		}
		for _, zh := range gloss[t.term] {
			rs := []rune(zh)
			if len(rs) == 1 {
				put(zh, 0.5)
			}
			for i := 0; i+1 < len(rs); i++ {
				put(string(rs[i:i+2]), glossWeight)
			}
		}
		if len(t.term) >= 6 {
			g := "#" + t.term + "#"
			for i := 0; i+4 <= len(g); i++ {
				put("~"+g[i:i+4], 0.2)
			}
		}
	}
	return out
}

// train fits the model by stochastic gradient descent on the softmax
// loss, in a fixed order, and keeps the weights that matter.
func train(td trainingData) *classifier {
	return trainWith(td.examples(), td.classIDs(), clsEpochs, clsRate)
}

// classIDs names the classes: the entries' IDs, then "" for out of scope.
func (td trainingData) classIDs() []string {
	ids := make([]string, 0, len(td.entries)+1)
	for _, e := range td.entries {
		ids = append(ids, e.ID)
	}
	return append(ids, "")
}

// clsPrune drops weights smaller than this after training: 88% of them,
// at no cost in accuracy on the tuning and dev sets.
const clsPrune = 0.1

func trainWith(exs []example, ids []string, epochs int, rate0 float64) *classifier {
	classes := len(ids)
	df := map[string]int{}
	terms := make([]map[string]float32, len(exs))
	for i, ex := range exs {
		terms[i] = featureTerms(ex.text)
		for t := range terms[i] {
			df[t]++
		}
	}
	words := make([]string, 0, len(df))
	for t, n := range df {
		if n >= clsMinDF {
			words = append(words, t)
		}
	}
	sort.Strings(words)
	vocab := make(map[string]int32, len(words))
	for i, t := range words {
		vocab[t] = int32(i)
	}
	w := make([]float32, len(words)*classes)
	bias := make([]float32, classes)
	feats := make([][]feature, len(exs))
	for i := range exs {
		feats[i] = unitFeatures(vocab, terms[i])
	}
	// A fixed permutation: interleave the classes so that an epoch does
	// not see one entry's wordings in a row.
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return mix(uint64(order[a])) < mix(uint64(order[b]))
	})
	p := make([]float64, classes)
	for epoch := range epochs {
		rate := rate0 / (1 + float64(epoch))
		for _, i := range order {
			fs := feats[i]
			if len(fs) == 0 {
				continue
			}
			for k := range p {
				p[k] = float64(bias[k])
			}
			for _, f := range fs {
				row := w[int(f.id)*classes : (int(f.id)+1)*classes]
				for k, v := range row {
					p[k] += float64(v * f.x)
				}
			}
			softmax(p)
			for k := range classes {
				g := p[k]
				if k == exs[i].class {
					g--
				}
				if math.Abs(g) < 1e-4 {
					continue
				}
				bias[k] -= float32(rate * g)
				for _, f := range fs {
					j := int(f.id)*classes + k
					w[j] -= float32(rate * (g*float64(f.x) + clsL2*float64(w[j])))
				}
			}
		}
	}
	c := &classifier{vocab: vocab, rows: make([][]weight, len(words)), bias: bias, ids: ids}
	for fi := range words {
		for k, v := range w[fi*classes : (fi+1)*classes] {
			if v >= clsPrune || v <= -clsPrune {
				c.rows[fi] = append(c.rows[fi], weight{uint16(k), v})
			}
		}
	}
	return c
}

// mix is a fixed 64-bit hash (splitmix64's finaliser), for a shuffle that
// is the same on every run.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unitFeatures maps terms to the model's inputs, scaled to unit length
// so that a long message does not shout.
func unitFeatures(vocab map[string]int32, terms map[string]float32) []feature {
	out := make([]feature, 0, len(terms))
	for t, x := range terms {
		if id, ok := vocab[t]; ok {
			out = append(out, feature{id, x})
		}
	}
	// Sorted before summing, so that the sum (and the model) is the same
	// on every run.
	slices.SortFunc(out, func(a, b feature) int { return int(a.id - b.id) })
	var norm float64
	for _, f := range out {
		norm += float64(f.x * f.x)
	}
	if norm > 0 {
		s := float32(1 / math.Sqrt(norm))
		for i := range out {
			out[i].x *= s
		}
	}
	return out
}

func softmax(p []float64) {
	top := math.Inf(-1)
	for _, v := range p {
		top = max(top, v)
	}
	sum := 0.0
	for k, v := range p {
		p[k] = math.Exp(v - top)
		sum += p[k]
	}
	for k := range p {
		p[k] /= sum
	}
}

// classify returns the class probabilities of a text.
func (c *classifier) classify(text string) []float64 { return c.classifyAnalyzed(analyze(text)) }

// classifyAnalyzed is classify of a text already analyzed.
func (c *classifier) classifyAnalyzed(a analyzed) []float64 {
	p := make([]float64, len(c.ids))
	fs := unitFeatures(c.vocab, featureTermsOf(a))
	if len(fs) == 0 {
		p[c.outOfScopeClass()] = 1
		return p
	}
	copyFloats(p, c.bias)
	for _, f := range fs {
		for _, w := range c.rows[f.id] {
			p[w.class] += float64(w.w * f.x)
		}
	}
	softmax(p)
	return p
}

func copyFloats(dst []float64, src []float32) {
	for i, v := range src {
		dst[i] = float64(v)
	}
}

// outOfScopeClass is the index of the "not ours" class.
func (c *classifier) outOfScopeClass() int { return len(c.ids) - 1 }

// loadTraining reads the paraphrases and out-of-scope wordings from data.
func loadTraining(data fs.FS, entries []Entry) (trainingData, error) {
	td := trainingData{entries: entries}
	raw, err := fs.ReadFile(data, "data/paraphrases.json")
	if err != nil {
		return trainingData{}, fmt.Errorf("read paraphrases: %w", err)
	}
	if err := json.Unmarshal(raw, &td.paras); err != nil {
		return trainingData{}, fmt.Errorf("parse paraphrases.json: %w", err)
	}
	known := map[string]bool{}
	for _, e := range entries {
		known[e.ID] = true
	}
	for id := range td.paras {
		if !known[id] {
			return trainingData{}, fmt.Errorf("paraphrases.json: no entry %q", id)
		}
	}
	raw, err = fs.ReadFile(data, "data/out_of_scope.json")
	if err != nil {
		return trainingData{}, fmt.Errorf("read out-of-scope wordings: %w", err)
	}
	if err := json.Unmarshal(raw, &td.outOfScope); err != nil {
		return trainingData{}, fmt.Errorf("parse out_of_scope.json: %w", err)
	}
	return td, nil
}
