package records

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestStandingsBatchAndUnknown(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, Shanghai)
	db, err := OpenDemo(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []string
	for _, p := range Demo() {
		ids = append(ids, p.ID)
	}
	// More than one batch, with unknown IDs mixed in.
	for len(ids) < maxStandings+50 {
		ids = append(ids, "110105198803120019") // valid form, not on record
	}
	got, err := db.Standings(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(Demo()) {
		t.Fatalf("Standings returned %d, want the %d demo people", len(got), len(Demo()))
	}
	for _, st := range got {
		p, err := db.Person(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Region != p.Region || st.Category != p.Category {
			t.Errorf("%s: standing %s/%s, person %s/%s", MaskID(st.ID), st.Region, st.Category, p.Region, p.Category)
		}
		sums, err := db.Summaries(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		var med *Summary
		for i := range sums {
			if sums[i].Insurance == Medical {
				med = &sums[i]
			}
		}
		if (med != nil) != st.HasMedical || (med != nil && *med != st.Medical) {
			t.Errorf("%s: medical summary %+v (has %v), Summaries says %+v", MaskID(st.ID), st.Medical, st.HasMedical, med)
		}
	}
}

// MedicalGaps must agree with Gaps (months and window) whether it takes the
// summary path or reads the rows, at every day of a year and a half.
func TestMedicalGapsMatchesGaps(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, Shanghai)
	db, err := OpenDemo(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []string
	for _, p := range Demo() {
		ids = append(ids, p.ID)
	}
	sts, err := db.Standings(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	fast := 0
	for _, st := range sts {
		if st.Medical.Unbroken() {
			fast++
		}
		for d := -60; d < 500; d += 7 {
			now := base.AddDate(0, 0, d)
			want, err := db.Gaps(ctx, st.ID, Medical, now)
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.MedicalGaps(ctx, st, now)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Gap{}, "Owed", "Estimated"), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("%s at %s: MedicalGaps differs from Gaps (-Gaps +MedicalGaps):\n%s", MaskID(st.ID), now.Format(time.DateOnly), diff)
			}
		}
	}
	if fast == 0 || fast == len(sts) {
		t.Errorf("%d of %d demo people take the summary path; the test should cover both paths", fast, len(sts))
	}
}

func TestUnbroken(t *testing.T) {
	m := func(s string) Month { v, _ := ParseMonth(s); return v }
	for _, c := range []struct {
		s    Summary
		want bool
	}{
		{Summary{First: m("2025-01"), Last: m("2025-12"), LastPaid: m("2025-12"), PaidMonths: 12}, true},
		{Summary{First: m("2025-01"), Last: m("2025-12"), LastPaid: m("2025-12"), PaidMonths: 11}, false},                  // a hole
		{Summary{First: m("2025-01"), Last: m("2025-12"), LastPaid: m("2025-11"), PaidMonths: 11, UnpaidMonths: 1}, false}, // unpaid row
		{Summary{First: m("2025-01"), Last: m("2025-01"), UnpaidMonths: 1}, false},                                         // never paid
	} {
		if got := c.s.Unbroken(); got != c.want {
			t.Errorf("%+v.Unbroken() = %v, want %v", c.s, got, c.want)
		}
	}
}
