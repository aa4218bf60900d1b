// Package keyring holds the secret that keeps personal data unreadable at
// rest (SHEBAO_KEYS): keyed tags (HMAC-SHA256) for names derived from an ID
// number or a phone, and authenticated encryption (AES-256-GCM) for stored
// values that hold one.
//
// A ring has a current key, which every new tag and sealed value uses, and
// older keys kept only for reading, so that a key can be rotated without
// losing data: the store re-encrypts in the background and the old key is
// dropped later. The secret is its own, never derived from the bot token,
// so a token change logs no one out.
//
// The package is a leaf: the standard library only. It never prints key
// material: Ring implements fmt.Stringer, fmt.GoStringer and
// slog.LogValuer with the key ids alone.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the length of every key in bytes.
const KeySize = 32

// tagBytes is how much of an HMAC-SHA256 a tag keeps: 128 bits. A tag must
// be unique and unguessable without the key, nothing more; 128 bits keeps
// collisions out of reach (a birthday bound of about 2^64 tags) while a
// Redis key name stays short (22 characters of base64). Truncating an HMAC
// keeps it a PRF (NIST SP 800-107 §5.3.4).
const tagBytes = 16

var (
	// ErrUnknownKey: the value or tag was made under a key the ring does
	// not hold (removed too early, or another deployment's).
	ErrUnknownKey = errors.New("made under a key that is not in the keyring")
	// ErrOpen: the value does not decrypt: altered, moved to another key or
	// field, or sealed under another key with the same id.
	ErrOpen = errors.New("sealed value does not open")
	// ErrMalformed: not a sealed value or a tag at all.
	ErrMalformed = errors.New("not a sealed value")
)

// Key is one entry of a ring.
type Key struct {
	ID     string
	Secret []byte // KeySize bytes
}

type key struct {
	id   string
	mac  []byte      // HMAC key, derived from the secret
	aead cipher.AEAD // AES-256-GCM under a second derived key
}

// Ring is a keyring. It is immutable and safe for concurrent use.
type Ring struct {
	keys      []*key // current first
	byID      map[string]*key
	ephemeral bool
}

// New returns a ring of keys, the first one current.
func New(keys ...Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring: no keys")
	}
	r := &Ring{byID: map[string]*key{}}
	for i, k := range keys {
		if !validID(k.ID) {
			return nil, fmt.Errorf("keyring: key %d: id must be 1 to 32 of A-Z a-z 0-9 _ -", i+1)
		}
		if _, dup := r.byID[k.ID]; dup {
			return nil, fmt.Errorf("keyring: key id %q given twice", k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("keyring: key %q must be %d bytes, not %d", k.ID, KeySize, len(k.Secret))
		}
		kk, err := derive(k)
		if err != nil {
			return nil, err
		}
		r.keys = append(r.keys, kk)
		r.byID[k.ID] = kk
	}
	return r, nil
}

// derive makes separate keys for tags and for encryption from one secret,
// so that no key serves two algorithms (HKDF-SHA256, RFC 5869).
func derive(k Key) (*key, error) {
	mac, err := hkdf.Key(sha256.New, k.Secret, nil, "shebao keyring v1 hmac", 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: derive key %q: %w", k.ID, err)
	}
	enc, err := hkdf.Key(sha256.New, k.Secret, nil, "shebao keyring v1 aes-gcm", 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: derive key %q: %w", k.ID, err)
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, fmt.Errorf("keyring: key %q: %w", k.ID, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: key %q: %w", k.ID, err)
	}
	return &key{id: k.ID, mac: mac, aead: aead}, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Parse reads a ring written "id:base64key,id:base64key…" (SHEBAO_KEYS):
// 32-byte keys in standard or URL-safe base64, padded or not, the first
// one current. Errors name the entry and, when it is well formed, its id;
// never the key.
func Parse(s string) (*Ring, error) {
	var keys []Key
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		id, b64, ok := strings.Cut(entry, ":")
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		switch {
		case entry == "":
			return nil, fmt.Errorf("entry %d is empty; want id:base64key,id:base64key…", i+1)
		case !ok:
			return nil, fmt.Errorf("entry %d: want id:base64key (a key id, a colon, then the key)", i+1)
		case !validID(id):
			return nil, fmt.Errorf("entry %d: the key id must be 1 to 32 of A-Z a-z 0-9 _ -", i+1)
		}
		secret, err := decodeBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("entry %d (id %q): the key is not base64", i+1, id)
		}
		if len(secret) != KeySize {
			return nil, fmt.Errorf("entry %d (id %q): the key must be %d bytes, it is %d (make one with: openssl rand -base64 32)", i+1, id, KeySize, len(secret))
		}
		keys = append(keys, Key{ID: id, Secret: secret})
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.ID] {
			return nil, fmt.Errorf("key id %q is given twice", k.ID)
		}
		seen[k.ID] = true
	}
	return New(keys...)
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// Generate returns a ring of one random key for this process alone
// (embedded defaults): whatever it protects is unreadable after exit,
// which is right for state that dies with the process anyway.
func Generate() *Ring {
	secret := make([]byte, KeySize)
	rand.Read(secret) // never fails (crypto/rand)
	r, err := New(Key{ID: "ephemeral", Secret: secret})
	if err != nil {
		panic(err) // unreachable: the id and length are valid
	}
	r.ephemeral = true
	return r
}

