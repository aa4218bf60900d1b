package faq

import (
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateModel = flag.Bool("update", false, "retrain the classifier and rewrite data/model.bin")

// The shipped model is trained on today's entries, paraphrases and
// out-of-scope wordings, read the way today's code reads text. When any
// of them changes, this test fails until the model is retrained:
//
//	go test ./faq -run TestClassifierModel -update
func TestClassifierModel(t *testing.T) {
	raw, err := dataFS.ReadFile("data/entries.json")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseEntries(raw)
	if err != nil {
		t.Fatal(err)
	}
	td, err := loadTraining(dataFS, entries)
	if err != nil {
		t.Fatal(err)
	}
	want := td.fingerprint()
	shipped, _ := dataFS.ReadFile("data/model.bin")
	_, got, err := decodeModel(shipped)
	if *updateModel && (err != nil || got != want) {
		c := train(td)
		b, err := encodeModel(c, want)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("data/model.bin", b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote data/model.bin (%d bytes, %d features)", len(b), len(c.vocab))
		return
	}
	if err != nil {
		t.Fatalf("data/model.bin: %v; run go test ./faq -run TestClassifierModel -update", err)
	}
	if got != want {
		t.Fatalf("data/model.bin is stale: entries, paraphrases, out-of-scope wordings or the way text is read changed; run go test ./faq -run TestClassifierModel -update")
	}
}

// A model survives its file: what is decoded classifies as what was
// trained, within the quantization of its weights.
func TestModelRoundTrip(t *testing.T) {
	c := trainWith([]example{{"医保断缴怎么补", 0}, {"医保断缴了怎么补缴", 0}, {"余额怎么查", 1}, {"医保余额怎么查", 1}, {"公积金怎么取", 2}, {"公积金", 2}},
		[]string{"a", "b", ""}, 10, 3)
	b, err := encodeModel(c, 42)
	if err != nil {
		t.Fatal(err)
	}
	d, fp, err := decodeModel(b)
	if err != nil || fp != 42 {
		t.Fatalf("decode: %v, fingerprint %d", err, fp)
	}
	if diff := cmp.Diff(c.ids, d.ids); diff != "" {
		t.Error(diff)
	}
	for _, q := range []string{"医保断了怎么补", "余额", "公积金提取"} {
		p, q2 := c.classify(q), d.classify(q)
		for k := range p {
			if p[k]-q2[k] > 0.01 || q2[k]-p[k] > 0.01 {
				t.Errorf("%q class %d: %.4f trained, %.4f decoded", q, k, p[k], q2[k])
			}
		}
	}
	if _, _, err := decodeModel([]byte("junk")); err == nil {
		t.Error("junk decoded")
	}
	// Classes follow the entries by ID, wherever they are.
	r := d.forEntries([]Entry{{ID: "b"}, {ID: "new"}, {ID: "a"}})
	if p := r.classify("余额怎么查"); argmaxP(p) != 0 {
		t.Errorf("re-ordered model picks %d for b's question: %v", argmaxP(p), p)
	}
	if p := r.classify("医保断缴怎么补"); argmaxP(p) != 2 {
		t.Errorf("re-ordered model picks %d for a's question: %v", argmaxP(p), p)
	}
}
