package records

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestCheckID(t *testing.T) {
	valid := Demo()[0].ID // 11010519880312001x with a computed check character
	tests := []struct {
		in, want string
		err      error
	}{
		{valid, valid, nil},
		{"  " + valid + " ", valid, nil},
		{"11010519491231002X", "11010519491231002X", nil},
		{"11010519491231002x", "11010519491231002X", nil}, // lower-case x accepted
		{"1101051949123100", "", ErrIDLength},
		{"110105194912310021X", "", ErrIDLength},
		{"", "", ErrIDLength},
		{"11010519491231002Y", "", ErrIDChars},
		{"1101051949123100AX", "", ErrIDChars},
		{"１１０１０５１９４９１２３１００２Ｘ", "", ErrIDChars}, // full-width digits: 18 runes, not ASCII
		{"110105194913310029", "", ErrIDDate},  // month 13
		{"110105189901010013", "", ErrIDDate},  // before 1900
		{"110105194912310021", "", ErrIDChecksum},
	}
	for _, tt := range tests {
		got, err := CheckID(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("CheckID(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestMasks(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{MaskID("110105194912310021"), "110105********0021"},
		{MaskID("12345"), "*****"},
		{MaskID("13900001111"), "***********"}, // a phone in the ID field is hidden entirely
		{MaskPhone("13912345678"), "139****5678"},
		{MaskPhone("+86 139-1234-5678"), "139****5678"},
		{MaskPhone("12345"), "*****"},
		{NormalizePhone("+86 139 1234 5678"), "13912345678"},
		{NormalizePhone("0086-139-1234-5678"), "13912345678"},
		{NormalizePhone("8613912345678"), "13912345678"},
		{NormalizePhone("(139) 1234.5678"), "13912345678"},
		{NormalizePhone("861391234567"), "861391234567"}, // 12 digits: no country code to strip
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	for _, p := range []string{"13912345678", "19912345678"} {
		if !validMobile(p) {
			t.Errorf("validMobile(%q) = false", p)
		}
	}
	for _, p := range []string{"12912345678", "1391234567", "1391234567a", "02912345678"} {
		if validMobile(p) {
			t.Errorf("validMobile(%q) = true", p)
		}
	}
}

var (
	idPattern    = regexp.MustCompile(`\d{17}[\dXx]`)
	phonePattern = regexp.MustCompile(`1[3-9]\d{9}`)
)

func TestPersonLogValueMasks(t *testing.T) {
	p := Demo()[0].Person
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("verified", "person", p)
	out := buf.String()
	if idPattern.MatchString(out) || phonePattern.MatchString(out) || strings.Contains(out, p.Name) {
		t.Errorf("log line leaks personal data: %s", out)
	}
	if !strings.Contains(out, MaskID(p.ID)) || !strings.Contains(out, MaskPhone(p.Phone)) {
		t.Errorf("log line lacks the masked ID and phone: %s", out)
	}
}

func FuzzCheckID(f *testing.F) {
	for _, p := range Demo() {
		f.Add(p.ID, uint8(3), uint8(7))
	}
	f.Add("11010519491231002X", uint8(17), uint8(1))
	f.Add("", uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, s string, pos, delta uint8) {
		checkIDProperties(t, s, pos, delta)
		// Random strings are mostly rejected early; also build a valid ID from
		// the input so the substitution property is exercised on many IDs.
		if len(s) >= 17 {
			b := make([]byte, 17)
			for i := range b {
				b[i] = '0' + s[i]%10
			}
			birth := fmt.Sprintf("%04d%02d%02d", 1900+int(s[6])%200, 1+int(s[7])%12, 1+int(s[8])%28)
			body := string(b[:6]) + birth + string(b[14:])
			built := body + string(idCheckChar(body))
			if got, err := CheckID(built); err != nil || got != built {
				t.Fatalf("CheckID(%q) = %q, %v; want it accepted", built, got, err)
			}
			checkIDProperties(t, built, pos, delta)
		}
	})
}

func checkIDProperties(t *testing.T, s string, pos, delta uint8) {
	id, err := CheckID(s)
	if err != nil {
		if id != "" {
			t.Fatalf("CheckID(%q) returned %q with error %v", s, id, err)
		}
		if !errors.Is(err, ErrIDLength) && !errors.Is(err, ErrIDChars) && !errors.Is(err, ErrIDDate) && !errors.Is(err, ErrIDChecksum) {
			t.Fatalf("CheckID(%q): error %v is not one of the sentinels", s, err)
		}
		return
	}
	if again, err := CheckID(id); err != nil || again != id {
		t.Fatalf("accepted %q does not round-trip: %q, %v", id, again, err)
	}
	// MOD 11-2 catches every single-character substitution.
	i := int(pos) % 17
	d := int(delta)%9 + 1
	b := []byte(id)
	b[i] = byte('0' + (int(b[i]-'0')+d)%10)
	if _, err := CheckID(string(b)); err == nil {
		t.Fatalf("%q accepted after changing digit %d of %q", b, i, id)
	}
	if m := MaskID(id); idPattern.MatchString(m) {
		t.Fatalf("MaskID(%q) = %q shows the whole ID", id, m)
	}
}
