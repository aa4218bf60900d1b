package faq

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Law is one statute or regulation the corpus holds. Its identity is data
// (data/laws.json) next to its verbatim text (corpus/File): adding a law
// means adding a file and a record, and no Go code.
type Law struct {
	Key             string // ASCII prefix of citation keys ("sil"); fits callback data
	Name            string // short Chinese name, as citations name it ("社会保险法")
	FullName        string // 中华人民共和国社会保险法
	English         string // full English name
	EnglishShort    string // English name in citation labels
	AbbrZH, AbbrEN  string // for buttons: 社保法, SIL; both are also names text may use
	EnglishOfficial bool   // false: English is our own rendering ("unofficial translation")
	Kind            string // KindLaw or KindRegulation
	Issuer          string // 全国人民代表大会常务委员会, 国务院
	Promulgated     Date
	PromulgationDoc string // 中华人民共和国主席令第八十号; "" when not verified
	Amended         Date   // latest amendment the corpus text reflects; zero if none
	Effective       Date
	Repealed        Date // zero while not repealed
	File            string
	EnglishFile     string // official English translation, if the corpus has one
	Articles        int    // number of articles in the corpus

	aliasesZH, aliasesEN, lookupEN []string
	notes                          []ArticleNote
}

// Law kinds.
const (
	KindLaw        = "law"        // 法律, adopted by the NPC or its Standing Committee
	KindRegulation = "regulation" // 行政法规, issued by the State Council
)

// Status is where a law stands on a day.
type Status int

const (
	InForce    Status = iota
	NotYet            // promulgated, not yet in force
	NoLonger          // repealed
	statusNone        // no such law
)

// StatusOn is the law's status on day d.
func (l Law) StatusOn(d Date) Status {
	switch {
	case d.Before(l.Effective):
		return NotYet
	case !l.Repealed.IsZero() && !d.Before(l.Repealed):
		return NoLonger
	}
	return InForce
}

// Label is the law's name for people: 《社会保险法》, or "Social Insurance
// Law".
func (l Law) Label(lang Lang) string {
	if lang == EN {
		return l.EnglishShort
	}
	return "《" + l.Name + "》"
}

// ArticleNote is a caveat shown with an article: a later or higher rule
// that changes it (征缴暂行条例 Art. 13's 2‰ against SIL Art. 86), or a law
// that takes over its subject from a date (SIL Art. 24 from the Medical
// Security Law's effective date). It is our own words, never statute text.
type ArticleNote struct {
	Article int
	From    Date       // zero: always; otherwise the note applies from this day
	See     []Citation // the articles the note rests on
	ZH, EN  string
}

// Text is the note in lang.
func (n ArticleNote) Text(lang Lang) string {
	if lang == EN {
		return n.EN
	}
	return n.ZH
}

type lawJSON struct {
	Key             string   `json:"key"`
	Name            string   `json:"name"`
	FullName        string   `json:"full_name"`
	English         string   `json:"english"`
	EnglishShort    string   `json:"english_short"`
	AbbrZH          string   `json:"abbr_zh"`
	AbbrEN          string   `json:"abbr_en"`
	EnglishOfficial bool     `json:"english_official"`
	Kind            string   `json:"kind"`
	Issuer          string   `json:"issuer"`
	Promulgated     Date     `json:"promulgated"`
	PromulgationDoc string   `json:"promulgation_doc"`
	Amended         Date     `json:"amended"`
	Effective       Date     `json:"effective"`
	Repealed        Date     `json:"repealed"`
	File            string   `json:"file"`
	EnglishFile     string   `json:"english_file"`
	AliasesZH       []string `json:"aliases_zh"`
	AliasesEN       []string `json:"aliases_en"`
	LookupEN        []string `json:"lookup_en"`
	ArticleNotes    []struct {
		Article int        `json:"article"`
		From    Date       `json:"from"`
		See     []Citation `json:"see"`
		ZH      string     `json:"zh"`
		EN      string     `json:"en"`
	} `json:"article_notes"`
}

// registry is the set of laws, with the ways people and models name them.
type registry struct {
	laws   []*Law // in display order
	byName map[string]*Law
	byKey  map[string]*Law
	// zhAliases are Chinese names, longest first so that 社会保险经办条例
	// is not read as 社会保险 + something.
	zhAliases []zhAlias
	// enNames are English names strict enough for prose ("handling
	// regulations", not "handling"); enLookup adds the looser words an
	// article request may use ("Art. 16 of the collection regs").
	enNames, enLookup []enAlias
}

