package faq

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

//go:embed corpus/*.md
var corpusFS embed.FS

// The data files are required; naming them makes a missing one a build
// error rather than a surprise at startup.
//
//go:embed data/entries.json data/articles_en.json data/laws.json data/paraphrases.json data/out_of_scope.json data/model.bin
var dataFS embed.FS

var (
	htmlComment   = regexp.MustCompile(`(?s)<!--.*?-->`)
	zhArticleHead = regexp.MustCompile(`^## (?:〔([^〕]+)〕)?第([零〇一二两三四五六七八九十百千]+)条\s*$`)
	zhChapterHead = regexp.MustCompile(`^# (?:〔[^〕]+〕)?(第[零〇一二三四五六七八九十]+章.*)$`)
	zhLawHead     = regexp.MustCompile(`^# 《([^》]+)》\s*$`)
	enArticleHead = regexp.MustCompile(`^## Article (\d+)\s*$`)
	spaces        = regexp.MustCompile(`\s+`)
)

// corpus is the parsed legal text, addressable by citation, with the
// registry of the laws it holds.
type corpus struct {
	laws     *registry
	articles map[Citation]*Article
}

// loadCorpus parses the Chinese text of every law in the registry, then
// attaches English: the official translation where the corpus has it, the
// unofficial renderings in articlesEN otherwise. A nil articlesEN attaches
// no renderings (tests of the Chinese parsing use that); New always passes
// the embedded file.
func loadCorpus(reg *registry, files fs.FS, articlesEN []byte) (*corpus, error) {
	c := &corpus{laws: reg, articles: map[Citation]*Article{}}
	// Several laws may share a file (the three regulations do); a file
	// is parsed once, and its unprefixed headings belong to its only law.
	byFile := map[string][]*Law{}
	var order []string
	for _, l := range reg.laws {
		if byFile[l.File] == nil {
			order = append(order, l.File)
		}
		byFile[l.File] = append(byFile[l.File], l)
	}
	for _, file := range order {
		src, err := fs.ReadFile(files, "corpus/"+file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		def := ""
		if ls := byFile[file]; len(ls) == 1 {
			def = ls[0].Name
		}
		if err := c.parseZH(string(src), def, file); err != nil {
			return nil, fmt.Errorf("parse %s: %w", file, err)
		}
	}
	for _, l := range reg.laws {
		if err := c.countArticles(l); err != nil {
			return nil, err
		}
	}
	unofficial := map[string]map[string]struct {
		Text     string `json:"text"`
		Official bool   `json:"official"`
	}{}
	if len(articlesEN) > 0 {
		if err := json.Unmarshal(articlesEN, &unofficial); err != nil {
			return nil, fmt.Errorf("parse articles_en.json: %w", err)
		}
	}
	for law, arts := range unofficial {
		if _, ok := reg.law(law); !ok {
			return nil, fmt.Errorf("articles_en.json: unknown law %q", law)
		}
		for num, r := range arts {
			n, err := strconv.Atoi(num)
			if err != nil {
				return nil, fmt.Errorf("articles_en.json: %s article %q: %w", law, num, err)
			}
			a, ok := c.articles[Citation{law, n}]
			if !ok {
				return nil, fmt.Errorf("articles_en.json: %s has no article %d", law, n)
			}
			a.English = strings.TrimSpace(r.Text)
		}
	}
	for _, l := range reg.laws {
		if l.EnglishFile == "" {
			continue
		}
		official, err := fs.ReadFile(files, "corpus/"+l.EnglishFile)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", l.EnglishFile, err)
		}
		if err := c.attachOfficial(l.Name, parseEN(string(official))); err != nil {
			return nil, fmt.Errorf("%s: %w", l.EnglishFile, err)
		}
	}
	for _, l := range reg.laws {
		for _, n := range l.notes {
			own := Citation{l.Name, n.Article}
			for _, s := range append([]Citation{own}, n.See...) {
				if _, ok := c.articles[s]; !ok {
					return nil, fmt.Errorf("laws.json: a note on %s article %d names %s article %d, which the corpus does not have",
						l.Name, n.Article, s.Law, s.Article)
				}
			}
			for _, text := range []string{n.ZH, n.EN} {
				named, ok := reg.proseCitations(text, "")
				if !ok {
					return nil, fmt.Errorf("laws.json: a note on %s article %d names a law that is not in laws.json, or an article without its law", l.Name, n.Article)
				}
				for _, s := range named {
					if s != own && !slices.Contains(n.See, s) {
						return nil, fmt.Errorf("laws.json: a note on %s article %d names %s article %d without listing it in see", l.Name, n.Article, s.Law, s.Article)
					}
				}
			}
		}
	}
	return c, nil
}

