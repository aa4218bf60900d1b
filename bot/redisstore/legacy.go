package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The previous release's format (schema 1, before SHEBAO_KEYS), read only
// to convert it: plain JSON values, and names hashed with unsalted SHA-256
// that anyone can reverse for a region's ID numbers in seconds.
//
//	<p>:{a:<sha256("user:7" or "id:<ID>")[:32 hex]>}:n     failures in the 24-hour window
//	<p>:{a:<…>}:lock                                      lockout end (unix ms)
//	<p>:{m:sent:<sha256("shebao-reminder:"+ID)[:24 hex]>:<kind>:<month>}
//	<p>:{m:day:<…>:<date>}                                a person reminded that day
//
// Links, dialogs and reminder settings had the names they have now.

// legacyWindow is the previous release's attempt window and lockout: a
// day for both (bot.verifyPolicy then).
const legacyWindow = 24 * time.Hour

func legacyAttemptKey(prefix, key, part string) string {
	return prefix + ":{a:" + legacyAttemptHash(key) + "}:" + part
}

func legacyAttemptHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])[:32]
}

// legacyPersonHash is the previous reminder package's personHash.
func legacyPersonHash(personID string) string {
	h := sha256.Sum256([]byte("shebao-reminder:" + personID))
	return hex.EncodeToString(h[:12])
}

// legacyMark splits a previous-release mark name ("sent:<hash>:<kind>:<month>",
// "day:<hash>:<date>") into the person's hash and the mark as it is now
// ("sent:<kind>:<month>", "day:<date>"). ok is false for a mark about no
// one ("done:…"), which keeps its name.
func legacyMark(name string) (hash, mark string, ok bool) {
	kind, rest, found := strings.Cut(name, ":")
	if !found || (kind != "sent" && kind != "day") {
		return "", "", false
	}
	hash, rest, found = strings.Cut(rest, ":")
	if !found || len(hash) != 24 {
		return "", "", false
	}
	return hash, kind + ":" + rest, true
}

// legacyThrottle turns a previous-release counter (its value and PTTL) and
// lockout into what a throttle merges: the lockout as a hold, and the
// failures as attempts made when the window began, so that they count
// exactly as long as the old counter would have. The members are fixed, so
// two replicas converting the same key add the same attempts once.
func legacyThrottle(n, pttl *redis.Cmd, lock *redis.StringCmd, now time.Time) (hold int64, attempts []attempt) {
	if end, err := lock.Int64(); err == nil && end > now.UnixMilli() {
		hold = end
	}
	count, err1 := n.Int64()
	left, err2 := pttl.Int64()
	if err1 != nil || err2 != nil || count <= 0 || left <= 0 {
		return hold, nil
	}
	began := now.Add(-legacyWindow + time.Duration(left)*time.Millisecond).UnixMilli()
	for i := range min(count, 100) {
		attempts = append(attempts, attempt{score: began, member: "v1:" + strconv.FormatInt(i, 10)})
	}
	return hold, attempts
}

// legacyLive reports whether previous-release attempt keys may still
// exist: for a day after the migration.
func (s *Store) legacyLive() bool {
	return time.Now().UnixMilli() < s.legacyUntil.Load()
}