type zhAlias struct{ alias, law string }

type enAlias struct {
	re  *regexp.Regexp
	law string
	n   int    // length of the phrase: the longest match names the law
	lit string // the phrase's first word, lower case: a text without it cannot match
}

// in reports whether the alias occurs in s; lower is s in lower case.
func (a enAlias) in(s, lower string) bool {
	return strings.Contains(lower, a.lit) && a.re.MatchString(s)
}

var lawKeyRE = regexp.MustCompile(`^[a-z]{1,8}$`)

// parseLaws reads data/laws.json and checks each record.
func parseLaws(raw []byte) (*registry, error) {
	var js []lawJSON
	if err := json.Unmarshal(raw, &js); err != nil {
		return nil, fmt.Errorf("parse laws.json: %w", err)
	}
	r := &registry{byName: map[string]*Law{}, byKey: map[string]*Law{}}
	for i, j := range js {
		l := &Law{
			Key: j.Key, Name: j.Name, FullName: j.FullName, English: j.English, EnglishShort: j.EnglishShort,
			AbbrZH: j.AbbrZH, AbbrEN: j.AbbrEN,
			EnglishOfficial: j.EnglishOfficial, Kind: j.Kind, Issuer: j.Issuer, Promulgated: j.Promulgated,
			PromulgationDoc: j.PromulgationDoc, Amended: j.Amended, Effective: j.Effective, Repealed: j.Repealed,
			File: j.File, EnglishFile: j.EnglishFile,
			aliasesZH: j.AliasesZH, aliasesEN: j.AliasesEN, lookupEN: j.LookupEN,
		}
		if err := checkLaw(l); err != nil {
			return nil, fmt.Errorf("laws.json record %d (%q): %w", i, j.Name, err)
		}
		if r.byName[l.Name] != nil || r.byKey[l.Key] != nil {
			return nil, fmt.Errorf("laws.json record %d: name %q or key %q used twice", i, l.Name, l.Key)
		}
		for _, n := range j.ArticleNotes {
			if n.Article <= 0 || strings.TrimSpace(n.ZH) == "" || strings.TrimSpace(n.EN) == "" || len(n.See) == 0 {
				return nil, fmt.Errorf("laws.json %s: a note needs an article, both languages and what it rests on", l.Name)
			}
			l.notes = append(l.notes, ArticleNote{Article: n.Article, From: n.From, See: n.See, ZH: n.ZH, EN: n.EN})
		}
		r.laws = append(r.laws, l)
		r.byName[l.Name], r.byKey[l.Key] = l, l
	}
	if len(r.laws) == 0 {
		return nil, fmt.Errorf("laws.json lists no law")
	}
	for _, l := range r.laws {
		names := append([]string{l.Name, l.FullName}, l.aliasesZH...)
		for _, a := range names {
			if !slices.ContainsFunc(r.zhAliases, func(z zhAlias) bool { return z.alias == a }) {
				r.zhAliases = append(r.zhAliases, zhAlias{a, l.Name})
			}
		}
		r.enNames = append(r.enNames, enAliases(append([]string{l.English, l.EnglishShort, l.AbbrEN}, l.aliasesEN...), l.Name)...)
		r.enLookup = append(r.enLookup, enAliases(l.lookupEN, l.Name)...)
	}
	slices.SortStableFunc(r.zhAliases, func(a, b zhAlias) int { return len(b.alias) - len(a.alias) })
	r.enLookup = append(r.enLookup, r.enNames...)
	for _, as := range [][]enAlias{r.enNames, r.enLookup} {
		slices.SortStableFunc(as, func(a, b enAlias) int { return b.n - a.n })
	}
	return r, nil
}

