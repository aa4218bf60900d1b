package redisstore

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
)

// The three forms of REDIS_URL give the client an operator expects, with
// the store's small timeouts where the URL names none and the URL's own
// where it does.
func TestNewClientURLForms(t *testing.T) {
	open := func(t *testing.T, u string, cluster bool) redis.UniversalClient {
		t.Helper()
		opt := Options{URL: u, Cluster: cluster, Keys: testKeys}
		opt.setDefaults()
		rdb, err := newClient(opt)
		if err != nil {
			t.Fatalf("newClient(%q): %v", u, err)
		}
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}

	t.Run("single", func(t *testing.T) {
		c, ok := open(t, "redis://:pw@10.0.0.1:6380/3", false).(*redis.Client)
		if !ok {
			t.Fatal("not a single-server client")
		}
		o := c.Options()
		if o.Addr != "10.0.0.1:6380" || o.DB != 3 || o.Password != "pw" {
			t.Errorf("addr %q db %d password %q", o.Addr, o.DB, o.Password)
		}
		if o.ReadTimeout != 300*time.Millisecond || o.DialTimeout != 600*time.Millisecond || !o.ContextTimeoutEnabled {
			t.Errorf("read timeout %v, dial timeout %v, context timeouts %v: want the store's defaults",
				o.ReadTimeout, o.DialTimeout, o.ContextTimeoutEnabled)
		}
	})

	t.Run("single with the URL's timeout", func(t *testing.T) {
		o := open(t, "redis://10.0.0.1:6380/0?read_timeout=2s", false).(*redis.Client).Options()
		if o.ReadTimeout != 2*time.Second || o.WriteTimeout != 300*time.Millisecond {
			t.Errorf("read timeout %v, write timeout %v", o.ReadTimeout, o.WriteTimeout)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		c, ok := open(t, "redis://:pw@10.0.0.1:7000?addr=10.0.0.2:7001&addr=10.0.0.3:7002", false).(*redis.ClusterClient)
		if !ok {
			t.Fatal("an addr= list did not give a cluster client")
		}
		o := c.Options()
		want := []string{"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"}
		if !slices.Equal(o.Addrs, want) || o.Password != "pw" {
			t.Errorf("seed nodes %v (want %v), password %q", o.Addrs, want, o.Password)
		}
		if o.ReadTimeout != 300*time.Millisecond || o.MaxRetries != 1 || !o.ContextTimeoutEnabled {
			t.Errorf("read timeout %v, retries %d, context timeouts %v", o.ReadTimeout, o.MaxRetries, o.ContextTimeoutEnabled)
		}
	})

	t.Run("cluster of one seed", func(t *testing.T) {
		if _, ok := open(t, "redis://10.0.0.1:7000", true).(*redis.ClusterClient); !ok {
			t.Fatal("Options.Cluster did not give a cluster client")
		}
	})

	t.Run("sentinel", func(t *testing.T) {
		c, ok := open(t, "redis://:spw@10.0.0.1:26379/2?master_name=mymaster&addr=10.0.0.2:26379&password=ppw", false).(*redis.Client)
		if !ok {
			t.Fatal("master_name did not give a failover client")
		}
		o := c.Options()
		// go-redis's failover client has no address of its own: it
		// asks the sentinels for the primary's.
		if o.Addr != "FailoverClient" || o.DB != 2 || o.Password != "ppw" {
			t.Errorf("addr %q db %d password %q: want a failover client on db 2 with the primary's password", o.Addr, o.DB, o.Password)
		}
		if o.ReadTimeout != 300*time.Millisecond || !o.ContextTimeoutEnabled {
			t.Errorf("read timeout %v, context timeouts %v", o.ReadTimeout, o.ContextTimeoutEnabled)
		}
	})
}

// A URL that cannot be used fails Open with a message that names the
// problem and never the password.
func TestNewClientURLErrors(t *testing.T) {
	for _, tc := range []struct {
		url     string
		cluster bool
		want    string
	}{
		{"redis://:s3cret@h:6379/0?master_nme=m", false, "unexpected option"},
		{"redis://:s3cret@h:7000?addr=h:7001&bogus=1", false, "unexpected option"},
		{"redis://:s3cret@h:26379?master_name=", false, "empty master_name"},
		{"redis://:s3cret@h:26379?master_name=m", true, "exclude each other"},
		{"redis://:s3cret@h:26379?master_name=m&addr=nohostport", false, "addr"},
		{"redis://:s3cret@h:6379/x?master_name=m", false, "database"},
	} {
		_, err := Open(t.Context(), Options{URL: tc.url, Cluster: tc.cluster, Keys: testKeys})
		if err == nil {
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q): %v, want it to say %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) error shows the password: %v", tc.url, err)
		}
	}
}

// Behind Sentinel the store finds the primary through the sentinel and
// keeps state there: a real redis-server and a real sentinel.
func TestSentinelURL(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("SHEBAO_REQUIRE_CLUSTER") == "1" {
			t.Fatal("SHEBAO_REQUIRE_CLUSTER=1 but redis-server is not installed")
		}
		t.Skip("needs redis-server to start a primary and a sentinel")
	}
	dir := t.TempDir()
	ports := freeClusterPorts(t, 2)
	primary, sentinel := ports[0], ports[1]
	start := func(args ...string) {
		cmd := exec.Command("redis-server", args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	start("--bind", "127.0.0.1", "--port", strconv.Itoa(primary), "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "primary.log"))
	// A sentinel rewrites its config file: it must be one of its own.
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nlogfile %s\nsentinel monitor shebao 127.0.0.1 %d 1\n",
		sentinel, dir, filepath.Join(dir, "sentinel.log"), primary)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	start(conf, "--sentinel")
	c := &ownCluster{t: t}
	c.waitFor("127.0.0.1:"+strconv.Itoa(primary), "PONG", "ping")
	c.waitFor("127.0.0.1:"+strconv.Itoa(sentinel), strconv.Itoa(primary), "sentinel", "get-master-addr-by-name", "shebao")

	ctx := t.Context()
	u := fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=shebao", sentinel)
	s, err := Open(ctx, Options{URL: u, Keys: testKeys, KeyPrefix: "sentinel"})
	if err != nil {
		t.Fatalf("Open(%q): %v", u, err)
	}
	defer s.Close()
	chat := tg(1)
	want := bot.State{Dialog: bot.Dialog{Name: "verify", Step: "code"}}
	if err := s.Save(ctx, chat, chat, want, bot.PartDialog); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, chat, chat)
	if err != nil {
		t.Fatal(err)
	}
	if got.Dialog.Name != want.Dialog.Name || got.Dialog.Step != want.Dialog.Step {
		t.Errorf("Load = %+v, want %+v", got.Dialog, want.Dialog)
	}
	// The state is on the primary the sentinel named.
	keys, err := c.cli("127.0.0.1:"+strconv.Itoa(primary), "--scan", "--pattern", "sentinel*")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(keys) == "" {
		t.Error("no key of the store on the primary the sentinel monitors")
	}
}
