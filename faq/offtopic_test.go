package faq

import (
	"context"
	"testing"
)

// Questions that share words with real entries but are about something
// else: the housing fund, commercial insurance, taxes.
func TestOffTopicDeclined(t *testing.T) {
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"单位不给交公积金怎么办",
		"公积金少交了怎么补",
		"百万医疗险哪个好",
		"重疾险值得买吗",
		"Which car insurance is cheapest?",
		"what's the best travel insurance for japan",
		"housing fund contribution rate",
		"how do I file my income tax return",
	} {
		a, err := f.Answer(context.Background(), Query{Text: q, Lang: DetectLang(q), Day: testDay})
		if err != nil {
			t.Fatal(err)
		}
		if !a.Abstained || len(a.Citations) > 0 {
			t.Errorf("%q answered by %q (score %.2f), want a refusal", q, a.EntryID, a.Score)
		}
	}
	// The same words inside a real social-insurance question still work.
	a, _ := f.Answer(context.Background(), Query{Text: "医保断缴了还能补吗", Lang: ZH, Day: testDay})
	if a.Abstained {
		t.Error("a plain back-payment question was declined")
	}
}
