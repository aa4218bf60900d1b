package redisstore

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
)

// At maxmemory (policy noeviction) Redis refuses writes: the store reports
// them as bot.ErrUnavailable, so the engine answers without state as when
// Redis is down, and it still reads, so verified users keep their link.
// The breaker stays closed: once memory is freed, writes work at once.
func TestMaxmemoryRefusesWritesOnly(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("SHEBAO_REQUIRE_CLUSTER") == "1" {
			t.Fatal("SHEBAO_REQUIRE_CLUSTER=1 but redis-server is not installed")
		}
		t.Skip("needs redis-server to start one with a memory limit")
	}
	dir := t.TempDir()
	port := freeClusterPorts(t, 1)[0]
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
		"--appendonly", "no", "--maxmemory-policy", "noeviction", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := &ownCluster{t: t}
	c.waitFor(addr, "PONG", "ping")

	ctx := t.Context()
	s, err := Open(ctx, Options{URL: "redis://" + addr + "/0", Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	linked := bot.State{Lang: "zh", Link: bot.Link{PersonID: "110101199001011234", Until: s.clock().Add(time.Hour)}}
	if err := s.Save(ctx, tg(1), tg(1), linked, bot.PartLang|bot.PartLink); err != nil {
		t.Fatal(err)
	}

	if out, err := c.cli(addr, "config", "set", "maxmemory", "1"); err != nil {
		t.Fatalf("config set maxmemory: %v %s", err, out)
	}
	err = s.Save(ctx, tg(2), tg(2), bot.State{Lang: "en"}, bot.PartLang)
	if !errors.Is(err, bot.ErrUnavailable) {
		t.Errorf("Save at maxmemory: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Begin(ctx, tg(2), 1); !errors.Is(err, bot.ErrUnavailable) {
		t.Errorf("Begin at maxmemory: %v, want ErrUnavailable", err)
	}
	st, err := s.Load(ctx, tg(1), tg(1))
	if err != nil {
		t.Fatalf("Load at maxmemory: %v; reads must still work", err)
	}
	if st.Link.PersonID != linked.Link.PersonID || st.Lang != "zh" {
		t.Errorf("Load at maxmemory = %+v", st)
	}

	if out, err := c.cli(addr, "config", "set", "maxmemory", "0"); err != nil {
		t.Fatalf("config set maxmemory: %v %s", err, out)
	}
	if err := s.Save(ctx, tg(2), tg(2), bot.State{Lang: "en"}, bot.PartLang); err != nil {
		t.Errorf("Save once memory is free: %v", err)
	}
}
