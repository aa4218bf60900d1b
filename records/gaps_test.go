package records

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// pattern builds rows from a string, one character per month starting at
// start: 'p' paid, 'u' unpaid, 'z' unpaid without amounts, '.' no row.
// Paid and unpaid rows cost 100.00 plus 1.00 per month index, so estimates
// can be told apart.
func pattern(start Month, s string) []Contribution {
	var cs []Contribution
	for i, ch := range s {
		m := start.Add(i)
		amt := Cents(10000 + 100*i)
		switch ch {
		case 'p':
			cs = append(cs, Contribution{Month: m, Insurance: Medical, Personal: amt, Status: StatusPaid})
		case 'u':
			cs = append(cs, Contribution{Month: m, Insurance: Medical, Personal: amt, Status: StatusUnpaid})
		case 'z':
			cs = append(cs, Contribution{Month: m, Insurance: Medical, Status: StatusUnpaid})
		}
	}
	return cs
}

func TestFindGaps(t *testing.T) {
	jan := Month{2025, time.January}
	mo := func(i int) Month { return jan.Add(i) }
	tests := []struct {
		name    string
		rows    string
		now     Month
		backpay int
		want    []Gap
	}{
		{name: "no rows", rows: "", now: mo(5)},
		{name: "all paid, current month missing", rows: "ppppp", now: mo(5)},
		{name: "current and later months are never gaps", rows: "pp...", now: mo(2)},
		{name: "missing month estimated from the paid month before", rows: "pp.p", now: mo(4), backpay: 3,
			want: []Gap{{From: mo(2), To: mo(2), Months: []Month{mo(2)}, Owed: 10100, Estimated: true,
				InWindow: true, WindowEnds: mo(5)}}},
		{name: "unpaid rows use their own amounts", rows: "puu", now: mo(3),
			want: []Gap{{From: mo(1), To: mo(2), Months: []Month{mo(1), mo(2)}, Unpaid: []Month{mo(1), mo(2)},
				Owed: 10100 + 10200, InWindow: true}}},
		{name: "leading gap estimated from the paid month after", rows: "zp", now: mo(2),
			want: []Gap{{From: mo(0), To: mo(0), Months: []Month{mo(0)}, Unpaid: []Month{mo(0)}, Owed: 10100,
				Estimated: true, InWindow: true}}},
		{name: "two gaps, the old one out of window", rows: "p..ppp.p", now: mo(8), backpay: 3,
			want: []Gap{
				{From: mo(1), To: mo(2), Months: []Month{mo(1), mo(2)}, Owed: 20000, Estimated: true, WindowEnds: mo(4)},
				{From: mo(6), To: mo(6), Months: []Month{mo(6)}, Owed: 10500, Estimated: true, InWindow: true, WindowEnds: mo(9)},
			}},
		{name: "no paid month at all", rows: "z", now: mo(1),
			want: []Gap{{From: mo(0), To: mo(0), Months: []Month{mo(0)}, Unpaid: []Month{mo(0)}, Estimated: true, InWindow: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findGaps(pattern(jan, tt.rows), tt.now, tt.backpay)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindGapsLooksBack24Months(t *testing.T) {
	start := Month{2020, time.January}
	rows := pattern(start, "p")    // paid once, six years ago, then nothing
	now := Month{2026, time.March} // every month since is missing
	gaps := findGaps(rows, now, 0)
	if len(gaps) != 1 || gaps[0].From != now.Add(-24) || gaps[0].To != now.Add(-1) || len(gaps[0].Months) != 24 {
		t.Fatalf("gaps = %+v, want one gap of the last 24 months", gaps)
	}
	if gaps[0].Owed != 24*10000 {
		t.Errorf("owed %v, want 24 × 100.00 estimated from the last paid month", gaps[0].Owed)
	}
}

// FuzzGaps checks findGaps against the definition on random patterns of
// paid, unpaid and missing months.
func FuzzGaps(f *testing.F) {
	f.Add([]byte{1, 0, 2, 1, 1, 0, 0, 3}, uint8(3), int8(0), uint8(3))
	f.Add([]byte{0, 0, 0}, uint8(0), int8(-5), uint8(0))
	f.Add([]byte{1, 1, 1, 1}, uint8(40), int8(2), uint8(6))
	f.Fuzz(func(t *testing.T, states []byte, nowOffset uint8, startShift int8, backpay uint8) {
		if len(states) > 120 {
			states = states[:120]
		}
		start := Month{2024, time.January}.Add(int(startShift))
		var b []rune
		for _, s := range states {
			b = append(b, rune("p.uz"[s%4]))
		}
		rows := pattern(start, string(b))
		now := start.Add(int(nowOffset))
		gaps := findGaps(rows, now, int(backpay%13))

		status := map[Month]string{}
		for _, c := range rows {
			status[c.Month] = c.Status
		}
		inGap := map[Month]bool{}
		var prevTo Month
		for i, g := range gaps {
			if len(g.Months) == 0 || g.Months[0] != g.From || g.Months[len(g.Months)-1] != g.To {
				t.Fatalf("gap %d: From/To %v/%v do not match its months %v", i, g.From, g.To, g.Months)
			}
			if i > 0 && !prevTo.Add(1).Before(g.From) {
				t.Fatalf("gap %d starts at %v, not after the previous gap's end %v plus a paid month", i, g.From, prevTo)
			}
			prevTo = g.To
			unpaid := map[Month]bool{}
			for _, m := range g.Unpaid {
				unpaid[m] = true
			}
			for k, m := range g.Months {
				if k > 0 && m != g.Months[k-1].Add(1) {
					t.Fatalf("gap %d is not contiguous: %v", i, g.Months)
				}
				if !m.Before(now) {
					t.Fatalf("gap month %v is not before now %v", m, now)
				}
				if m.Before(now.Add(-gapLookback)) || m.Before(rows[0].Month) {
					t.Fatalf("gap month %v is before the window", m)
				}
				if status[m] == StatusPaid {
					t.Fatalf("paid month %v is in a gap", m)
				}
				if (status[m] == StatusUnpaid) != unpaid[m] {
					t.Fatalf("month %v: unpaid row %v but listed as unpaid %v", m, status[m] == StatusUnpaid, unpaid[m])
				}
				inGap[m] = true
			}
			if g.Owed < 0 {
				t.Fatalf("negative owed %v", g.Owed)
			}
			if g.InWindow != (g.WindowEnds.IsZero() || !now.After(g.WindowEnds)) {
				t.Fatalf("InWindow %v but window ends %v at %v", g.InWindow, g.WindowEnds, now)
			}
		}
		// Maximal and complete: every due month in the window that is not paid is in a gap.
		if len(rows) == 0 {
			if len(gaps) != 0 {
				t.Fatalf("gaps without rows: %+v", gaps)
			}
			return
		}
		from := rows[0].Month
		if lb := now.Add(-gapLookback); from.Before(lb) {
			from = lb
		}
		for m := from; m.Before(now); m = m.Add(1) {
			if (status[m] != StatusPaid) != inGap[m] {
				t.Fatalf("month %v (status %q) in gap: %v", m, status[m], inGap[m])
			}
		}
	})
}
