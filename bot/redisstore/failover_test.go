package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
)

// ownCluster is a Redis Cluster a test starts for itself (three primaries,
// three replicas, in t.TempDir on free ports), so that it may kill a node.
type ownCluster struct {
	t     *testing.T
	dir   string
	addrs []string
	procs map[string]*exec.Cmd
}

func startOwnCluster(t *testing.T, nodeTimeout time.Duration, extra ...string) *ownCluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("SHEBAO_REQUIRE_CLUSTER") == "1" {
				t.Fatalf("SHEBAO_REQUIRE_CLUSTER=1 but %s is not installed", bin)
			}
			t.Skipf("needs %s to start a cluster of its own", bin)
		}
	}
	dir := t.TempDir()
	c := &ownCluster{t: t, dir: dir, procs: map[string]*exec.Cmd{}}
	for _, port := range freeClusterPorts(t, 6) {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		d := filepath.Join(dir, strconv.Itoa(port))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
			"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
			"--dir", d, "--logfile", filepath.Join(d, "redis.log"))
		cmd.Args = append(cmd.Args, extra...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c.addrs = append(c.addrs, addr)
		c.procs[addr] = cmd
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.Process.Kill()
			p.Wait()
		}
	})
	for _, a := range c.addrs {
		c.waitFor(a, "PONG", "ping")
	}
	args := append([]string{"--cluster", "create"}, c.addrs...)
	out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range c.addrs {
		c.waitFor(a, "cluster_state:ok", "cluster", "info")
	}
	// A replica that has not finished its first sync cannot take over
	// (it has been "disconnected from master for longer than allowed").
	for _, a := range c.addrs {
		c.waitForAny(a, []string{"role:master", "master_link_status:up"}, "info", "replication")
	}
	return c
}

// freeClusterPorts finds n ports free on loopback whose cluster bus ports
// (port + 10000) are free too.
func freeClusterPorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var hold []net.Listener
	defer func() {
		for _, l := range hold {
			l.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 200; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hold = append(hold, l)
		p := l.Addr().(*net.TCPAddr).Port
		if p+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		if err != nil {
			continue
		}
		hold = append(hold, bus)
		out = append(out, p)
	}
	if len(out) < n {
		t.Fatal("no free ports for a cluster")
	}
	return out
}

// cli runs redis-cli against addr.
func (c *ownCluster) cli(addr string, args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).Output()
	return string(out), err
}

// waitFor polls redis-cli until its output holds want (a condition in the
// test, not logic).
func (c *ownCluster) waitFor(addr, want string, args ...string) {
	c.t.Helper()
	c.waitForAny(addr, []string{want}, args...)
}

func (c *ownCluster) waitForAny(addr string, wants []string, args ...string) {
	c.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := c.cli(addr, args...)
		if err == nil && slices.ContainsFunc(wants, func(w string) bool { return strings.Contains(out, w) }) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s %v never answered %q: %q, %v", addr, args, wants, out, err)
		}
	}
}

// alive is a node that has not been killed.
func (c *ownCluster) alive() string {
	for _, a := range c.addrs {
		if c.procs[a] != nil {
			return a
		}
	}
	c.t.Fatal("every node killed")
	return ""
}

// primaryOf returns the address of the primary serving key's slot, as a
// node that is alive sees it.
func (c *ownCluster) primaryOf(key string) string {
	c.t.Helper()
	slot, err := c.cli(c.alive(), "cluster", "keyslot", key)
	if err != nil {
		c.t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(slot))
	nodes, err := c.cli(c.alive(), "cluster", "nodes")
	if err != nil {
		c.t.Fatal(err)
	}
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && a <= n && n <= b {
				addr, _, _ := strings.Cut(f[1], "@")
				return addr
			}
		}
	}
	c.t.Fatalf("no primary serves slot %d:\n%s", n, nodes)
	return ""
}

// kill ends a node the hard way, as a crashed machine would.
func (c *ownCluster) kill(addr string) {
	c.t.Helper()
	p := c.procs[addr]
	if err := p.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	p.Wait()
	delete(c.procs, addr)
}

// failoverLoad is what the test's writers did, per user.
type failoverLoad struct {
	mu      sync.Mutex
	acked   map[int64]int64   // the last dialog step whose Save returned nil
	handled map[int64][]int64 // updates whose dedupe mark was seen written
	held    []int64           // updates HoldUpdates acknowledged
	failed  map[int64]int     // failed updates per user
	ok, bad atomic.Int64
	other   []error // failures that do not wrap bot.ErrUnavailable
	// firstBad and lastBad bound the failures (unix ns).
	firstBad, lastBad atomic.Int64
}

