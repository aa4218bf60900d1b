package faq

import (
	"context"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Related lists entries near the given one without calling the LLM: the
// "related questions" button must not wait for a phrasing it throws away.
func TestRelated(t *testing.T) {
	fake, srv := newFakeLLM(t, content(`{"answer": "x"}`))
	f, err := New(Options{LLM: &LLMConfig{BaseURL: srv.URL + "/v1", APIKey: "k", Model: "m", Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	got := f.Related("backpay-overview", ZH)
	if len(got) == 0 || len(got) > 3 || slices.Contains(got, "backpay-overview") {
		t.Errorf("Related(backpay-overview) = %v", got)
	}
	for _, id := range got {
		if _, ok := f.Entry(id); !ok {
			t.Errorf("Related lists unknown entry %q", id)
		}
	}
	if got := f.Related("no-such-entry", ZH); got != nil {
		t.Errorf("Related(unknown) = %v", got)
	}
	if len(fake.bodies) != 0 {
		t.Errorf("Related called the LLM %d times", len(fake.bodies))
	}
	if s := f.Stats(); s.Questions != 0 || s.LLMCalls != 0 {
		t.Errorf("Related counted as a question: %+v", s)
	}
}

func TestRelatedMatchesAnswer(t *testing.T) {
	f := realFAQ(t)
	some := 0
	for _, e := range f.Entries() {
		for _, lang := range []Lang{ZH, EN} {
			got := f.Related(e.ID, lang)
			if slices.Contains(got, e.ID) || len(got) > 3 {
				t.Errorf("Related(%s, %s) = %v", e.ID, lang, got)
			}
			if len(got) > 0 {
				some++
			}
			a, err := f.Answer(context.Background(), Query{Text: e.Question(lang), Lang: lang, Day: testDay})
			if err != nil {
				t.Fatal(err)
			}
			if a.EntryID != e.ID {
				continue
			}
			if diff := cmp.Diff(a.Related, got); diff != "" {
				t.Errorf("Related(%s, %s) differs from Answer's (-answer +related):\n%s", e.ID, lang, diff)
			}
		}
	}
	if some == 0 {
		t.Error("no entry has related entries")
	}
}

// The English article renderings are part of the product: a failure to
// read or parse them is an error, not an FAQ without English.
func TestNewFailsWithoutEnglishArticles(t *testing.T) {
	good, err := dataFS.ReadFile("data/articles_en.json")
	if err != nil {
		t.Fatal(err)
	}
	laws, err := dataFS.ReadFile("data/laws.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, en := range map[string]*fstest.MapFile{
		"missing": nil,
		"empty":   {Data: nil},
		"broken":  {Data: []byte(`{"社会保险法": `)},
	} {
		fsys := fstest.MapFS{"data/laws.json": {Data: laws}}
		if en != nil {
			fsys["data/articles_en.json"] = en
		}
		if _, err := buildFAQ(Options{}, nil, fsys, corpusFS); err == nil {
			t.Errorf("%s articles_en.json: no error", name)
		}
	}
	fsys := fstest.MapFS{"data/laws.json": {Data: laws}, "data/articles_en.json": {Data: good}}
	if _, err := buildFAQ(Options{}, nil, fsys, corpusFS); err != nil {
		t.Errorf("good articles_en.json: %v", err)
	}
}
