package records

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Gap is a maximal run of months that are due but not paid for one insurance.
type Gap struct {
	From, To Month   // inclusive
	Months   []Month // every month of the run (each missing or unpaid)
	Unpaid   []Month // those of Months that have an "unpaid" row; the rest have no row at all
	// Owed estimates what making up the gap costs: for an unpaid row its own
	// personal+employer amounts; for a missing month (or an unpaid row with no
	// amounts) those of the nearest paid month before it, else after it.
	Owed      Cents
	Estimated bool // true when some months had no amounts of their own
	InWindow  bool // at now, the oldest month is still inside the region's back-payment window
	// WindowEnds is the last month in which the oldest month of the gap can
	// still be made up (From + the region's BackpayMonths); zero if no limit.
	WindowEnds Month
}

// gapLookback limits how far back Gaps looks: older gaps are history the bot
// cannot help with any more.
const gapLookback = 24

// Gaps returns the gaps in one insurance for the person, oldest first. It
// looks at the months from the person's first month with a row for that
// insurance (or 24 months before now's month, whichever is later) to the
// month before now's month in Asia/Shanghai: the current month is not yet due.
// A person with no row at all for the insurance has no gaps in it: they never
// joined it, and that is not a gap. ErrNotFound for an unknown person.
func (db *DB) Gaps(ctx context.Context, id string, ins Insurance, now time.Time) ([]Gap, error) {
	if !ins.Valid() {
		return nil, fmt.Errorf("gaps: unknown insurance %q", ins)
	}
	h := db.get(ctx)
	defer h.put()
	p, err := h.person(ctx, id)
	if err != nil {
		return nil, err
	}
	rows, err := h.sql.QueryContext(ctx, `SELECT month, base, personal, employer, status FROM contributions
		WHERE id_number = ? AND insurance = ? ORDER BY month`, p.ID, string(ins))
	if err != nil {
		return nil, fmt.Errorf("load %s contributions for %s: %w", ins, MaskID(p.ID), err)
	}
	defer rows.Close()
	var cs []Contribution
	for rows.Next() {
		c := Contribution{Insurance: ins}
		var m int64
		if err := rows.Scan(&m, &c.Base, &c.Personal, &c.Employer, &c.Status); err != nil {
			return nil, fmt.Errorf("load %s contributions for %s: %w", ins, MaskID(p.ID), err)
		}
		c.Month = monthFromSQL(m)
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load %s contributions for %s: %w", ins, MaskID(p.ID), err)
	}
	return findGaps(cs, MonthOf(now), db.rules.lookup(p.Region).BackpayMonths), nil
}

// findGaps is the pure part of Gaps. cs holds one insurance's rows sorted by
// month with no month repeated (the primary key guarantees both).
func findGaps(cs []Contribution, now Month, backpayMonths int) []Gap {
	if len(cs) == 0 {
		return nil
	}
	from, to := cs[0].Month, now.Add(-1)
	if start := now.Add(-gapLookback); from.Before(start) {
		from = start
	}
	if to.Before(from) {
		return nil
	}
	byMonth := make(map[Month]int, len(cs))
	var paid []int // indexes into cs of paid rows, in month order
	for i, c := range cs {
		byMonth[c.Month] = i
		if c.Status == StatusPaid {
			paid = append(paid, i)
		}
	}
	// nearestPaid returns the amount of the closest paid month before m, else after m.
	nearestPaid := func(m Month) Cents {
		k := sort.Search(len(paid), func(j int) bool { return !cs[paid[j]].Month.Before(m) })
		if k > 0 {
			c := cs[paid[k-1]]
			return c.Personal + c.Employer
		}
		if k < len(paid) {
			c := cs[paid[k]]
			return c.Personal + c.Employer
		}
		return 0
	}

	var gaps []Gap
	var cur *Gap
	for m := from; !m.After(to); m = m.Add(1) {
		i, has := byMonth[m]
		if has && cs[i].Status == StatusPaid {
			cur = nil
			continue
		}
		if cur == nil {
			gaps = append(gaps, Gap{From: m})
			cur = &gaps[len(gaps)-1]
		}
		cur.To = m
		cur.Months = append(cur.Months, m)
		own := Cents(0)
		if has {
			cur.Unpaid = append(cur.Unpaid, m)
			own = cs[i].Personal + cs[i].Employer
		}
		if own > 0 {
			cur.Owed += own
		} else {
			cur.Owed += nearestPaid(m)
			cur.Estimated = true
		}
	}
	for i := range gaps {
		g := &gaps[i]
		g.InWindow = true
		if backpayMonths > 0 {
			g.WindowEnds = g.From.Add(backpayMonths)
			g.InWindow = !now.After(g.WindowEnds)
		}
	}
	return gaps
}