func (l *failoverLoad) fail(user int64, err error) {
	l.bad.Add(1)
	now := time.Now().UnixNano()
	l.firstBad.CompareAndSwap(0, now)
	l.lastBad.Store(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if user != 0 {
		l.failed[user]++
	}
	if !errors.Is(err, bot.ErrUnavailable) {
		l.other = append(l.other, err)
	}
}

// A primary dies mid-run: the store keeps answering through the failover
// once go-redis follows the new topology, and the test says what was lost.
// It kills the primary of the hand-off's slot, so held updates (confirmed
// to Telegram, in Redis alone) are among what it can lose.
//
// With Redis's default, cluster-require-full-coverage yes, every node
// refuses every command while a slot has no primary, so all users fail
// until the replica takes over. With "no" the other primaries go on
// serving their slots: then the users whose keys are all there must not
// notice (each node has its own breaker).
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and waits for a failover")
	}
	for _, full := range []bool{true, false} {
		t.Run(fmt.Sprintf("require-full-coverage=%v", full), func(t *testing.T) { testFailover(t, full) })
	}
}

func testFailover(t *testing.T, fullCoverage bool) {
	const nodeTimeout = time.Second
	c := startOwnCluster(t, nodeTimeout, "--cluster-require-full-coverage", map[bool]string{true: "yes", false: "no"}[fullCoverage])
	ctx := t.Context()
	s, err := Open(ctx, Options{URL: clusterURLOf(c.addrs), Keys: testKeys, KeyPrefix: "failover"})
	if err != nil {
		t.Fatal(err)
	}
	guardSlots(t, s.rdb)
	defer s.Close()
	victim := c.primaryOf(s.heldKey())

	// Live users are written throughout; witnesses only until the kill,
	// so that what the cluster kept of them afterwards shows what the
	// failover lost (a later write would hide it). A user is affected
	// when one of its slots (claims, state) is on the victim.
	l := &failoverLoad{acked: map[int64]int64{}, handled: map[int64][]int64{}, failed: map[int64]int{}}
	const users = 96
	const live, witness = 100, 300
	affected := map[int64]bool{}
	for u := int64(0); u < users; u++ {
		for _, user := range []int64{live + u, witness + u} {
			chat := tg(user)
			affected[user] = c.primaryOf(s.chatKey(chat, "q")) == victim || c.primaryOf(s.userKey(chat, chat, langKey)) == victim
		}
	}
	t.Logf("cluster %v; killing %s, the primary of the hand-off's slot", c.addrs, victim)
	var killing atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for step := int64(1); ; step++ {
				for u := int64(w); u < users; u += 8 {
					select {
					case <-stop:
						return
					default:
					}
					l.turn(ctx, s, live+u, step)
					if !killing.Load() {
						l.turn(ctx, s, witness+u, step)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for id := int64(1); ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			err := s.HoldUpdates(ctx, time.Now(), map[int64][]byte{id: []byte(`{"update_id":` + strconv.FormatInt(id, 10) + `}`)})
			if err != nil {
				l.fail(0, err)
				time.Sleep(10 * time.Millisecond) // the test's pace, not logic
				continue
			}
			l.ok.Add(1)
			l.mu.Lock()
			l.held = append(l.held, id)
			l.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	})

	time.Sleep(time.Second) // load before the kill: the test's timeline, not logic
	killing.Store(true)
	okBefore := l.ok.Load()
	killed := time.Now()
	c.kill(victim)
	for deadline := time.Now().Add(30 * time.Second); c.primaryOf(s.heldKey()) == victim; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no replica took over from the killed primary")
		}
	}
	c.waitFor(c.alive(), "cluster_state:ok", "cluster", "info")
	promoted := time.Since(killed)
	// Then the store must work: two seconds without a failure.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		last := time.Unix(0, l.lastBad.Load())
		if time.Since(last) > 2*time.Second && time.Since(killed) > 2*time.Second {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("the store still fails %v after the kill (%d calls failed)", time.Since(killed), l.bad.Load())
		}
	}
	close(stop)
	wg.Wait()
	if l.ok.Load() == okBefore {
		t.Error("nothing succeeded after the kill")
	}

	var outage time.Duration
	if first, last := l.firstBad.Load(), l.lastBad.Load(); first != 0 {
		outage = time.Unix(0, last).Sub(time.Unix(0, first))
	}
	for _, err := range l.other {
		t.Errorf("a failure that is not ErrUnavailable: %v", err)
	}
	failedUsers, failedUnaffected := 0, 0
	for user, n := range l.failed {
		if n > 0 {
			failedUsers++
			if !affected[user] {
				failedUnaffected++
			}
		}
	}
	nAffected := 0
	for _, a := range affected {
		if a {
			nAffected++
		}
	}
	if !fullCoverage && failedUnaffected > 0 {
		t.Errorf("%d users with no key on the dead primary saw failures; with partial coverage they must not", failedUnaffected)
	}

	// What was lost: acknowledged dialog steps the cluster no longer has,
	// answered updates whose dedupe mark is gone (a redelivery would be
	// answered twice), and held updates that are gone (confirmed to
	// Telegram: never answered).
	lostSteps, lostMarks, checkedMarks := 0, 0, 0
	for u := int64(0); u < users; u++ {
		user := witness + u
		chat := tg(user)
		st, err := s.Load(ctx, chat, chat)
		if err != nil {
			t.Fatalf("Load after failover: %v", err)
		}
		if got, _ := strconv.ParseInt(st.Dialog.Step, 10, 64); got < l.acked[user] {
			lostSteps++
		}
		for _, id := range l.handled[user] {
			checkedMarks++
			done, dup, err := s.Begin(ctx, chat, id)
			if err != nil {
				t.Fatalf("Begin after failover: %v", err)
			}
			if !dup {
				lostMarks++
				done(false)
			}
		}
	}
	heldNow := map[int64]bool{}
	if err := s.HeldUpdates(ctx, func(id int64, _ time.Time, _ []byte) { heldNow[id] = true }); err != nil {
		t.Fatalf("HeldUpdates after failover: %v", err)
	}
	var lostHeld []int64
	for _, id := range l.held {
		if !heldNow[id] {
			lostHeld = append(lostHeld, id)
		}
	}
	slices.Sort(lostHeld)
	t.Logf("failover of %s: a replica served its slots %v after the kill (node timeout %v); store calls failed for %v; "+
		"%d of %d users saw a failure (%d have a key on the dead primary, %d do not); all failures ErrUnavailable: %v",
		victim, promoted.Round(10*time.Millisecond), nodeTimeout, outage.Round(10*time.Millisecond),
		failedUsers, 2*users, nAffected, failedUnaffected, len(l.other) == 0)
	t.Logf("lost: %d of %d users' last acknowledged dialog step, %d of %d dedupe marks, %d of %d held updates %s",
		lostSteps, users, lostMarks, checkedMarks, len(lostHeld), len(l.held), fmtIDs(lostHeld))
}