// NewEntry returns a fresh random ring entry "id:base64key" for
// SHEBAO_KEYS.
func NewEntry(id string) (string, error) {
	if !validID(id) {
		return "", errors.New("keyring: id must be 1 to 32 of A-Z a-z 0-9 _ -")
	}
	secret := make([]byte, KeySize)
	rand.Read(secret)
	return id + ":" + base64.StdEncoding.EncodeToString(secret), nil
}

// Ephemeral reports whether the ring was generated for this process.
func (r *Ring) Ephemeral() bool { return r.ephemeral }

// Current returns the id of the current key.
func (r *Ring) Current() string { return r.keys[0].id }

// IDs returns the key ids, current first.
func (r *Ring) IDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}

// Has reports whether the ring holds a key with that id.
func (r *Ring) Has(id string) bool { _, ok := r.byID[id]; return ok }

func (k *key) sum(domain, data string) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(data))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:tagBytes])
}

// Name returns the keyed tag of data under the current key: 22 characters
// of base64url, for a name (a Redis key) derived from personal data.
// domain separates uses, so that the tag of an ID number in one kind of
// name says nothing about another.
func (r *Ring) Name(domain, data string) string { return r.keys[0].sum(domain, data) }

// Names returns data's tags under every key, current first: where to look
// while a rotation has not yet moved everything to the current key.
func (r *Ring) Names(domain, data string) []string {
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.sum(domain, data)
	}
	return out
}

// Tag returns a tag of data that names its key, "<key id>.<tag>", for a
// value that is compared later (Match) and may outlive a rotation.
func (r *Ring) Tag(domain, data string) string {
	return r.keys[0].id + "." + r.keys[0].sum(domain, data)
}

// Match reports whether tag (from Tag) is data's tag, and whether it was
// made under the current key (if not, the caller may store a fresh Tag).
// A tag made under a key the ring no longer holds is ErrUnknownKey.
func (r *Ring) Match(domain, data, tag string) (ok, current bool, err error) {
	id, sum, found := strings.Cut(tag, ".")
	if !found || !validID(id) || sum == "" {
		return false, false, ErrMalformed
	}
	k := r.byID[id]
	if k == nil {
		return false, false, ErrUnknownKey
	}
	return hmac.Equal([]byte(k.sum(domain, data)), []byte(sum)), k == r.keys[0], nil
}

// sealPrefix starts every sealed value: a version, so that a stored value
// can be told from the plaintext an older release wrote.
const sealPrefix = "e1:"

// Seal encrypts plaintext under the current key: "e1:<key id>:<base64url
// of nonce and ciphertext>". ad is authenticated but not stored: the name
// of the Redis key (or field) the value is written to, so that a value
// moved to another name does not open.
func (r *Ring) Seal(ad string, plaintext []byte) []byte {
	k := r.keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	rand.Read(nonce)
	ct := k.aead.Seal(nonce, nonce, plaintext, additional(k.id, ad))
	out := make([]byte, 0, len(sealPrefix)+len(k.id)+1+base64.RawURLEncoding.EncodedLen(len(ct)))
	out = append(out, sealPrefix...)
	out = append(out, k.id...)
	out = append(out, ':')
	return base64.RawURLEncoding.AppendEncode(out, ct)
}

// additional binds the key id in the header to the ciphertext as well.
func additional(id, ad string) []byte {
	return []byte("shebao sealed v1\x00" + id + "\x00" + ad)
}

// Open decrypts a value from Seal written under ad and returns the id of
// the key it was sealed under.
func (r *Ring) Open(ad string, sealed []byte) (plaintext []byte, keyID string, err error) {
	id, body, ok := split(sealed)
	if !ok {
		return nil, "", ErrMalformed
	}
	k := r.byID[id]
	if k == nil {
		return nil, id, ErrUnknownKey
	}
	ct, err := base64.RawURLEncoding.DecodeString(string(body))
	if err != nil || len(ct) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, id, ErrMalformed
	}
	n := k.aead.NonceSize()
	pt, err := k.aead.Open(nil, ct[:n], ct[n:], additional(id, ad))
	if err != nil {
		return nil, id, ErrOpen
	}
	return pt, id, nil
}

// IsSealed reports whether b has the form of a sealed value.
func IsSealed(b []byte) bool {
	_, _, ok := split(b)
	return ok
}

// KeyOf returns the id of the key b was sealed under.
func KeyOf(b []byte) (string, bool) {
	id, _, ok := split(b)
	return id, ok
}

func split(b []byte) (id string, body []byte, ok bool) {
	s, found := strings.CutPrefix(string(b), sealPrefix)
	if !found {
		return "", nil, false
	}
	id, rest, found := strings.Cut(s, ":")
	if !found || !validID(id) {
		return "", nil, false
	}
	return id, []byte(rest), true
}

// String names the keys, never their contents.
func (r *Ring) String() string {
	kind := ""
	if r.ephemeral {
		kind = " ephemeral"
	}
	return fmt.Sprintf("keyring(current %s, %d keys%s)", r.Current(), len(r.keys), kind)
}

// GoString is String: %#v must not print the keys either.
func (r *Ring) GoString() string { return r.String() }

// LogValue logs the key ids only.
func (r *Ring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", r.Current()), slog.Any("ids", r.IDs()), slog.Bool("ephemeral", r.ephemeral))
}
