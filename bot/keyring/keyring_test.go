package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

var (
	secretA = bytes.Repeat([]byte{0xa1}, KeySize)
	secretB = bytes.Repeat([]byte{0xb2}, KeySize)
)

func entry(id string, secret []byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(secret)
}

func mustParse(t *testing.T, s string) *Ring {
	t.Helper()
	r, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParse(t *testing.T) {
	r := mustParse(t, " "+entry("k2", secretB)+" , "+"k1:"+base64.RawURLEncoding.EncodeToString(secretA))
	if r.Current() != "k2" || fmt.Sprint(r.IDs()) != "[k2 k1]" || r.Ephemeral() {
		t.Errorf("ring = %v, ids %v", r, r.IDs())
	}
	secret := base64.StdEncoding.EncodeToString(secretA)
	for _, tc := range []struct{ in, want string }{
		{"", "entry 1 is empty"},
		{entry("k1", secretA) + ",", "entry 2 is empty"},
		{secret, "entry 1: want id:base64key"},
		{"bad id!:" + secret, "entry 1: the key id must be"},
		{"k1:not*base64", `entry 1 (id "k1"): the key is not base64`},
		{"k1:" + base64.StdEncoding.EncodeToString(secretA[:16]), `entry 1 (id "k1"): the key must be 32 bytes, it is 16`},
		{entry("k1", secretA) + "," + entry("k1", secretB), `key id "k1" is given twice`},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.in, err, tc.want)
			continue
		}
		// The key itself is never echoed, whatever went wrong.
		for _, s := range []string{secret, base64.StdEncoding.EncodeToString(secretA[:16]), "not*base64"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("Parse error shows key material: %v", err)
			}
		}
	}
}

func TestRingNeverPrintsKeys(t *testing.T) {
	r := mustParse(t, entry("k1", secretA))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("ring", "keys", r)
	for _, out := range []string{fmt.Sprint(r), fmt.Sprintf("%v %+v %#v %s", r, r, r, r), logs.String()} {
		if !strings.Contains(out, "k1") {
			t.Errorf("output does not name the key: %s", out)
		}
		for _, s := range []string{base64.StdEncoding.EncodeToString(secretA), string(secretA), "a1a1", "161"} {
			if strings.Contains(out, s) {
				t.Errorf("output shows key material: %s", out)
			}
		}
	}
}

func TestNames(t *testing.T) {
	old := mustParse(t, entry("k1", secretA))
	rot := mustParse(t, entry("k2", secretB)+","+entry("k1", secretA))
	const id = "110105198803120014"
	n := old.Name("person", id)
	if len(n) != 22 || strings.Contains(n, id) {
		t.Fatalf("Name = %q", n)
	}
	if n != old.Name("person", id) {
		t.Error("Name is not deterministic")
	}
	if n == old.Name("throttle", id) {
		t.Error("domains do not separate tags")
	}
	if n == old.Name("person", "110105198803120022") {
		t.Error("different data, same tag")
	}
	names := rot.Names("person", id)
	if len(names) != 2 || names[1] != n || names[0] == n || names[0] != rot.Name("person", id) {
		t.Errorf("Names under the rotated ring = %q, want [new, %q]", names, n)
	}
	// A domain cannot be shifted into the data.
	if old.Name("a", "bc") == old.Name("ab", "c") {
		t.Error("domain and data are not separated")
	}
}

func TestTagMatch(t *testing.T) {
	old := mustParse(t, entry("k1", secretA))
	rot := mustParse(t, entry("k2", secretB)+","+entry("k1", secretA))
	onlyNew := mustParse(t, entry("k2", secretB))
	tag := old.Tag("phone", "13900000011")
	if !strings.HasPrefix(tag, "k1.") || strings.Contains(tag, "13900000011") {
		t.Fatalf("Tag = %q", tag)
	}
	if ok, cur, err := old.Match("phone", "13900000011", tag); !ok || !cur || err != nil {
		t.Errorf("Match own tag = %v %v %v", ok, cur, err)
	}
	if ok, _, err := old.Match("phone", "13900000012", tag); ok || err != nil {
		t.Errorf("Match another phone = %v %v", ok, err)
	}
	if ok, cur, err := rot.Match("phone", "13900000011", tag); !ok || cur || err != nil {
		t.Errorf("Match under a rotated ring = %v %v %v, want a match under an old key", ok, cur, err)
	}
	if _, _, err := onlyNew.Match("phone", "13900000011", tag); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Match after the key was dropped: %v, want ErrUnknownKey", err)
	}
	for _, bad := range []string{"", "k1", "k1.", "!!.abc"} {
		if _, _, err := old.Match("phone", "x", bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Match(%q): %v, want ErrMalformed", bad, err)
		}
	}
}