func fmtIDs(ids []int64) string {
	if len(ids) == 0 {
		return ""
	}
	if len(ids) > 10 {
		return fmt.Sprintf("(ids %d…%d)", ids[0], ids[len(ids)-1])
	}
	return fmt.Sprint(ids)
}

// turn is one update of user's private chat: claim, load, save the dialog
// at step, release. After a failure it pauses a little, as a replica
// answering without state would take a moment to reply.
func (l *failoverLoad) turn(ctx context.Context, s *Store, user, step int64) {
	chat := tg(user)
	fail := func(err error) {
		l.fail(user, err)
		time.Sleep(10 * time.Millisecond) // the test's pace, not logic
	}
	done, dup, err := s.Begin(ctx, chat, step)
	if err != nil {
		fail(err)
		return
	}
	if dup {
		return
	}
	if _, err := s.Load(ctx, chat, chat); err != nil {
		done(false)
		fail(err)
		return
	}
	err = s.Save(ctx, chat, chat, bot.State{Dialog: bot.Dialog{Name: "verify", Step: strconv.FormatInt(step, 10)}}, bot.PartDialog)
	if err != nil {
		done(false)
		fail(err)
		return
	}
	done(true)
	l.ok.Add(1)
	l.mu.Lock()
	l.acked[user] = step
	l.mu.Unlock()
	// done has no error to return (a failed release only waits for the
	// lease): the mark counts as written once a redelivery is a duplicate.
	again, dup, err := s.Begin(ctx, chat, step)
	switch {
	case err != nil:
		fail(err)
	case dup:
		l.mu.Lock()
		l.handled[user] = append(l.handled[user], step)
		l.mu.Unlock()
	default:
		again(false)
	}
}
