package faq

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// inflate derives k-1 variants of every entry, as a stand-in for a corpus
// k times larger: reworded questions that mix in another entry's wording,
// so the vocabulary and postings lists grow the way a real larger FAQ's
// would.
func inflate(entries []Entry, k int) []Entry {
	zhPrefix := []string{"请问", "我想问一下", "麻烦问下", "咨询一下", "问个问题", "想了解", "老家那边", "我妈想知道"}
	enPrefix := []string{"Quick question:", "Please tell me", "I want to know", "My mother asks", "Hello,", "Can you explain"}
	out := slices.Clone(entries)
	n := len(entries)
	for v := 1; v < k; v++ {
		for i, e := range entries {
			other := entries[(i+v)%n]
			c := e
			c.ID = fmt.Sprintf("%s-v%d", e.ID, v)
			c.QuestionsZH, c.QuestionsEN = nil, nil
			for j, q := range e.QuestionsZH {
				c.QuestionsZH = append(c.QuestionsZH, zhPrefix[(v+j)%len(zhPrefix)]+q)
			}
			if q := other.Question(ZH); q != "" {
				c.QuestionsZH = append(c.QuestionsZH, e.Question(ZH)+"，另外"+q)
			}
			for j, q := range e.QuestionsEN {
				c.QuestionsEN = append(c.QuestionsEN, enPrefix[(v+j)%len(enPrefix)]+" "+q)
			}
			if q := other.Question(EN); q != "" {
				c.QuestionsEN = append(c.QuestionsEN, e.Question(EN)+" Also, "+q)
			}
			c.Versions = slices.Clone(e.Versions)
			c.Versions[0].AnswerZH += "（变体" + fmt.Sprint(v) + "）"
			c.Versions[0].AnswerEN += fmt.Sprintf(" (variant %d)", v)
			out = append(out, c)
		}
	}
	return out
}

func benchQuestions(b *testing.B) []evalItem {
	items := loadEval(b, devSet)
	return append(items, loadEval(b, extraSet)...)
}

func BenchmarkAnswer(b *testing.B) {
	base := realFAQ(b)
	items := benchQuestions(b)
	for _, scale := range []int{1, 20} {
		b.Run(fmt.Sprintf("entries=x%d", scale), func(b *testing.B) {
			f := base
			if scale > 1 {
				var err error
				f, err = newFAQ(Options{}, inflate(base.Entries(), scale))
				if err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				it := items[i%len(items)]
				start := time.Now()
				if _, err := f.Answer(ctx, Query{Text: it.Q, Lang: it.Lang, Day: testDay}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			}
			b.ReportMetric(float64(len(f.Entries())), "entries")
		})
	}
}

func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		if _, err := New(Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// longMessage is an n-character question (Telegram's limit is 4096):
// common domain words between many distinct Han characters, so that
// nearly every unigram is new and the per-character work shows.
func longMessage(n int) string {
	words := []rune("医保断缴补缴滞纳金单位社保报销余额查询异地就医")
	out := make([]rune, 0, n)
	for i := 0; len(out) < n; i++ {
		if i%4 == 0 {
			out = append(out, words[i/4%len(words)])
			continue
		}
		out = append(out, rune(0x4E00+(i*7919)%20000))
	}
	return string(out)
}

// BenchmarkAnswerLongMessage shows the cost of a question grows linearly
// with its length: compare len=1024 and len=4096 (about 4x, not 16x).
func BenchmarkAnswerLongMessage(b *testing.B) {
	f := realFAQ(b)
	for _, n := range []int{1024, 4096} {
		q := longMessage(n)
		b.Run(fmt.Sprintf("len=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Answer(context.Background(), Query{Text: q, Lang: ZH, Day: testDay}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