func TestSealOpen(t *testing.T) {
	old := mustParse(t, entry("k1", secretA))
	rot := mustParse(t, entry("k2", secretB)+","+entry("k1", secretA))
	onlyNew := mustParse(t, entry("k2", secretB))
	impostor := mustParse(t, entry("k1", secretB)) // same id, another key
	msg := []byte(`{"person_id":"110105198803120014"}`)
	const ad = "{u:7}:7:link"
	s := old.Seal(ad, msg)
	if !IsSealed(s) || bytes.Contains(s, []byte("110105")) || !bytes.HasPrefix(s, []byte("e1:k1:")) {
		t.Fatalf("Seal = %q", s)
	}
	if bytes.Equal(s, old.Seal(ad, msg)) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	if id, ok := KeyOf(s); !ok || id != "k1" {
		t.Errorf("KeyOf = %q %v", id, ok)
	}
	for name, r := range map[string]*Ring{"same ring": old, "rotated ring": rot} {
		pt, id, err := r.Open(ad, s)
		if err != nil || id != "k1" || !bytes.Equal(pt, msg) {
			t.Errorf("%s: Open = %q, %q, %v", name, pt, id, err)
		}
	}
	if _, _, err := old.Open("{u:8}:8:link", s); !errors.Is(err, ErrOpen) {
		t.Errorf("Open under another name: %v, want ErrOpen", err)
	}
	if _, _, err := onlyNew.Open(ad, s); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open without the key: %v, want ErrUnknownKey", err)
	}
	if _, _, err := impostor.Open(ad, s); !errors.Is(err, ErrOpen) {
		t.Errorf("Open under another key with the same id: %v, want ErrOpen", err)
	}
	// The key id in the header is authenticated too.
	forged := bytes.Replace(s, []byte("e1:k1:"), []byte("e1:k2:"), 1)
	if _, _, err := mustParse(t, entry("k2", secretA)).Open(ad, forged); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with a rewritten key id: %v, want ErrOpen", err)
	}
	flipped := bytes.Clone(s)
	flipped[len(flipped)-3] ^= 1
	if _, _, err := old.Open(ad, flipped); err == nil {
		t.Error("an altered value opened")
	}
	for _, bad := range []string{`{"person_id":"1"}`, "e1:", "e1:k1:", "e1:k1:@@@", "1733000000000:{}"} {
		if _, _, err := old.Open(ad, []byte(bad)); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	if IsSealed([]byte(`{"lang":"zh"}`)) {
		t.Error("JSON taken for a sealed value")
	}
	// New values use the current key.
	if id, _ := KeyOf(rot.Seal(ad, msg)); id != "k2" {
		t.Errorf("rotated ring seals under %q, want k2", id)
	}
}

func TestGenerate(t *testing.T) {
	a, b := Generate(), Generate()
	if !a.Ephemeral() {
		t.Error("generated ring not ephemeral")
	}
	if a.Name("d", "x") == b.Name("d", "x") {
		t.Error("two generated rings share a key")
	}
	e, err := NewEntry("k9")
	if err != nil {
		t.Fatal(err)
	}
	if r := mustParse(t, e); r.Current() != "k9" {
		t.Errorf("NewEntry does not parse back: %v", r)
	}
}

// The cost per stored value and per derived name, on one core.
//
//	go test ./bot/keyring -run '^$' -bench .
func BenchmarkSealOpen(b *testing.B) {
	r, _ := Parse(entry("k1", secretA))
	msg := []byte(`{"person_id":"110105198803120014","until":"2027-02-24T02:00:00Z","phone_tag":"k1.0123456789012345678901"}`)
	for b.Loop() {
		s := r.Seal("{u:7}:7:link", msg)
		if _, _, err := r.Open("{u:7}:7:link", s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkName(b *testing.B) {
	r, _ := Parse(entry("k1", secretA))
	for b.Loop() {
		r.Name("throttle", "id:110105198803120014")
	}
}
