package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// children tracks every process the harness started, so all of them are
// killed (whole process group) however the harness ends.
type children struct {
	mu   sync.Mutex
	list []*child
	log  *slog.Logger
}

// child is one started process; its output goes to a log file.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	code int           // exit code once done; -1 when killed by a signal
	logf *os.File
}

// start runs path with args and exactly env (nothing is inherited, so an
// OPENAI_* or REDIS_URL of the caller cannot leak into the run) in its own
// process group.
func (cs *children) start(name, dir, path string, args, env []string) (*child, error) {
	// Appended, so a restarted process keeps its predecessor's log.
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	// Setpgid lets one kill reach whatever the child starts; Pdeathsig
	// kills it if the harness dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), logf: f}
	go func() {
		err := cmd.Wait()
		c.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			c.code = ee.ExitCode()
		}
		f.Close()
		close(c.done)
	}()
	cs.mu.Lock()
	cs.list = append(cs.list, c)
	cs.mu.Unlock()
	cs.log.Debug("started", "name", name, "pid", cmd.Process.Pid)
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the child's process group.
func (c *child) signal(sig syscall.Signal) {
	if !c.exited() {
		_ = syscall.Kill(-c.pid(), sig) // already gone: nothing to do
	}
}

// stop sends SIGTERM and waits up to grace, then kills the group. It
// returns the exit code and how long the exit took.
func (c *child) stop(grace time.Duration) (code int, took time.Duration) {
	start := time.Now()
	c.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.signal(syscall.SIGKILL)
		<-c.done
	}
	return c.code, time.Since(start)
}

// killAll kills every process group still running and waits for them.
func (cs *children) killAll() {
	cs.mu.Lock()
	list := cs.list
	cs.list = nil
	cs.mu.Unlock()
	for _, c := range list {
		c.signal(syscall.SIGKILL)
	}
	for _, c := range list {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			cs.log.Warn("child did not exit after SIGKILL", "name", c.name, "pid", c.pid())
		}
	}
}

// freePort returns a loopback port nobody listens on right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// redisServer is a redis-server the harness owns: no persistence, loopback
// only, in a temporary directory.
type redisServer struct {
	bin, dir string
	port     int
	proc     *child
	cs       *children
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// startRedis starts redis-server on a free loopback port.
func startRedis(ctx context.Context, cs *children, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH: install it (apt-get install -y redis-server) or pass --redis-url")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{bin: bin, dir: dir, port: port, cs: cs}
	return r, r.start(ctx)
}

// start (re)starts the server on its port and waits until it answers PING.
func (r *redisServer) start(ctx context.Context) error {
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning"}
	p, err := r.cs.start("redis", r.dir, r.bin, args, []string{"PATH=/usr/bin:/bin"})
	if err != nil {
		return err
	}
	r.proc = p
	addr := "127.0.0.1:" + strconv.Itoa(r.port)
	return waitFor(ctx, 10*time.Second, func() error {
		if p.exited() {
			return fmt.Errorf("redis-server exited with code %d (see %s)", p.code, filepath.Join(r.dir, "redis.log"))
		}
		return redisPing(addr)
	})
}

// redisPing speaks just enough RESP to check the server answers.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second)) //nolint:errcheck // a fresh conn
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q", strings.TrimSpace(line))
	}
	return nil
}

// waitFor calls check every 50 ms until it succeeds, ctx ends or limit
// passes, and returns check's last error.
func waitFor(ctx context.Context, limit time.Duration, check func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", limit, err)
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

var probe = &http.Client{Timeout: 2 * time.Second}

// healthz returns the status of GET url, 0 when nothing answered.
func healthz(url string) int {
	resp, err := probe.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
	resp.Body.Close()
	return resp.StatusCode
}

// promSample is what the harness reads from shebao's /metrics.
type promSample struct {
	redisTrips float64
	handled    float64
}

// scrape reads the Redis round trips and the handled updates from a
// Prometheus text endpoint.
func scrape(url string) (promSample, error) {
	resp, err := probe.Get(url)
	if err != nil {
		return promSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return promSample{}, fmt.Errorf("scrape %s: HTTP %d", url, resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (promSample, error) {
	var s promSample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "shebao_redis_round_trips_total":
			s.redisTrips = v
		case strings.HasPrefix(name, "shebao_updates_total{") && strings.Contains(name, `outcome="handled"`):
			s.handled += v
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read metrics: %w", err)
	}
	return s, nil
}

// memory reads VmRSS and VmHWM (KiB) of pid.
func memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}
