package faq

import (
	"fmt"
	"time"
)

// China is China Standard Time, the zone in which a law's effective date
// and an answer's day are read. It is a fixed zone rather than
// time.LoadLocation: China has had no daylight saving time since 1991, and
// a fixed zone needs no time-zone database.
var China = time.FixedZone("CST", 8*60*60)

// Date is a calendar day in China. Every answer is for a day: the laws in
// force differ from one day to the next (the Medical Security Law takes
// effect on 2027-01-01), so the day is a parameter of Answer and never
// read from the clock inside this package. The zero Date is "no day".
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf is the day t falls on in China.
func DateOf(t time.Time) Date {
	y, m, d := t.In(China).Date()
	return Date{y, m, d}
}

// ParseDate reads YYYY-MM-DD and rejects days that do not exist.
func ParseDate(s string) (Date, error) {
	t, err := time.ParseInLocation(time.DateOnly, s, China)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return DateOf(t), nil
}

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// Before reports whether d is an earlier day than o.
func (d Date) Before(o Date) bool { return d.Compare(o) < 0 }

// Compare returns -1, 0 or +1 as d is before, equal to or after o.
func (d Date) Compare(o Date) int {
	switch {
	case d.Year != o.Year:
		return sign(d.Year - o.Year)
	case d.Month != o.Month:
		return sign(int(d.Month) - int(o.Month))
	}
	return sign(d.Day - o.Day)
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// String is YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day) }

// Label is the day for people: 2027年1月1日, or January 1, 2027.
func (d Date) Label(lang Lang) string {
	if lang == EN {
		return fmt.Sprintf("%s %d, %d", d.Month, d.Day, d.Year)
	}
	return fmt.Sprintf("%d年%d月%d日", d.Year, int(d.Month), d.Day)
}

// MarshalText writes YYYY-MM-DD, or nothing for the zero Date.
func (d Date) MarshalText() ([]byte, error) {
	if d.IsZero() {
		return nil, nil
	}
	return []byte(d.String()), nil
}

// UnmarshalText reads YYYY-MM-DD; empty text is the zero Date.
func (d *Date) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Date{}
		return nil
	}
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
