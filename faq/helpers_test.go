package faq

import "testing"

// testDay is the day most tests answer for: before the Medical Security
// Law takes effect. Tests of the change use the days either side of it.
var (
	testDay       = Date{2026, 11, 26}
	lastDayBefore = Date{2026, 12, 31}
	firstDayMSL   = Date{2027, 1, 1}
)

// testLaws parses the embedded registry afresh (loadCorpus fills in
// article counts, so tests must not share one).
func testLaws() *registry {
	raw, err := dataFS.ReadFile("data/laws.json")
	if err != nil {
		panic(err)
	}
	r, err := parseLaws(raw)
	if err != nil {
		panic(err)
	}
	return r
}

// answerOn is the entry's curated answer text on day.
func (e Entry) answerOn(day Date, lang Lang) string {
	v, _ := e.At(day)
	return v.Answer(lang)
}

// citationsOn are the entry's citations on day.
func (e Entry) citationsOn(day Date) []Citation {
	v, _ := e.At(day)
	return v.Citations
}

func mustCorpus(t testing.TB, en []byte) *corpus {
	t.Helper()
	c, err := loadCorpus(testLaws(), corpusFS, en)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ownFAQ is an FAQ over the embedded data with knowledge of its own, for
// tests that change it (realFAQ's is shared by the whole process).
func ownFAQ(t testing.TB) *FAQ {
	t.Helper()
	base := realFAQ(t)
	k := *base.knowledge
	ix := buildIndex(k.entries)
	k.index = ix
	return withOptions(&k, Options{})
}
