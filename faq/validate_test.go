package faq

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// reply renders an LLM reply with the given answer text and no
// citations or quotes fields to vouch for it.
func reply(t *testing.T, answer string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"answer": answer, "citations": []any{}, "quotes": []any{}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Invented citations, quotations, numbers and languages in the prose are
// caught, each under its own reason. The retrieved entry is balance-query
// (SIL 74 and Handling 32) or, for single-law cases, employer-late-fee
// (SIL 86) and abroad-medical (SIL 30).
func TestLLMRejectsInventedProse(t *testing.T) {
	const lateFeeQ = "单位拖欠社保要交滞纳金吗？"
	tests := []struct {
		name, q string
		lang    Lang
		answer  string
		reason  string
	}{
		// Citations.
		{"right number, wrong law", balanceQ, ZH, "根据《社会保险经办条例》第七十四条，可以免费查询。", "bad_citation"},
		{"second number of a list", lateFeeQ, ZH, "依照《社会保险法》第八十六、九十条，单位要交滞纳金。", "bad_citation"},
		{"list with 条 on each", lateFeeQ, ZH, "依照《社会保险法》第八十六条和第九十条，单位要交滞纳金。", "bad_citation"},
		{"law then bare number", lateFeeQ, ZH, "社会保险法90条规定单位要交滞纳金。", "bad_citation"},
		{"range", lateFeeQ, ZH, "《社会保险法》第八十四条至第八十六条规定了滞纳金。", "bad_citation"},
		{"english list", lateFeeQ, EN, "Articles 86 and 90 of the Social Insurance Law require a late fee.", "bad_citation"},
		{"english range", lateFeeQ, EN, "Under Arts. 84-86, the employer pays a late fee.", "bad_citation"},
		{"english law after", balanceQ, EN, "Art. 74 of the handling regulation makes queries free.", "bad_citation"},
		{"unknown title", lateFeeQ, ZH, "根据《劳动合同法》，单位要交滞纳金。", "bad_citation"},
		{"unknown law without title", lateFeeQ, ZH, "根据劳动合同法第八十六条，单位要交滞纳金。", "bad_citation"},
		{"unknown english law", lateFeeQ, EN, "Under the Labour Contract Law, the employer pays a late fee.", "bad_citation"},
		{"unknown english law after article", lateFeeQ, EN, "Article 86 of the labour contract law says the employer pays a late fee.", "bad_citation"},
		{"bare number, two laws retrieved", balanceQ, ZH, "第七十四条规定，查询是免费的。", "bad_citation"},
		// Quotations in the prose.
		{"invented quote", lateFeeQ, ZH, "法律规定“用人单位逾期缴纳的按日加收千分之二的罚款”。", "bad_quote"},
		{"invented corner quote", lateFeeQ, ZH, "法律规定「用人单位逾期缴纳的应当加倍处罚」。", "bad_quote"},
		{"invented english quote", lateFeeQ, EN, `The law says "employers pay double when they are late".`, "bad_quote"},
		{"invented single quote", lateFeeQ, EN, "The law says ‘employers pay double when they are late’.", "bad_quote"},
		// Language.
		{"english for a chinese question", lateFeeQ, ZH, "Yes, the employer pays a late fee of 0.05% per day.", "wrong_language"},
		{"chinese for an english question", lateFeeQ, EN, "要交，按日加收万分之五的滞纳金。", "wrong_language"},
		{"mostly english with one han word", lateFeeQ, ZH, "Yes, the employer pays a 滞纳金 from the day the payment fell due.", "wrong_language"},
		// Numbers.
		{"invented hotline", lateFeeQ, ZH, "单位要交滞纳金，可拨打12345咨询。", "bad_number"},
		{"invented rate", lateFeeQ, EN, "The employer pays a late fee of 0.08% per day.", "bad_number"},
		{"invented amount", lateFeeQ, EN, "The employer pays a late fee of 1,000 yuan.", "bad_number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newFakeLLM(t, content(reply(t, tt.answer)))
			f, _ := llmFAQ(t, srv, time.Second)
			a, err := f.Answer(context.Background(), Query{Text: tt.q, Lang: tt.lang, Day: testDay})
			if err != nil {
				t.Fatal(err)
			}
			e, ok := f.Entry(a.EntryID)
			if !ok || a.Phrased || a.Text != e.answerOn(testDay, tt.lang) {
				t.Errorf("phrasing accepted: %+v", a)
			}
			if s := f.Stats(); s.LLMFallbacks[tt.reason] != 1 {
				t.Errorf("fallbacks %v, want one %q", s.LLMFallbacks, tt.reason)
			}
		})
	}
}