func checkLaw(l *Law) error {
	switch {
	case !lawKeyRE.MatchString(l.Key):
		return fmt.Errorf("key must be 1-8 lower-case letters")
	case l.Name == "" || l.FullName == "" || l.English == "" || l.EnglishShort == "" || l.AbbrZH == "" || l.AbbrEN == "":
		return fmt.Errorf("name, full_name, english, english_short, abbr_zh and abbr_en are required")
	case l.AbbrZH != l.Name && l.AbbrZH != l.FullName && !slices.Contains(l.aliasesZH, l.AbbrZH):
		return fmt.Errorf("abbr_zh must be one of the Chinese names, so that text using it resolves")
	case l.Kind != KindLaw && l.Kind != KindRegulation:
		return fmt.Errorf("kind must be %q or %q", KindLaw, KindRegulation)
	case l.Promulgated.IsZero() || l.Effective.IsZero():
		return fmt.Errorf("promulgated and effective dates are required")
	case l.Effective.Before(l.Promulgated):
		return fmt.Errorf("effective before promulgated")
	case !l.Repealed.IsZero() && l.Repealed.Before(l.Effective):
		return fmt.Errorf("repealed before effective")
	case l.File == "" || strings.ContainsAny(l.File, `/\`):
		return fmt.Errorf("file must name a file in corpus/")
	}
	return nil
}

// enAliases compiles English names into case-insensitive whole-phrase
// patterns that also accept a plural ("regulations").
func enAliases(phrases []string, law string) []enAlias {
	var out []enAlias
	for _, p := range phrases {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		words := strings.Fields(p)
		for i, w := range words {
			words[i] = regexp.QuoteMeta(w)
		}
		re := regexp.MustCompile(`(?i)\b` + strings.Join(words, `[\s-]+`) + `s?\b`)
		out = append(out, enAlias{re: re, law: law, n: len(p), lit: strings.Fields(p)[0]})
	}
	return out
}

// law returns the law with the short name.
func (r *registry) law(name string) (*Law, bool) {
	l, ok := r.byName[name]
	return l, ok
}

// label renders a citation for people on a day: 《社会保险法》第七十四条, or
// "Social Insurance Law, Art. 74", with the law's status when it is not in
// force that day.
func (r *registry) label(c Citation, lang Lang, day Date) string {
	l, ok := r.law(c.Law)
	if !ok {
		// Only a citation that failed validation gets here; show it as
		// given rather than hide it.
		return c.Law + " " + strconv.Itoa(c.Article)
	}
	var s string
	if lang == EN {
		s = l.EnglishShort + ", Art. " + strconv.Itoa(c.Article)
	} else {
		s = "《" + l.Name + "》第" + zhNumber(c.Article) + "条"
	}
	return s + statusNote(l, lang, day)
}

// labels renders several citations in one run, each law named once:
// 《社会保险法》第六十三条、第八十六条；《社会保险经办条例》第三十一条, or
// "Social Insurance Law, Arts. 63, 86; Regulations on Social Insurance
// Handling, Art. 31". Laws come in order of first mention.
func (r *registry) labels(cs []Citation, lang Lang, day Date) string {
	var laws []string
	arts := map[string][]int{}
	for _, c := range cs {
		if _, ok := arts[c.Law]; !ok {
			laws = append(laws, c.Law)
		}
		if !slices.Contains(arts[c.Law], c.Article) {
			arts[c.Law] = append(arts[c.Law], c.Article)
		}
	}
	parts := make([]string, 0, len(laws))
	for _, name := range laws {
		l, ok := r.law(name)
		if !ok {
			for _, n := range arts[name] {
				parts = append(parts, r.label(Citation{name, n}, lang, day))
			}
			continue
		}
		ns := arts[name]
		var b strings.Builder
		if lang == EN {
			b.WriteString(l.EnglishShort + ", Art")
			if len(ns) > 1 {
				b.WriteString("s")
			}
			b.WriteString(". ")
			for i, n := range ns {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(strconv.Itoa(n))
			}
		} else {
			b.WriteString("《" + l.Name + "》")
			for i, n := range ns {
				if i > 0 {
					b.WriteString("、")
				}
				b.WriteString("第" + zhNumber(n) + "条")
			}
		}
		b.WriteString(statusNote(l, lang, day))
		parts = append(parts, b.String())
	}
	sep := "；"
	if lang == EN {
		sep = "; "
	}
	return strings.Join(parts, sep)
}

// short is a citation short enough for a button: 社保法第七十四条, SIL Art. 74.
func (r *registry) short(c Citation, lang Lang) string {
	l, ok := r.law(c.Law)
	if !ok {
		return strconv.Itoa(c.Article)
	}
	if lang == EN {
		return l.AbbrEN + " Art. " + strconv.Itoa(c.Article)
	}
	return l.AbbrZH + "第" + zhNumber(c.Article) + "条"
}

// statusNote is what a label adds for a law not in force on day.
func statusNote(l *Law, lang Lang, day Date) string {
	if day.IsZero() {
		return ""
	}
	switch l.StatusOn(day) {
	case NotYet:
		if lang == EN {
			return " (in force from " + l.Effective.Label(EN) + "; not yet in force)"
		}
		return "（自" + l.Effective.Label(ZH) + "起施行，尚未施行）"
	case NoLonger:
		if lang == EN {
			return " (repealed on " + l.Repealed.Label(EN) + ")"
		}
		return "（已于" + l.Repealed.Label(ZH) + "废止）"
	}
	return ""
}

// key is a short ASCII form ("sil.74") that fits any messenger's
// callback data.
func (r *registry) key(c Citation) string {
	l, ok := r.law(c.Law)
	if !ok {
		return ""
	}
	return l.Key + "." + strconv.Itoa(c.Article)
}

// parseKey is the inverse of key. It does not check that the article
// exists.
func (r *registry) parseKey(s string) (Citation, bool) {
	prefix, num, ok := strings.Cut(s, ".")
	if !ok {
		return Citation{}, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > 9999 {
		return Citation{}, false
	}
	l, ok := r.byKey[prefix]
	if !ok {
		return Citation{}, false
	}
	return Citation{Law: l.Name, Article: n}, true
}

// zhLawIn returns the law named last in s.
func (r *registry) zhLawIn(s string) (string, bool) {
	best, bestAt := "", -1
	for _, a := range r.zhAliases {
		if i := strings.LastIndex(s, a.alias); i >= 0 && i+len(a.alias) > bestAt {
			best, bestAt = a.law, i+len(a.alias)
		}
	}
	return best, bestAt >= 0
}

// zhLawExact maps the text of a 《》 title to a law.
func (r *registry) zhLawExact(title string) (string, bool) {
	for _, a := range r.zhAliases {
		if title == a.alias {
			return a.law, true
		}
	}
	return "", false
}

// endsWithLaw reports whether s ends with one of the laws' Chinese names,
// bare or in 《》.
func (r *registry) endsWithLaw(s string) bool {
	s = strings.TrimSuffix(s, "》")
	for _, a := range r.zhAliases {
		if strings.HasSuffix(s, a.alias) {
			return true
		}
	}
	return false
}

// enLaw returns the law an English text names, by the longest name in
// it; lookup allows the looser words of an article request.
func (r *registry) enLaw(s string, lookup bool) (string, bool) {
	as := r.enNames
	if lookup {
		as = r.enLookup
	}
	lower := strings.ToLower(s)
	for _, a := range as {
		if a.in(s, lower) {
			return a.law, true
		}
	}
	return "", false
}

// enLawPrefix returns the law named at the very start of s.
func (r *registry) enLawPrefix(s string) (string, bool) {
	lower := strings.ToLower(s)
	for _, a := range r.enNames {
		if !strings.Contains(lower, a.lit) {
			continue
		}
		if loc := a.re.FindStringIndex(s); loc != nil && loc[0] == 0 {
			return a.law, true
		}
	}
	return "", false
}

// notes returns the notes on one article that apply on day, and those
// that will apply from a later day.
func (r *registry) notes(c Citation, day Date) (now, later []ArticleNote) {
	l, ok := r.law(c.Law)
	if !ok {
		return nil, nil
	}
	for _, n := range l.notes {
		if n.Article != c.Article {
			continue
		}
		if n.From.IsZero() || !day.Before(n.From) {
			now = append(now, n)
		} else {
			later = append(later, n)
		}
	}
	return now, later
}

// Short names of the laws that code cites by name: the engine's own
// replies and the tests. They are conveniences, not the registry:
// data/laws.json is the authority, and a test checks that each resolves.
const (
	LawSIL        = "社会保险法"
	LawMSL        = "医疗保障法"
	LawHandling   = "社会保险经办条例"
	LawMedFund    = "医疗保障基金使用监督管理条例"
	LawCollection = "社会保险费征缴暂行条例"
)
