package faq

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"
	"strconv"
)

// The classifier is trained ahead of time and shipped in data/model.bin,
// so that starting the bot (and every test) costs a load of a few
// milliseconds rather than seconds of training. TestClassifierModel
// retrains it when its inputs change (go test ./faq -run
// TestClassifierModel -update) and fails while the file is stale.
//
// The file is gzip of: the magic line, the fingerprint of what the model
// was trained on, the class IDs, the vocabulary, the biases and, per
// feature, its (class, weight) pairs with weights quantized to 16 bits.

const modelMagic = "shebao-classifier 1\n"

// trainVersion changes whenever the training code changes in a way the
// fingerprint of its inputs cannot see.
const trainVersion = 1

// fingerprint identifies what a model is trained from: the features of
// every training example (so a change to the wordings or to how text is
// read shows), the classes and the training settings.
func (td trainingData) fingerprint() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "v%d e%d r%g l%g df%d p%g\n", trainVersion, clsEpochs, clsRate, clsL2, clsMinDF, clsPrune)
	for _, id := range td.classIDs() {
		io.WriteString(h, id+"\x00")
	}
	for _, ex := range td.examples() {
		terms := featureTerms(ex.text)
		keys := make([]string, 0, len(terms))
		for t := range terms {
			keys = append(keys, t)
		}
		slices.Sort(keys)
		fmt.Fprintf(h, "%d:", ex.class)
		for _, t := range keys {
			io.WriteString(h, t+"="+strconv.FormatFloat(float64(terms[t]), 'g', 4, 32)+" ")
		}
		io.WriteString(h, "\n")
	}
	return h.Sum64()
}

// encodeModel writes c, trained on data with fingerprint fp.
func encodeModel(c *classifier, fp uint64) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(zw)
	io.WriteString(w, modelMagic)
	put := func(v any) { binary.Write(w, binary.LittleEndian, v) }
	str := func(s string) {
		put(uint16(len(s)))
		io.WriteString(w, s)
	}
	put(fp)
	put(uint32(len(c.ids)))
	for _, id := range c.ids {
		str(id)
	}
	words := make([]string, len(c.vocab))
	for t, i := range c.vocab {
		words[i] = t
	}
	put(uint32(len(words)))
	for _, t := range words {
		str(t)
	}
	top := float32(0)
	for _, row := range c.rows {
		for _, x := range row {
			top = max(top, float32(math.Abs(float64(x.w))))
		}
	}
	scale := top / math.MaxInt16
	if scale == 0 {
		scale = 1
	}
	put(scale)
	put(c.bias)
	for _, row := range c.rows {
		put(uint16(len(row)))
		for _, x := range row {
			put(x.class)
			put(int16(math.Round(float64(x.w / scale))))
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var errModel = errors.New("not a classifier model")

// decodeModel reads a model and the fingerprint of its training data.
func decodeModel(b []byte) (*classifier, uint64, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errModel, err)
	}
	r := bufio.NewReader(zr)
	magic := make([]byte, len(modelMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != modelMagic {
		return nil, 0, errModel
	}
	var failed error
	get := func(v any) {
		if failed == nil {
			failed = binary.Read(r, binary.LittleEndian, v)
		}
	}
	str := func() string {
		var n uint16
		get(&n)
		if failed != nil {
			return ""
		}
		s := make([]byte, n)
		if _, err := io.ReadFull(r, s); err != nil {
			failed = err
		}
		return string(s)
	}
	var fp uint64
	var nClasses, nWords uint32
	get(&fp)
	get(&nClasses)
	if failed != nil || nClasses == 0 || nClasses > math.MaxUint16 {
		return nil, 0, fmt.Errorf("%w: bad header", errModel)
	}
	c := &classifier{ids: make([]string, nClasses)}
	for i := range c.ids {
		c.ids[i] = str()
	}
	get(&nWords)
	if failed != nil || nWords > 1<<22 {
		return nil, 0, fmt.Errorf("%w: bad vocabulary", errModel)
	}
	c.vocab = make(map[string]int32, nWords)
	for i := range nWords {
		c.vocab[str()] = int32(i)
	}
	var scale float32
	get(&scale)
	c.bias = make([]float32, nClasses)
	get(c.bias)
	c.rows = make([][]weight, nWords)
	for i := range c.rows {
		var n uint16
		get(&n)
		if failed != nil {
			break
		}
		row := make([]weight, n)
		for j := range row {
			var q int16
			get(&row[j].class)
			get(&q)
			if row[j].class >= uint16(nClasses) {
				failed = fmt.Errorf("class %d out of range", row[j].class)
			}
			row[j].w = float32(q) * scale
		}
		c.rows[i] = row
	}
	if failed != nil {
		return nil, 0, fmt.Errorf("%w: %v", errModel, failed)
	}
	return c, fp, nil
}

// forEntries re-orders c's classes to match entries (by ID). An entry the
// model does not know gets no score from it; a class for an entry no
// longer there is dropped. The last class stays out of scope.
func (c *classifier) forEntries(entries []Entry) *classifier {
	same := len(c.ids) == len(entries)+1
	for i, e := range entries {
		if !same || c.ids[i] != e.ID {
			same = false
			break
		}
	}
	if same {
		return c
	}
	to := map[uint16]uint16{}
	pos := map[string]int{}
	for i, e := range entries {
		pos[e.ID] = i
	}
	out := &classifier{vocab: c.vocab, ids: make([]string, len(entries)+1), bias: make([]float32, len(entries)+1)}
	for i, e := range entries {
		out.ids[i] = e.ID
		out.bias[i] = -20 // unknown to the model: never its pick
	}
	for k, id := range c.ids {
		j, ok := pos[id]
		if id == "" {
			j, ok = len(entries), true
		}
		if ok {
			to[uint16(k)] = uint16(j)
			out.bias[j] = c.bias[k]
		}
	}
	out.rows = make([][]weight, len(c.rows))
	for f, row := range c.rows {
		for _, w := range row {
			if j, ok := to[w.class]; ok {
				out.rows[f] = append(out.rows[f], weight{j, w.w})
			}
		}
	}
	return out
}