// Faithful phrasings pass: citations of the retrieved articles in either
// language, quotes copied from the law, numbers from the sources.
func TestLLMAcceptsFaithfulProse(t *testing.T) {
	const lateFeeQ = "单位拖欠社保要交滞纳金吗？"
	tests := []struct {
		name, q string
		lang    Lang
		answer  string
	}{
		{"two laws, each named", balanceQ, ZH, "《社会保险法》第七十四条和《社会保险经办条例》第三十二条都规定查询免费，可拨打12393。"},
		{"alias", balanceQ, ZH, "按社保法第74条和经办条例第32条，查询余额不收费。"},
		{"english, law after", balanceQ, EN, "Art. 74 of the Social Insurance Law and Art. 32 of the handling regulation make queries free. Call 12393."},
		{"english, law before", balanceQ, EN, "The Social Insurance Law, Art. 74, makes it free; so does Art. 32 of the Regulations on Social Insurance Handling."},
		{"english names the law in chinese", balanceQ, EN, "Under 《社会保险法》 Art. 74, queries are free."},
		{"bare number, one law", lateFeeQ, ZH, "第八十六条规定，单位要按日加收万分之五的滞纳金。"},
		{"quote from the law", lateFeeQ, ZH, "法律规定“自欠缴之日起，按日加收万分之五的滞纳金”。"},
		{"short quoted term", lateFeeQ, ZH, "这叫“滞纳金”，按日加收万分之五。"},
		{"rate from the reference", lateFeeQ, EN, "Yes: 0.05% per day from the day the payment fell due."},
		{"ordinal without 条", lateFeeQ, ZH, "第一，单位要补足；第二，按日加收万分之五的滞纳金。"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newFakeLLM(t, content(reply(t, tt.answer)))
			f, _ := llmFAQ(t, srv, time.Second)
			a, err := f.Answer(context.Background(), Query{Text: tt.q, Lang: tt.lang, Day: testDay})
			if err != nil {
				t.Fatal(err)
			}
			if !a.Phrased || a.Text != tt.answer {
				t.Errorf("rejected (fallbacks %v): %+v", f.Stats().LLMFallbacks, a)
			}
		})
	}
}

// Every curated answer, returned by the model word for word, passes: the
// checks must not reject the very text the model was told to rephrase.
func TestValidateAcceptsCuratedAnswers(t *testing.T) {
	f := realFAQ(t)
	for _, e := range f.Entries() {
		arts := make([]*Article, 0, len(e.citationsOn(testDay)))
		for _, c := range e.citationsOn(testDay) {
			arts = append(arts, f.corpus.articles[c])
		}
		for _, lang := range []Lang{ZH, EN} {
			_, text, r, ok := testLaws().validate(reply(t, e.answerOn(testDay, lang)), lang, e.answerOn(testDay, lang), arts)
			if !ok || text != e.answerOn(testDay, lang) {
				t.Errorf("%s (%s): rejected as %s", e.ID, lang, r)
			}
		}
	}
}

func TestProseCitations(t *testing.T) {
	tests := []struct {
		text, def string
		want      []Citation
	}{
		{"《社会保险法》第四条和第七十四条规定", "", []Citation{{LawSIL, 4}, {LawSIL, 74}}},
		{"第六十三、九十条", LawSIL, []Citation{{LawSIL, 63}, {LawSIL, 90}}},
		{"社会保险法90条", "", []Citation{{LawSIL, 90}}},
		{"《社会保险法》第二十三条、第二十五条；征缴条例第十六条", "", []Citation{{LawSIL, 23}, {LawSIL, 25}, {LawCollection, 16}}},
		{"第六十三条至第六十五条", LawSIL, []Citation{{LawSIL, 63}, {LawSIL, 64}, {LawSIL, 65}}},
		{"Articles 63 and 90", LawSIL, []Citation{{LawSIL, 63}, {LawSIL, 90}}},
		{"Arts. 4, 74 and 86 of the Social Insurance Law", "", []Citation{{LawSIL, 4}, {LawSIL, 74}, {LawSIL, 86}}},
		{"Social Insurance Law Art. 74 … Art. 16 of the collection regulation", "", []Citation{{LawSIL, 74}, {LawCollection, 16}}},
		{"Arts. 63 to 65", LawSIL, []Citation{{LawSIL, 63}, {LawSIL, 64}, {LawSIL, 65}}},
		{"有两条途径：第一，打12393；第四条，写信。", LawSIL, []Citation{{LawSIL, 4}}},
		{"第四条，三条途径都可以", LawSIL, []Citation{{LawSIL, 4}}},
		{"交满15年，可拨打12393", "", nil},
	}
	for _, tt := range tests {
		got, ok := testLaws().proseCitations(tt.text, tt.def)
		if !ok {
			t.Errorf("testLaws().proseCitations(%q) rejected", tt.text)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("testLaws().proseCitations(%q) (-want +got):\n%s", tt.text, diff)
		}
	}
	for _, text := range []string{"第四条", "《国家医保服务平台》", "依照劳动法第三条", "Article 4", "Art. 4 of the Labour Law"} {
		if got, ok := testLaws().proseCitations(text, ""); ok {
			t.Errorf("testLaws().proseCitations(%q) = %v, want rejection", text, got)
		}
	}
}
