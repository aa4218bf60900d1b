package records

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// Reasons an ID number is rejected. They are distinct so the bot can tell the
// user which part to check.
var (
	ErrIDLength   = errors.New("records: ID number must have 18 characters")
	ErrIDChars    = errors.New("records: ID number must be 17 digits followed by a digit or X")
	ErrIDDate     = errors.New("records: ID number has an impossible birth date")
	ErrIDChecksum = errors.New("records: ID number check character does not match")
)

// idWeights are the GB 11643 weights 2^(17-i) mod 11 for positions 1..17.
var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// idCheckChars maps the weighted sum mod 11 to the check character (ISO 7064 MOD 11-2).
const idCheckChars = "10X98765432"

// idCheckChar returns the check character for 17 digits.
func idCheckChar(body string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(body[i]-'0') * idWeights[i]
	}
	return idCheckChars[sum%11]
}

// CheckID validates a GB 11643 citizen ID number and returns it normalised
// (surrounding spaces removed, a lower-case x upper-cased). The error is one of
// ErrIDLength, ErrIDChars, ErrIDDate or ErrIDChecksum.
//
// The birth date must be a real calendar date between 1900 and 2099; whether it
// lies in the future depends on a clock, so Import checks that separately.
func CheckID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) != 18 {
		return "", ErrIDLength
	}
	if len(s) != 18 || !allDigits(s[:17]) {
		return "", ErrIDChars
	}
	last := s[17]
	if last == 'x' {
		last = 'X'
		s = s[:17] + "X"
	}
	if last != 'X' && (last < '0' || last > '9') {
		return "", ErrIDChars
	}
	if _, ok := idBirthDate(s); !ok {
		return "", ErrIDDate
	}
	if idCheckChar(s) != last {
		return "", ErrIDChecksum
	}
	return s, nil
}

// idBirthDate returns the birth date encoded in positions 7..14 of an
// 18-character ID number whose first 17 characters are digits, as midnight
// in Shanghai: it is compared with Shanghai's "now", and at UTC midnight a
// birth today would lie in the future until 08:00.
func idBirthDate(id string) (time.Time, bool) {
	d, err := time.ParseInLocation("20060102", id[6:14], Shanghai)
	if err != nil || d.Year() < 1900 || d.Year() > 2099 {
		return time.Time{}, false
	}
	return d, true
}

// MaskID shows the first 6 and last 4 characters of an ID number:
// 110105********3418. Anything shorter than 15 characters is masked entirely,
// so a phone number typed into the ID field never leaks through.
func MaskID(id string) string {
	r := []rune(strings.TrimSpace(id))
	if len(r) < 15 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:6]) + strings.Repeat("*", len(r)-10) + string(r[len(r)-4:])
}

// MaskPhone shows the first 3 and last 4 digits of a mobile number:
// 139****5678. Anything that does not normalise to 11 characters is masked
// entirely.
func MaskPhone(p string) string {
	r := []rune(NormalizePhone(p))
	if len(r) != 11 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:3]) + "****" + string(r[7:])
}

// NormalizePhone removes spaces, dashes, dots and parentheses and a leading
// country code (+86, 0086, or 86 when 13 digits remain), so "+86 139-0000-1111"
// becomes "13900001111". It does not validate; see validMobile.
func NormalizePhone(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for _, r := range strings.TrimSpace(p) {
		switch r {
		case ' ', '-', '(', ')', '.', '\t', '\u00a0', '\u3000', '（', '）':
			continue
		}
		b.WriteRune(r)
	}
	s := b.String()
	switch {
	case strings.HasPrefix(s, "+86"):
		s = s[3:]
	case strings.HasPrefix(s, "0086"):
		s = s[4:]
	case len(s) == 13 && strings.HasPrefix(s, "86"):
		s = s[2:]
	}
	return s
}

// validMobile reports whether a normalised phone is an 11-digit mainland
// mobile number (1, then 3–9, then nine digits).
func validMobile(p string) bool {
	return len(p) == 11 && allDigits(p) && p[0] == '1' && p[1] >= '3' && p[1] <= '9'
}
