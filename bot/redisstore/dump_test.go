package redisstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// server is one Redis for a test that opens several stores over it, or
// writes to it as the previous release did: REDIS_URL (a real
// redis-server) under a prefix of the test's own, else a miniredis.
type server struct {
	url    string
	prefix string
	rdb    redis.UniversalClient
	mr     *miniredis.Miniredis // nil for a real server
}

func newServer(t testing.TB) *server {
	t.Helper()
	return newServerAt(t, os.Getenv("REDIS_URL"))
}

// newServerAt is newServer for the server or cluster at url ("": a
// miniredis).
func newServerAt(t testing.TB, url string) *server {
	t.Helper()
	sv := &server{url: url, prefix: "test-" + rand.Text()[:12]}
	if sv.url == "" {
		sv.mr = miniredis.RunT(t)
		sv.url = "redis://" + sv.mr.Addr()
	}
	if strings.Contains(sv.url, "addr=") {
		// A cluster (REDIS_URL=redis://a?addr=b&addr=c), as Open takes it.
		o, err := redis.ParseClusterURL(sv.url)
		if err != nil {
			t.Fatal(err)
		}
		sv.rdb = redis.NewClusterClient(o)
	} else {
		o, err := redis.ParseURL(sv.url)
		if err != nil {
			t.Fatal(err)
		}
		sv.rdb = redis.NewClient(o)
	}
	t.Cleanup(func() {
		deleteUnder(context.Background(), sv.rdb, sv.prefix)
		sv.rdb.Close()
	})
	if _, ok := sv.rdb.(*redis.ClusterClient); ok {
		guardSlots(t, sv.rdb)
	}
	return sv
}

func (sv *server) v1() *v1Store { return &v1Store{rdb: sv.rdb, prefix: sv.prefix} }

func (sv *server) open(t *testing.T, opt Options) *Store {
	t.Helper()
	opt.URL, opt.KeyPrefix = sv.url, sv.prefix
	if opt.Keys == nil {
		opt.Keys = testKeys
	}
	if opt.OpTimeout == 0 {
		opt.OpTimeout = time.Second
	}
	s, err := Open(context.Background(), opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := s.rdb.(*redis.ClusterClient); ok {
		guardSlots(t, s.rdb)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// keys lists every key under the test's prefix, sorted.
func (sv *server) keys(t testing.TB) []string {
	t.Helper()
	out, err := keysUnder(context.Background(), sv.rdb, sv.prefix)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dump is every key under the prefix with all it holds, as text: what
// someone with a copy of the database (or its AOF) would read.
func (sv *server) dump(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range sv.keys(t) {
		typ, err := sv.rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = sv.rdb.Get(ctx, k).Result()
		case "hash":
			v, err = sv.rdb.HGetAll(ctx, k).Result()
		case "set":
			v, err = sv.rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = sv.rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = sv.rdb.LRange(ctx, k, 0, -1).Result()
		case "none":
			continue // expired between SCAN and TYPE
		default:
			t.Fatalf("key %s of unexpected type %s", k, typ)
		}
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		out[k] = fmt.Sprintf("%s %v", typ, v)
	}
	return out
}

// idPattern is an 18-character resident ID number in a text; phonePattern
// an 11-digit mobile number. Both stand alone: a millisecond timestamp (13
// digits, starting 17…) is neither.
var (
	idPattern    = regexp.MustCompile(`(?:^|\D)(\d{17}[\dXx])(?:[^\dXx]|$)`)
	phonePattern = regexp.MustCompile(`(?:^|\D)(1[3-9]\d{9})(?:\D|$)`)
)

// assertNoPersonalData fails for any key or value under the prefix that
// holds an ID number or a phone in plain text, or any of the given
// strings (the test's own numbers, their previous-release hashes).
func (sv *server) assertNoPersonalData(t *testing.T, also ...string) {
	t.Helper()
	d := sv.dump(t)
	if len(d) == 0 {
		t.Fatal("empty dump")
	}
	for k, v := range d {
		// The prefix is random text; look at the rest.
		kv := strings.TrimPrefix(k, sv.prefix) + " = " + v
		if m := idPattern.FindStringSubmatch(kv); m != nil {
			t.Errorf("an ID number at rest: %s holds %q", k, m[1])
		}
		if m := phonePattern.FindStringSubmatch(kv); m != nil {
			t.Errorf("a phone at rest: %s holds %q", k, m[1])
		}
		for _, s := range also {
			if strings.Contains(kv, s) {
				t.Errorf("%s holds %q", k, s)
			}
		}
	}
}

// testLogger logs to the test, at every level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
