package faq

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// Each law's record agrees with its text: the articles run from 1 without
// a gap, and the last article's commencement clause names the record's
// effective date (or "from promulgation" when the two are one day).
func TestLawRecordsMatchTheirText(t *testing.T) {
	f := realFAQ(t)
	if len(f.Laws()) < 5 {
		t.Fatalf("%d laws", len(f.Laws()))
	}
	commence := regexp.MustCompile(`自(\d{4})年(\d{1,2})月(\d{1,2})日起施行`)
	for _, l := range f.Laws() {
		if l.Articles == 0 {
			t.Errorf("%s: no articles", l.Name)
			continue
		}
		last, ok := f.Article(Citation{l.Name, l.Articles})
		if !ok {
			t.Fatalf("%s: last article %d missing", l.Name, l.Articles)
		}
		if _, ok := f.Article(Citation{l.Name, l.Articles + 1}); ok {
			t.Errorf("%s: an article after the last", l.Name)
		}
		switch m := commence.FindStringSubmatch(last.Text); {
		case m != nil:
			d, err := ParseDate(m[1] + "-" + pad2(m[2]) + "-" + pad2(m[3]))
			if err != nil || d != l.Effective {
				t.Errorf("%s: last article says %q, record says effective %s", l.Name, m[0], l.Effective)
			}
		case strings.Contains(last.Text, "自发布之日起施行") || strings.Contains(last.Text, "自公布之日起施行"):
			if l.Effective != l.Promulgated {
				t.Errorf("%s: in force on promulgation, but effective %s ≠ promulgated %s", l.Name, l.Effective, l.Promulgated)
			}
		default:
			t.Errorf("%s: last article %d states no commencement: %q", l.Name, l.Articles, last.Text)
		}
		if k := f.Key(Citation{l.Name, 1}); k == "" || len(k) > 16 {
			t.Errorf("%s: key %q", l.Name, k)
		}
	}
	msl, ok := f.Law(LawMSL)
	if !ok || msl.Articles != 56 || msl.Effective != firstDayMSL || msl.Kind != KindLaw || msl.EnglishOfficial {
		t.Errorf("Medical Security Law record: %+v", msl)
	}
}

func pad2(s string) string {
	if len(s) == 1 {
		return "0" + s
	}
	return s
}

func TestLabelsSayWhenALawIsNotYetInForce(t *testing.T) {
	f := realFAQ(t)
	tests := []struct {
		c    Citation
		lang Lang
		day  Date
		want string
	}{
		{Citation{LawSIL, 74}, ZH, lastDayBefore, "《社会保险法》第七十四条"},
		{Citation{LawSIL, 74}, EN, firstDayMSL, "Social Insurance Law, Art. 74"},
		{Citation{LawMSL, 32}, ZH, lastDayBefore, "《医疗保障法》第三十二条（自2027年1月1日起施行，尚未施行）"},
		{Citation{LawMSL, 32}, EN, lastDayBefore, "Medical Security Law, Art. 32 (in force from January 1, 2027; not yet in force)"},
		{Citation{LawMSL, 32}, ZH, firstDayMSL, "《医疗保障法》第三十二条"},
		{Citation{LawMSL, 32}, EN, Date{2027, 1, 5}, "Medical Security Law, Art. 32"},
	}
	for _, tt := range tests {
		if got := f.Label(tt.c, tt.lang, tt.day); got != tt.want {
			t.Errorf("Label(%v, %s, %s) = %q, want %q", tt.c, tt.lang, tt.day, got, tt.want)
		}
	}
}

