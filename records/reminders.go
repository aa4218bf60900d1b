package records

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Standing is what a reminder scan needs about one person: who they are
// insured as, and the import-time summary of their medical insurance.
type Standing struct {
	ID       string
	Region   string
	Category Category
	// Medical is the medical-insurance summary; HasMedical is false when
	// the person has no medical row at all (never joined: no gap).
	Medical    Summary
	HasMedical bool
}

// LogValue masks the ID number.
func (s Standing) LogValue() slog.Value { return slog.StringValue(MaskID(s.ID)) }

// maxStandings bounds one Standings query: one bound variable per ID, far
// below SQLite's limit, and a batch the size a reminder scan reads anyway.
const maxStandings = 1000

// Standings returns the standing of each known person among ids, in no
// particular order; unknown IDs are left out. It reads the persons and the
// medical summaries with one query per 1,000 IDs and never touches the
// contribution rows.
func (db *DB) Standings(ctx context.Context, ids []string) ([]Standing, error) {
	h := db.get(ctx)
	defer h.put()
	out := make([]Standing, 0, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), maxStandings)
		batch := ids[:n]
		ids = ids[n:]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		rows, err := h.sql.QueryContext(ctx, `SELECT p.id_number, p.region, p.category,
			s.first_month, s.last_month, s.last_paid_month, s.paid_months, s.unpaid_months
			FROM persons p LEFT JOIN person_summary s ON s.id_number = p.id_number AND s.insurance = 'medical'
			WHERE p.id_number IN (?`+strings.Repeat(",?", len(batch)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("load standings: %w", err)
		}
		for rows.Next() {
			var st Standing
			var cat string
			var first, last, paid, np, nu *int64
			if err := rows.Scan(&st.ID, &st.Region, &cat, &first, &last, &paid, &np, &nu); err != nil {
				rows.Close()
				return nil, fmt.Errorf("load standings: %w", err)
			}
			st.Category = Category(cat)
			if first != nil {
				st.HasMedical = true
				st.Medical = Summary{Insurance: Medical, First: monthFromSQL(*first), Last: monthFromSQL(*last),
					PaidMonths: int(*np), UnpaidMonths: int(*nu)}
				if *paid != 0 {
					st.Medical.LastPaid = monthFromSQL(*paid)
				}
			}
			out = append(out, st)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("load standings: %w", err)
		}
	}
	return out, nil
}

// Unbroken reports whether the summary shows every month from the first row
// to the last paid: no hole, no unpaid row. Then the only possible gap is
// the run after the last paid month, which the summary alone describes.
func (s Summary) Unbroken() bool {
	return s.UnpaidMonths == 0 && !s.LastPaid.IsZero() && s.Last == s.LastPaid &&
		s.PaidMonths == s.LastPaid.Sub(s.First)+1
}

// MedicalGaps returns the medical gaps of a standing at now, as Gaps does
// (same months, same window), except that Owed and Estimated are left
// zero. When the summary shows an unbroken record it answers from the
// summary alone, without a query; only people with a hole or an unpaid row
// cost a read of their rows.
func (db *DB) MedicalGaps(ctx context.Context, st Standing, now time.Time) ([]Gap, error) {
	if !st.HasMedical {
		return nil, nil
	}
	if !st.Medical.Unbroken() {
		return db.Gaps(ctx, st.ID, Medical, now)
	}
	cur := MonthOf(now)
	from, to := st.Medical.LastPaid.Add(1), cur.Add(-1)
	if start := cur.Add(-gapLookback); from.Before(start) {
		from = start
	}
	if to.Before(from) {
		return nil, nil
	}
	g := Gap{From: from, To: to, InWindow: true}
	for m := from; !m.After(to); m = m.Add(1) {
		g.Months = append(g.Months, m)
	}
	if bm := db.rules.backpayMonths(st.Region); bm > 0 {
		g.WindowEnds = g.From.Add(bm)
		g.InWindow = !cur.After(g.WindowEnds)
	}
	return []Gap{g}, nil
}

// backpayMonths is lookup(region).BackpayMonths without copying the rule's
// texts: a scan asks it for every person.
func (rs ruleSet) backpayMonths(region string) int {
	region = strings.TrimSpace(region)
	if region != "" {
		for _, r := range rs.regions {
			if strings.Contains(region, r.Region) {
				return r.BackpayMonths
			}
		}
	}
	return rs.national.BackpayMonths
}
