package faq

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEmbeddedCorpusMatchesShared(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "corpus")
	shared, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("shared corpus not available: %v", err)
	}
	embedded, err := corpusFS.ReadDir("corpus")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range embedded {
		names[e.Name()] = true
	}
	for _, e := range shared {
		if !strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		want, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := corpusFS.ReadFile("corpus/" + e.Name())
		if err != nil {
			t.Errorf("%s: in shared corpus but not embedded", e.Name())
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%s: embedded copy differs from %s", e.Name(), dir)
		}
		delete(names, e.Name())
	}
	for n := range names {
		t.Errorf("%s: embedded but not in the shared corpus", n)
	}
}

func TestCorpusText(t *testing.T) {
	c := mustCorpus(t, nil)
	a74 := c.articles[Citation{LawSIL, 74}]
	if !strings.HasPrefix(a74.Text, "社会保险经办机构通过业务经办、统计、调查获取社会保险工作所需的数据") {
		t.Errorf("Art. 74 starts %q", a74.Text[:60])
	}
	if a74.Chapter != "第九章 社会保险经办" {
		t.Errorf("Art. 74 chapter %q", a74.Chapter)
	}
	for _, a := range c.articles {
		if strings.Contains(a.Text, "<!--") || strings.Contains(a.Text, "-->") || strings.Contains(a.Text, "#") {
			t.Errorf("%v: markup left in text: %q", a.Citation, a.Text)
		}
	}
	a98 := c.articles[Citation{LawSIL, 98}]
	if a98.Text != "本法自2011年7月1日起施行。" {
		t.Errorf("Art. 98 = %q", a98.Text)
	}
	jb32 := c.articles[Citation{LawHandling, 32}]
	if jb32 == nil || !strings.Contains(jb32.Text, "免费") {
		t.Errorf("经办条例 Art. 32 = %+v", jb32)
	}
	if ch := c.articles[Citation{LawHandling, 1}].Chapter; ch != "第一章 总 则" {
		t.Errorf("经办条例 Art. 1 chapter %q", ch)
	}
	a4 := c.articles[Citation{LawSIL, 4}]
	if a4.Text != "中华人民共和国境内的用人单位和个人依法缴纳社会保险费，有权查询缴费记录、个人权益记录，要求社会保险经办机构提供社会保险咨询等相关服务。\n个人依法享受社会保险待遇，有权监督本单位为其缴费情况。" {
		t.Errorf("Art. 4 = %q", a4.Text)
	}
}

func TestOfficialEnglish(t *testing.T) {
	c := mustCorpus(t, nil)
	for n := 1; n <= 3; n++ {
		a := c.articles[Citation{LawSIL, n}]
		if !a.Official || a.English == "" || a.OfficialParas != 1 {
			t.Errorf("Art. %d: official=%v paras=%d english=%q", n, a.Official, a.OfficialParas, a.English)
		}
	}
	a4 := c.articles[Citation{LawSIL, 4}]
	if !strings.HasPrefix(a4.English, "Employing entities and individuals") || strings.Contains(a4.English, "not found") {
		t.Errorf("Art. 4 English = %q", a4.English)
	}
	if a4.OfficialParas != 1 || a4.Official {
		t.Errorf("Art. 4: official=%v paras=%d; want only para 1 official", a4.Official, a4.OfficialParas)
	}
	if a := c.articles[Citation{LawSIL, 5}]; a.Official || a.OfficialParas != 0 {
		t.Errorf("Art. 5 claims an official translation")
	}
}

func TestOfficialEnglishWithUnofficialPara2(t *testing.T) {
	en := []byte(`{"社会保险法": {"4": {"text": "P1 ours.\nIndividuals are entitled to supervise the payments made by their employer.", "official": false},
		"74": {"text": "Agency data.", "official": false}}}`)
	c, err := loadCorpus(testLaws(), corpusFS, en)
	if err != nil {
		t.Fatal(err)
	}
	a4 := c.articles[Citation{LawSIL, 4}]
	paras := strings.Split(a4.English, "\n")
	if len(paras) != 2 || !strings.HasPrefix(paras[0], "Employing entities") || !strings.HasPrefix(paras[1], "Individuals are entitled") {
		t.Errorf("Art. 4 English = %q", a4.English)
	}
	if a4.Official || a4.OfficialParas != 1 {
		t.Errorf("Art. 4: official=%v paras=%d", a4.Official, a4.OfficialParas)
	}
	f := realFAQ(t)
	l, _ := f.corpus.laws.law(LawSIL)
	text := f.articleText(l, a4, EN, testDay, nil)
	if !strings.Contains(text, "official translation") || !strings.Contains(text, "（英文为非官方译文 / unofficial translation）") {
		t.Errorf("Art. 4 rendering lacks labels:\n%s", text)
	}
	if strings.Index(text, "Employing entities") > strings.Index(text, "Individuals are entitled") {
		t.Errorf("paragraph order wrong:\n%s", text)
	}
	if a := c.articles[Citation{LawSIL, 74}]; a.English != "Agency data." || a.Official {
		t.Errorf("Art. 74 = %+v", a)
	}
	if _, err := loadCorpus(testLaws(), corpusFS, []byte(`{"社会保险法": {"99": {"text": "x"}}}`)); err == nil {
		t.Error("rendering of a missing article accepted")
	}
}

func TestZHNumbers(t *testing.T) {
	for n, s := range map[int]string{1: "一", 10: "十", 12: "十二", 20: "二十", 74: "七十四", 98: "九十八", 100: "一百", 103: "一百零三", 110: "一百一十", 120: "一百二十"} {
		if got := zhNumber(n); got != s {
			t.Errorf("zhNumber(%d) = %q, want %q", n, got, s)
		}
		if got, ok := parseZHNumber(s); !ok || got != n {
			t.Errorf("parseZHNumber(%q) = %d, %v", s, got, ok)
		}
	}
	if _, ok := parseZHNumber("七x"); ok {
		t.Error("junk parsed")
	}
}

func TestDetectLang(t *testing.T) {
	for s, want := range map[string]Lang{"医保": ZH, "hello": EN, "Article 74 是什么": ZH, "": EN, "12393": EN} {
		if got := DetectLang(s); got != want {
			t.Errorf("DetectLang(%q) = %s", s, got)
		}
	}
}
