package records

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
)

// RegionRule is what a region says about making up gaps, waiting periods and
// where to go. Rule fills a regional rule's due day, hotline, office,
// documents and notes from the national default when the region states none;
// the numeric rules are the region's own. Source says which values are whose.
type RegionRule struct {
	Region          string                           // "全国" for the national default
	BackpayMonths   int                              // how many months back a gap can be made up (0 = no limit stated)
	WaitingMonths   int                              // waiting period after a long break that is not made up
	LongBreakMonths int                              // a break longer than this triggers the waiting period
	DueDay          int                              // day of month by which a flexible worker's contribution must be posted
	Office          map[string]string                // "zh"/"en": where to go
	Hotline         string                           // e.g. "12393"
	Documents       map[Category]map[string][]string // category -> "zh"/"en" -> checklist lines
	Source          string                           // where the values come from
	Example         bool                             // illustrative, not verified against an official source

	// Added beyond the original contract:
	WaitingMonthsIfBackpaid int               // waiting period when a long break IS made up (0 = same as WaitingMonths)
	WaitingBenefitPercent   int               // share of normal benefits paid during the waiting period (0 = none stated)
	Notes                   map[string]string // "zh"/"en": one paragraph the bot can show as is
}

// Region name of the national default rule.
const National = "全国"

// ruleSet holds the embedded rules in memory rather than in a table: they are
// reference data versioned with the binary, never joined with records, and a
// copied record file must not carry rules older than the code reading it.
type ruleSet struct {
	national RegionRule
	regions  []RegionRule // longest name first, so "大连市" wins over a shorter match
}

//go:embed regions.json
var regionsJSON []byte

func loadRules() (ruleSet, error) { return parseRules(regionsJSON) }

func parseRules(b []byte) (ruleSet, error) {
	var file struct {
		Rules []RegionRule `json:"rules"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return ruleSet{}, fmt.Errorf("parse regions.json: %w", err)
	}
	var rs ruleSet
	seen := map[string]bool{}
	for _, r := range file.Rules {
		if r.Region == "" || seen[r.Region] {
			return ruleSet{}, fmt.Errorf("parse regions.json: empty or repeated region %q", r.Region)
		}
		seen[r.Region] = true
		if r.Source == "" {
			return ruleSet{}, fmt.Errorf("parse regions.json: region %s has no source", r.Region)
		}
		if r.Region == National {
			rs.national = r
			continue
		}
		rs.regions = append(rs.regions, r)
	}
	if rs.national.Region == "" {
		return ruleSet{}, fmt.Errorf("parse regions.json: no %s rule", National)
	}
	n := rs.national
	if n.LongBreakMonths <= 0 || n.DueDay < 1 || n.DueDay > 28 || n.Hotline == "" ||
		n.Office["zh"] == "" || n.Office["en"] == "" {
		return ruleSet{}, fmt.Errorf("parse regions.json: national rule is incomplete")
	}
	for _, c := range []Category{Employee, Flexible, Resident} {
		if len(n.Documents[c]["zh"]) == 0 || len(n.Documents[c]["en"]) == 0 {
			return ruleSet{}, fmt.Errorf("parse regions.json: national rule has no documents for %s", c)
		}
	}
	// Stable: longest region name first.
	for i := 1; i < len(rs.regions); i++ {
		for j := i; j > 0 && len(rs.regions[j].Region) > len(rs.regions[j-1].Region); j-- {
			rs.regions[j], rs.regions[j-1] = rs.regions[j-1], rs.regions[j]
		}
	}
	return rs, nil
}

// Rule returns the rule for a person's region: the regional rule whose name
// occurs in region ("福建省福州市" matches "福建省", "辽宁省大连市" matches
// "大连市"), completed from the national default, or the national default
// itself. The ctx is unused today; it keeps the signature stable should rules
// move into the database.
func (db *DB) Rule(ctx context.Context, region string) RegionRule {
	return db.rules.lookup(region)
}

func (rs ruleSet) lookup(region string) RegionRule {
	region = strings.TrimSpace(region)
	if region != "" {
		for _, r := range rs.regions {
			if strings.Contains(region, r.Region) {
				return rs.complete(r)
			}
		}
	}
	return rs.complete(rs.national)
}

// complete fills zero fields from the national rule and returns copies of the
// maps, so callers cannot change the shared rules.
func (rs ruleSet) complete(r RegionRule) RegionRule {
	// The numeric rules are taken from the region as written, never inherited:
	// 0 there means "not stated" or "no limit", and the national figures would
	// claim something the region did not say. The due day and the contact
	// details are inherited because the bot always needs some.
	n := rs.national
	if r.DueDay == 0 {
		r.DueDay = n.DueDay
	}
	if r.Hotline == "" {
		r.Hotline = n.Hotline
	}
	r.Office = mergeLang(r.Office, n.Office)
	r.Notes = mergeLang(r.Notes, n.Notes)
	docs := make(map[Category]map[string][]string, 3)
	for _, c := range []Category{Employee, Flexible, Resident} {
		src := n.Documents[c]
		if own := r.Documents[c]; len(own) > 0 {
			src = own
		}
		m := make(map[string][]string, len(src))
		for lang, lines := range src {
			m[lang] = append([]string(nil), lines...)
		}
		docs[c] = m
	}
	r.Documents = docs
	return r
}

func mergeLang(own, def map[string]string) map[string]string {
	out := make(map[string]string, 2)
	for k, v := range def {
		out[k] = v
	}
	if len(own) > 0 {
		// A region's own text replaces the default as a whole, so zh and en
		// never describe different places.
		out = make(map[string]string, len(own))
		for k, v := range own {
			out[k] = v
		}
	}
	return out
}
