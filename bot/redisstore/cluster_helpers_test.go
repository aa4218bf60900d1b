package redisstore

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster in tests.
//
// REDIS_CLUSTER_ADDRS names the nodes of a running cluster
// ("127.0.0.1:7100,127.0.0.1:7101,…"; .ci/run starts one with three
// primaries and three replicas). Without it the cluster tests skip, so
// `go test ./...` works on a fresh machine; with SHEBAO_REQUIRE_CLUSTER=1
// (CI) they fail instead. REDIS_URL may also name a cluster
// ("redis://a?addr=b&addr=c"): then every test of the package that uses
// REDIS_URL runs on it.

// clusterURL is REDIS_CLUSTER_ADDRS as a REDIS_URL of the cluster form.
func clusterURL(t testing.TB) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv("REDIS_CLUSTER_ADDRS"))
	if v == "" {
		if os.Getenv("SHEBAO_REQUIRE_CLUSTER") == "1" {
			t.Fatal("SHEBAO_REQUIRE_CLUSTER=1 but REDIS_CLUSTER_ADDRS is not set: start a Redis Cluster (see .ci/run)")
		}
		t.Skip("no Redis Cluster: set REDIS_CLUSTER_ADDRS=host:port,host:port,… (.ci/run starts one)")
	}
	return clusterURLOf(strings.Split(v, ","))
}

func clusterURLOf(addrs []string) string {
	u := "redis://" + strings.TrimSpace(addrs[0])
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + strings.TrimSpace(a)
	}
	return u
}

// slotGuard fails the test for any command that Redis Cluster or go-redis
// refused because its keys are in more than one slot: a multi-key
// command, a MULTI block, or a script that declared or touched keys of
// two slots (CROSSSLOT; "keys that do not hash to the same slot"), or a
// script that touched a key of a slot another node serves. It sees the
// commands whose errors the store only logs (or ignores) too. Errors are
// collected and reported when the test ends, so a background call that
// fails after the test body returned still counts.
type slotGuard struct {
	mu   sync.Mutex
	errs []string
}

// guardSlots installs a slotGuard on s's client and checks it at the end of
// the test (after the store is closed, when registered before its Close).
func guardSlots(t testing.TB, rdb redis.UniversalClient) {
	t.Helper()
	g := &slotGuard{}
	rdb.AddHook(g)
	t.Cleanup(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, e := range g.errs {
			t.Errorf("cross-slot command on the cluster: %s", e)
		}
	})
}

func crossSlot(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "CROSSSLOT") || strings.Contains(msg, "hash to the same slot") ||
		strings.Contains(msg, "non local key")
}

func (g *slotGuard) note(cmds ...redis.Cmder) {
	for _, c := range cmds {
		if err := c.Err(); crossSlot(err) {
			g.mu.Lock()
			g.errs = append(g.errs, strings.Join(redactArgs(c.Args()), " ")+": "+err.Error())
			g.mu.Unlock()
		}
	}
}

// redactArgs keeps a command's name and key-like arguments and cuts long
// values (sealed blobs) short, for a readable failure.
func redactArgs(args []any) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		s, _ := a.(string)
		if s == "" {
			s = "…"
		}
		if len(s) > 60 {
			s = s[:60] + "…"
		}
		out = append(out, s)
	}
	return out
}

func (g *slotGuard) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *slotGuard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		g.note(cmd)
		return err
	}
}

func (g *slotGuard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		g.note(cmds...)
		return err
	}
}

// keysUnder lists every key starting with prefix+":", on one server or on
// every primary of a cluster (a SCAN or KEYS sees one node's keys only),
// sorted.
func keysUnder(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	}
	slices.Sort(out)
	return slices.Compact(out), err
}

// deleteUnder deletes every key under prefix, one DEL per key (the keys
// are in many slots), in pipelines of 1000 so that each is within the
// client's timeouts (BenchmarkMemory leaves millions).
func deleteUnder(ctx context.Context, rdb redis.UniversalClient, prefix string) {
	keys, _ := keysUnder(ctx, rdb, prefix)
	for chunk := range slices.Chunk(keys, 1000) {
		pipe := rdb.Pipeline()
		for _, k := range chunk {
			pipe.Del(ctx, k)
		}
		pipe.Exec(ctx)
	}
}
