package faq

import (
	"context"
	"testing"
)

// Without a law name, "第N条" asks for an article only when the question
// is the bare reference; in ordinary speech it is an ordinal.
func TestArticleRequestBareReferenceOnly(t *testing.T) {
	for _, tt := range []struct {
		q    string
		want Citation
	}{
		{"第74条", Citation{LawSIL, 74}},
		{"第七十四条是什么", Citation{LawSIL, 74}},
		{"第4条的内容", Citation{LawSIL, 4}},
		{"第74条说了什么", Citation{LawSIL, 74}},
		{"请问第八十六条是怎么规定的？", Citation{LawSIL, 86}},
		{"第二条是什么意思", Citation{LawSIL, 2}},
		{"Article 74", Citation{LawSIL, 74}},
		{"art. 74?", Citation{LawSIL, 74}},
		{"What's Article 74?", Citation{LawSIL, 74}},
		{"What does Art. 86 say?", Citation{LawSIL, 86}},
		// A named law keeps the article whatever surrounds it.
		{"社会保险法第4条", Citation{LawSIL, 4}},
		{"经办条例第32条", Citation{LawHandling, 32}},
		{"社会保险法第二条是我说的那个吗", Citation{LawSIL, 2}},
		{"Article 74 of the Social Insurance Law", Citation{LawSIL, 74}},
		{"I need Article 16 of the collection regulations", Citation{LawCollection, 16}},
	} {
		got, ok := testLaws().articleRequest(tt.q)
		if !ok || got != tt.want {
			t.Errorf("testLaws().articleRequest(%q) = %v, %v; want %v", tt.q, got, ok, tt.want)
		}
	}
	for _, q := range []string{
		"有第二条办法吗",
		"你说的第二条是什么意思",
		"第一条路是投诉吗",
		"第二条途径要带身份证吗",
		"我选第一条，能补缴吗",
		"Is there an article 2 option for back-pay?",
		"The art 3 class asked about medical insurance",
		"Article 74 of the Labour Contract Law",
	} {
		if c, ok := testLaws().articleRequest(q); ok {
			t.Errorf("testLaws().articleRequest(%q) = %v, want retrieval", q, c)
		}
	}
}

// An ordinary question with an ordinal gets a retrieval answer (or a
// refusal), never the text of an article.
func TestOrdinalQuestionNotAnArticle(t *testing.T) {
	f := testFAQ(t, Options{})
	for _, q := range []string{"有第二条办法吗", "你说的第二条是什么意思", "第一条路是投诉吗"} {
		a, err := f.Answer(context.Background(), Query{Text: q, Lang: ZH, Day: testDay})
		if err != nil {
			t.Fatal(err)
		}
		if a.Article != nil {
			t.Errorf("%q answered with the text of %v", q, a.Article.Citation)
		}
	}
	if s := f.Stats(); s.ArticleAnswers != 0 {
		t.Errorf("%d article answers", s.ArticleAnswers)
	}
}
