package faq

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// Colloquial wordings that are not in the curated entries, each with the
// entries that answer it well.
func TestRealEntriesTable(t *testing.T) {
	f := realFAQ(t)
	tests := []struct {
		q    string
		want []string
	}{
		{"医保断交了咋办", []string{"backpay-overview", "backpay-individual", "backpay-no-employer"}},
		{"医宝断了三个月还能补吗", []string{"backpay-overview", "backpay-how-long", "backpay-individual"}},
		{"单位忘了给我交医保，怎么补回来", []string{"backpay-employer"}},
		{"补医保要带啥", []string{"backpay-documents"}},
		{"滞纳金", []string{"employer-late-fee"}},
		{"我妈的医保卡我能拿去买药吗", []string{"buy-medicine-for-others"}},
		{"医保卡借给朋友用有事吗", []string{"lend-card"}},
		{"回老家看病能用医保吗", []string{"cross-region-settlement", "cross-region-filing"}},
		{"被车撞了医保能报吗", []string{"third-party-injury"}},
		{"生孩子的钱医保报不报", []string{"maternity-basics", "maternity-spouse", "maternity-allowance"}},
		{"失业金能领几个月", []string{"unemployment-duration-amount"}},
		{"医保局电话多少", []string{"hotlines"}},
		{"my boss won't pay my shebao", []string{"backpay-employer", "employer-refuses", "employer-complaint"}},
		{"how much is the late fee", []string{"employer-late-fee"}},
		{"can my family use my medical insurance account", []string{"family-sharing"}},
		{"lost my medical insurance card", []string{"lost-card"}},
		{"Who pays work-injury insurance?", []string{"work-injury-basics"}},
		{"I'm self-employed. Can I enrol in employee medical insurance?", []string{"self-employed-geti", "flexible-worker-join"}},
		{"medical insurence lapsed, how to back-pay", []string{"backpay-overview", "backpay-individual", "backpay-how-long"}},
		{"is checking my shebao records free", []string{"records-free"}},
	}
	for _, tt := range tests {
		lang := DetectLang(tt.q)
		a, err := f.Answer(context.Background(), Query{Text: tt.q, Lang: lang, Day: testDay})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(tt.want, a.EntryID) {
			t.Errorf("%q → %q (abstained %v, score %.2f), want one of %v", tt.q, a.EntryID, a.Abstained, a.Score, tt.want)
			continue
		}
		e, _ := f.Entry(a.EntryID)
		if a.Text != e.answerOn(testDay, lang) || len(a.Citations) != len(e.citationsOn(testDay)) {
			t.Errorf("%q: answer is not entry %s in %s", tt.q, e.ID, lang)
		}
		if slices.Contains(a.Related, a.EntryID) || len(a.Related) > 3 {
			t.Errorf("%q: related %v", tt.q, a.Related)
		}
	}
}

// The curated entries must answer in the language asked, whichever
// language the matching wording was in.
func TestRealEntriesAnswerLanguage(t *testing.T) {
	f := realFAQ(t)
	a, _ := f.Answer(context.Background(), Query{Text: "医保余额怎么查", Lang: EN, Day: testDay})
	if e, _ := f.Entry(a.EntryID); a.EntryID == "" || a.Text != e.answerOn(testDay, EN) {
		t.Errorf("zh question, en answer: %+v", a)
	}
	a, _ = f.Answer(context.Background(), Query{Text: "how to check my medical insurance balance", Lang: ZH, Day: testDay})
	if e, _ := f.Entry(a.EntryID); a.EntryID == "" || a.Text != e.answerOn(testDay, ZH) {
		t.Errorf("en question, zh answer: %+v", a)
	}
}

func TestRealArticle4Rendering(t *testing.T) {
	f := realFAQ(t)
	a, _ := f.Answer(context.Background(), Query{Text: "社会保险法第4条", Lang: ZH, Day: testDay})
	if a.Article == nil {
		t.Fatalf("not an article answer: %+v", a)
	}
	off := strings.Index(a.Text, "official translation")
	unoff := strings.Index(a.Text, "（英文为非官方译文 / unofficial translation）")
	if off < 0 || unoff < off || !strings.Contains(a.Text[off:unoff], "Employing entities") {
		t.Errorf("Art. 4 must show official para 1, then labelled unofficial para 2:\n%s", a.Text)
	}
}
