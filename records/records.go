// Package records is the read side of the social-insurance agency's published
// records: persons, monthly contributions, personal-account movements and the
// region rules that say how far back a gap can be made up. Records are written
// only by Import (the `shebao import` command) and read by the bot.
//
// The package is a leaf: it imports nothing from this module and is the only
// importer of modernc.org/sqlite. A record file is an ordinary SQLite file with
// embedded, numbered migrations, so it can be copied to every replica.
//
// OpenForImport is the only way a record file comes into being or changes
// schema. Open, the bot's side, only reads: it refuses a file that is
// missing, empty, foreign, damaged, of an older schema or holding nobody
// (see OpenError), because a bot serving such a file would tell every
// verified user that they are not in the records.
//
// ID numbers and phones are personal data: they are masked in every error,
// problem message and log value this package produces.
package records

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned when a person is not in the records.
var ErrNotFound = errors.New("records: not found")

// Category is the kind of insurance relationship a person has.
type Category string

// The categories a person can have.
const (
	Employee Category = "employee" // insured through an employer
	Flexible Category = "flexible" // 灵活就业: pays the whole employee-scheme contribution alone
	Resident Category = "resident" // 城乡居民: pays once a year in the enrolment period
)

// Valid reports whether c is one of the known categories.
func (c Category) Valid() bool { return c == Employee || c == Flexible || c == Resident }

// Insurance is one of the five insurance types.
type Insurance string

// The insurance types.
const (
	Medical      Insurance = "medical"
	Pension      Insurance = "pension"
	Unemployment Insurance = "unemployment"
	Injury       Insurance = "injury"
	Maternity    Insurance = "maternity"
)

// Insurances lists every insurance type in a stable order.
func Insurances() []Insurance {
	return []Insurance{Medical, Pension, Unemployment, Injury, Maternity}
}

// Valid reports whether i is one of the five insurance types.
func (i Insurance) Valid() bool {
	switch i {
	case Medical, Pension, Unemployment, Injury, Maternity:
		return true
	}
	return false
}

// Contribution statuses.
const (
	StatusPaid   = "paid"
	StatusUnpaid = "unpaid"
)

// Person is one insured person as published by the agency.
type Person struct {
	ID       string // 18-character citizen ID number, upper-case X
	Name     string
	Phone    string // normalised 11-digit mobile number
	Region   string // insured region (参保地), e.g. "福建省福州市"
	Category Category
	Employer string // current employer; empty for flexible workers and residents
}

// LogValue masks the ID number and phone and omits the name, so a Person can be
// passed to slog at any level.
func (p Person) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", MaskID(p.ID)),
		slog.String("phone", MaskPhone(p.Phone)),
		slog.String("region", p.Region),
		slog.String("category", string(p.Category)),
	)
}

// Shanghai is China Standard Time, the zone of the agency's months and
// dates and of the users' days: whoever decides "today" or "this month" for
// the records uses it, so the two never disagree between 00:00 and 08:00. A
// fixed zone instead of time.LoadLocation: China has had no daylight saving
// since 1991, and a leaf package should not depend on the host's tzdata
// (main imports time/tzdata for rendering).
var Shanghai = time.FixedZone("CST", 8*60*60)

// Month is a calendar month. The zero Month means "none".
type Month struct {
	Year  int
	Month time.Month
}

// MonthOf returns the month t falls in, in Asia/Shanghai, which is the month
// the agency books a contribution under.
func MonthOf(t time.Time) Month {
	t = t.In(Shanghai)
	return Month{Year: t.Year(), Month: t.Month()}
}

// ParseMonth parses "YYYY-MM".
func ParseMonth(s string) (Month, error) {
	if len(s) != 7 || s[4] != '-' {
		return Month{}, fmt.Errorf("month %q: want YYYY-MM", s)
	}
	y, err1 := strconv.Atoi(s[:4])
	m, err2 := strconv.Atoi(s[5:])
	if err1 != nil || err2 != nil || !allDigits(s[:4]) || !allDigits(s[5:]) || m < 1 || m > 12 {
		return Month{}, fmt.Errorf("month %q: want YYYY-MM", s)
	}
	return Month{Year: y, Month: time.Month(m)}, nil
}

// String formats m as "2025-03"; the zero Month is "".
func (m Month) String() string {
	if m.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month))
}

// IsZero reports whether m is the zero Month.
func (m Month) IsZero() bool { return m == Month{} }

// Add returns the month n months after m (n may be negative).
func (m Month) Add(n int) Month { return monthFromIndex(m.index() + n) }

// Before reports whether m is earlier than o.
func (m Month) Before(o Month) bool { return m.index() < o.index() }

// After reports whether m is later than o.
func (m Month) After(o Month) bool { return m.index() > o.index() }

// Sub returns the number of months from o to m (m - o).
func (m Month) Sub(o Month) int { return m.index() - o.index() }

// index counts months from year 0 so month arithmetic is integer arithmetic.
func (m Month) index() int { return m.Year*12 + int(m.Month) - 1 }

func monthFromIndex(i int) Month {
	y, mo := i/12, i%12
	if mo < 0 { // keep Add total for negative indexes (fuzzing reaches them)
		y, mo = y-1, mo+12
	}
	return Month{Year: y, Month: time.Month(mo + 1)}
}

// sqlMonth is the stored form: YYYYMM as an integer, readable in the sqlite3
// shell and ordered like the months.
func (m Month) sqlMonth() int64 { return int64(m.Year)*100 + int64(m.Month) }

func monthFromSQL(v int64) Month { return Month{Year: int(v / 100), Month: time.Month(v % 100)} }

// Cents is an amount of money in fen (1/100 yuan).
type Cents int64

// String formats c as plain yuan with two decimals: "1234.56", "-0.50".
func (c Cents) String() string {
	sign := ""
	u := uint64(c)
	if c < 0 {
		sign = "-"
		u = uint64(-c) // two's complement makes this right even for MinInt64
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// maxYuanDigits bounds the integer part so fen never overflow int64, with a
// wide margin: no single contribution or movement is near a trillion yuan.
const maxYuanDigits = 12

// parseCents parses yuan with up to two decimals ("12", "12.5", "12.50").
// A leading sign is accepted only when signed is true.
func parseCents(s string, signed bool) (Cents, error) {
	orig := s
	neg := false
	if signed && s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || len(intPart) > maxYuanDigits ||
		(hasDot && (frac == "" || len(frac) > 2 || !allDigits(frac))) {
		if !signed && strings.HasPrefix(orig, "-") {
			return 0, fmt.Errorf("amount %q must not be negative", orig)
		}
		return 0, fmt.Errorf("amount %q: want yuan with at most two decimals, like 1234.56", orig)
	}
	n, _ := strconv.ParseInt(intPart, 10, 64) // digits only and bounded: cannot fail
	v := n * 100
	if len(frac) == 1 {
		v += int64(frac[0]-'0') * 10
	} else if len(frac) == 2 {
		v += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	if neg {
		v = -v
	}
	return Cents(v), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Contribution is one month of one insurance type for one person.
type Contribution struct {
	Month     Month
	Insurance Insurance
	Base      Cents // contribution base (缴费基数)
	Personal  Cents // the person's share
	Employer  Cents // the employer's share (0 for flexible workers and residents)
	Status    string
}

// Movement is one entry in the person's medical personal account.
type Movement struct {
	Date        time.Time // UTC midnight of the booking date
	Amount      Cents     // credit positive, debit negative
	Description string
}