func TestCitationKeys(t *testing.T) {
	f := realFAQ(t)
	for _, l := range f.Laws() {
		c := Citation{l.Name, l.Articles}
		k := f.Key(c)
		if back, ok := f.ParseKey(k); !ok || back != c {
			t.Errorf("ParseKey(%q) = %v, %v; want %v", k, back, ok, c)
		}
	}
	if got := f.Key(Citation{LawSIL, 74}); got != "sil.74" {
		t.Errorf("key %q", got)
	}
	if got := f.Key(Citation{"劳动法", 1}); got != "" {
		t.Errorf("key of an unknown law %q", got)
	}
	for _, bad := range []string{"", "sil", "sil.", "sil.x", "xx.4", "sil.-1", "sil.0"} {
		if _, ok := f.ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

// Look-ups of the new law in either language find the article and quote
// it exactly; before its effective date they say it is not yet in force.
func TestMedicalSecurityLawLookups(t *testing.T) {
	f := realFAQ(t)
	ctx := context.Background()
	for _, tt := range []struct {
		q    string
		lang Lang
		art  int
	}{
		{"医疗保障法第三十二条", ZH, 32},
		{"医保法第4条", ZH, 4},
		{"《中华人民共和国医疗保障法》第十三条是什么", ZH, 13},
		{"Medical Security Law Art. 35", EN, 35},
		{"what does article 49 of the medical security law say", EN, 49},
	} {
		want, ok := f.Article(Citation{LawMSL, tt.art})
		if !ok {
			t.Fatalf("article %d missing", tt.art)
		}
		for _, day := range []Date{lastDayBefore, firstDayMSL} {
			a, err := f.Answer(ctx, Query{Text: tt.q, Lang: tt.lang, Day: day})
			if err != nil {
				t.Fatal(err)
			}
			if a.Article == nil || a.Article.Citation != (Citation{LawMSL, tt.art}) {
				t.Errorf("%q on %s: article %+v", tt.q, day, a.Article)
				continue
			}
			if !strings.Contains(a.Text, want.Text) {
				t.Errorf("%q on %s: text does not quote the article", tt.q, day)
			}
			notYet := strings.Contains(a.Text, "自2027年1月1日起施行（尚未施行）") ||
				strings.Contains(a.Text, "自2027年1月1日起施行，尚未施行")
			if notYet != day.Before(firstDayMSL) {
				t.Errorf("%q on %s: not-yet-in-force marker %v:\n%s", tt.q, day, notYet, a.Text)
			}
			if tt.lang == EN && !strings.Contains(a.Text, "unofficial translation") {
				t.Errorf("%q: English rendering not labelled unofficial:\n%s", tt.q, a.Text)
			}
		}
	}
	a, _ := f.Answer(ctx, Query{Text: "医疗保障法第五十七条", Lang: ZH, Day: firstDayMSL})
	if !a.Abstained || !strings.Contains(a.Text, "共五十六条") {
		t.Errorf("article 57: %+v", a)
	}
}

// A look-up of an article that a later or higher rule has changed says so
// in one line, citing the rule.
func TestArticleNotes(t *testing.T) {
	f := realFAQ(t)
	ctx := context.Background()
	a, err := f.Answer(ctx, Query{Text: "征缴条例第十三条", Lang: ZH, Day: testDay})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Notes) != 1 || !strings.Contains(a.Notes[0].Text, "万分之五") || a.Notes[0].Citations[0] != (Citation{LawSIL, 86}) {
		t.Fatalf("notes %+v", a.Notes)
	}
	// A note from the new law's day is shown before it, dated, and after it.
	for _, day := range []Date{lastDayBefore, firstDayMSL} {
		a, _ := f.Answer(ctx, Query{Text: "社会保险法第二十四条", Lang: ZH, Day: day})
		if len(a.Notes) != 1 || a.Notes[0].From != firstDayMSL || !strings.Contains(a.Text, "2027年1月1日") {
			t.Errorf("SIL Art. 24 on %s: notes %+v", day, a.Notes)
		}
	}
}

// Adding a law is a file and a record: an FAQ built over one more law
// answers a look-up of it, with no Go change.
func TestAddingALawNeedsNoCode(t *testing.T) {
	laws, err := dataFS.ReadFile("data/laws.json")
	if err != nil {
		t.Fatal(err)
	}
	en, err := dataFS.ReadFile("data/articles_en.json")
	if err != nil {
		t.Fatal(err)
	}
	extra := `{"key": "tst", "name": "测试条例", "full_name": "测试条例", "english": "Test Regulations",
	  "english_short": "Test Regulations", "abbr_zh": "测试条例", "abbr_en": "Test Regs", "kind": "regulation", "issuer": "国务院", "promulgated": "2027-03-01",
	  "effective": "2027-06-01", "file": "test.zh.md", "aliases_zh": ["测试条例"], "aliases_en": ["test regulation"]}`
	data := fstest.MapFS{
		"data/laws.json":        {Data: []byte(strings.TrimSuffix(strings.TrimSpace(string(laws)), "]") + "," + extra + "]")},
		"data/articles_en.json": {Data: en},
	}
	files := fstest.MapFS{
		"corpus/test.zh.md": {Data: []byte("# 测试条例\n\n## 第一条\n\n为了测试，制定本条例。\n\n## 第二条\n\n本条例自2027年6月1日起施行。\n")},
	}
	des, err := corpusFS.ReadDir("corpus")
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := corpusFS.ReadFile("corpus/" + de.Name())
		if err != nil {
			t.Fatal(err)
		}
		files["corpus/"+de.Name()] = &fstest.MapFile{Data: b}
	}
	f, err := buildFAQ(Options{}, nil, data, files)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Answer(context.Background(), Query{Text: "测试条例第一条", Lang: ZH, Day: Date{2027, 2, 1}})
	if err != nil || a.Article == nil || a.Article.Text != "为了测试，制定本条例。" {
		t.Fatalf("look-up %+v, %v", a, err)
	}
	if !strings.Contains(a.Text, "自2027年6月1日起施行") {
		t.Errorf("no status line:\n%s", a.Text)
	}
	if got := f.Label(Citation{"测试条例", 2}, EN, Date{2027, 7, 1}); got != "Test Regulations, Art. 2" {
		t.Errorf("label %q", got)
	}
}