// countArticles sets l.Articles and checks that the law's articles run
// from 1 without a gap: a missing article is a broken copy.
func (c *corpus) countArticles(l *Law) error {
	n := 0
	for cit := range c.articles {
		if cit.Law == l.Name {
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%s: no articles in %s", l.Name, l.File)
	}
	for i := 1; i <= n; i++ {
		if _, ok := c.articles[Citation{l.Name, i}]; !ok {
			return fmt.Errorf("%s: article %d missing (%d articles found)", l.Name, i, n)
		}
	}
	l.Articles = n
	return nil
}

// attachOfficial puts the official English paragraphs in front of the
// articles of law they translate.
func (c *corpus) attachOfficial(law string, offParas map[int][]string) error {
	for n, paras := range offParas {
		a, ok := c.articles[Citation{law, n}]
		if !ok {
			return fmt.Errorf("no article %d", n)
		}
		zhParas := strings.Split(a.Text, "\n")
		rest := ""
		if len(paras) < len(zhParas) && a.English != "" {
			// The unofficial rendering may cover the whole article or only
			// the paragraphs the official text lacks.
			un := strings.Split(a.English, "\n")
			if len(un) == len(zhParas) {
				un = un[len(paras):]
			}
			rest = strings.Join(un, "\n")
		}
		a.English = strings.Join(paras, "\n")
		a.OfficialParas = len(paras)
		if rest != "" {
			a.English += "\n" + rest
		}
		a.Official = rest == "" && len(paras) >= len(zhParas)
	}
	return nil
}

// parseZH reads "## 第X条" or "## 〔条例名〕第X条" sections of file. law is
// the law for unprefixed headings; "# 《条例名》" headings switch it.
func (c *corpus) parseZH(src, law, file string) error {
	src = htmlComment.ReplaceAllString(src, "")
	var cur *Article
	var paras []string
	chapter := ""
	flush := func() error {
		if cur == nil {
			return nil
		}
		if len(paras) == 0 {
			return fmt.Errorf("%s article %d is empty", cur.Law, cur.Article)
		}
		cur.Text = strings.Join(paras, "\n")
		if _, dup := c.articles[cur.Citation]; dup {
			return fmt.Errorf("%s article %d appears twice", cur.Law, cur.Article)
		}
		c.articles[cur.Citation] = cur
		cur, paras = nil, nil
		return nil
	}
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if m := zhArticleHead.FindStringSubmatch(line); m != nil {
			if err := flush(); err != nil {
				return err
			}
			l := law
			if m[1] != "" {
				l = m[1]
			}
			if rec, ok := c.laws.law(l); !ok || rec.File != file {
				return fmt.Errorf("heading %q: %q is not a law of laws.json in this file", line, l)
			}
			n, ok := parseZHNumber(m[2])
			if !ok {
				return fmt.Errorf("bad article number in %q", line)
			}
			cur = &Article{Citation: Citation{Law: l, Article: n}, Chapter: chapter}
			continue
		}
		if strings.HasPrefix(line, "#") {
			if err := flush(); err != nil {
				return err
			}
			if m := zhLawHead.FindStringSubmatch(line); m != nil {
				if rec, ok := c.laws.law(m[1]); !ok || rec.File != file {
					return fmt.Errorf("heading %q: %q is not a law of laws.json in this file", line, m[1])
				}
				law, chapter = m[1], ""
			} else if m := zhChapterHead.FindStringSubmatch(line); m != nil {
				chapter = spaces.ReplaceAllString(strings.TrimSpace(m[1]), " ")
			}
			continue
		}
		if cur != nil && strings.TrimSpace(line) != "" {
			paras = append(paras, strings.TrimSpace(line))
		}
	}
	return flush()
}

// parseEN returns the paragraphs of each article of the official English
// excerpt. Bracketed editorial notes ("[Paragraph 2: not found.]") are not
// translation text and are dropped.
func parseEN(src string) map[int][]string {
	src = htmlComment.ReplaceAllString(src, "")
	out := map[int][]string{}
	cur := 0
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if m := enArticleHead.FindStringSubmatch(line); m != nil {
			cur, _ = strconv.Atoi(m[1])
			continue
		}
		if strings.HasPrefix(line, "#") {
			cur = 0
			continue
		}
		if cur == 0 || line == "" || (strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]")) {
			continue
		}
		out[cur] = append(out[cur], line)
	}
	return out
}

var zhDigits = map[rune]int{'零': 0, '〇': 0, '一': 1, '二': 2, '两': 2, '三': 3, '四': 4, '五': 5, '六': 6, '七': 7, '八': 8, '九': 9}

// parseZHNumber reads Chinese numerals up to 9999 (十二, 七十四, 一百零三,
// and the bare-digit style 一二〇).
func parseZHNumber(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	units := map[rune]int{'十': 10, '百': 100, '千': 1000}
	hasUnit := strings.ContainsAny(s, "十百千")
	total, digit := 0, -1
	for _, r := range s {
		if d, ok := zhDigits[r]; ok {
			if !hasUnit {
				total = total*10 + d
				continue
			}
			digit = d
			continue
		}
		u, ok := units[r]
		if !ok {
			return 0, false
		}
		if digit < 0 {
			digit = 1 // 十二 means 一十二
		}
		total += digit * u
		digit = -1
	}
	if hasUnit && digit > 0 {
		total += digit
	}
	return total, total > 0
}

// zhNumber writes n (1..9999) the way statutes number articles: 十二, 七十四, 一百零三.
func zhNumber(n int) string {
	if n <= 0 || n > 9999 {
		return strconv.Itoa(n)
	}
	names := []string{"零", "一", "二", "三", "四", "五", "六", "七", "八", "九"}
	units := []string{"千", "百", "十", ""}
	div := []int{1000, 100, 10, 1}
	var b strings.Builder
	zero := false
	for i, d := range div {
		v := n / d % 10
		if v == 0 {
			if b.Len() > 0 {
				zero = true
			}
			continue
		}
		if zero {
			b.WriteString("零")
			zero = false
		}
		// 十二, not 一十二, when ten leads.
		if !(v == 1 && d == 10 && b.Len() == 0) {
			b.WriteString(names[v])
		}
		b.WriteString(units[i])
	}
	return b.String()
}
