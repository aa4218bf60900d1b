package faq

import (
	"regexp"
	"testing"
)

// A canned "Yes." or "有。" at the start of an answer contradicts the
// question when it is asked the other way round ("Will they charge me?" →
// "Yes, it is free"). No answer of any version opens with one.
func TestNoCannedYesNoOpening(t *testing.T) {
	canned := regexp.MustCompile(`^\s*(?i:(yes|no|yep|nope)\b[\s.,!;:—-])|^\s*(是|有|要|能|会|可以|不能|不会|不要|没有|不是|不用|需要|不需要|对|不)[。，,！!：:]`)
	f := realFAQ(t)
	for _, e := range f.entries {
		for _, v := range e.Versions {
			for _, a := range []string{v.AnswerZH, v.AnswerEN} {
				if canned.MatchString(a) {
					t.Errorf("%s (from %v) opens with a canned yes/no: %.40q", e.ID, v.From, a)
				}
			}
		}
	}
}
