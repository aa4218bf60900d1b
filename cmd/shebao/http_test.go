package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shebao/shebao/bot/telegram/telegramtest"
	"github.com/shebao/shebao/records"
)

func TestPublicListenerRefusesOversizedHeader(t *testing.T) {
	addr, _ := testServer(t, okHandler, publicLimits)
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: test\r\nX-Pad: " + strings.Repeat("a", 12<<10) + "\r\n\r\n")
	if code, _ := c.response(); code != 200 {
		t.Errorf("a 12 KiB header: %d, want 200", code)
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: test\r\nX-Pad: " + strings.Repeat("a", 64<<10) + "\r\n\r\n")
	if code, _ := c.response(); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 64 KiB header: %d, want 431", code)
	}
}

// Short limits stand in for the real ones: what is under test is that
// the server enforces each, not how long they are.
func shortLimits() httpLimits {
	return httpLimits{
		ReadHeader: 100 * time.Millisecond, Read: 200 * time.Millisecond, Write: time.Second,
		Idle: 100 * time.Millisecond, MaxHeaderBytes: 16 << 10, MaxConns: 64, HeaderGrace: time.Second,
	}
}

func TestPublicListenerCutsOffSlowHeader(t *testing.T) {
	addr, cl := testServer(t, okHandler, shortLimits())
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: test\r\n") // and nothing more
	if !c.closedByServer() {
		t.Fatal("a header that never ends kept its connection")
	}
	waitUntil(t, "the slot is free", func() bool { return cl.Open() == 0 })
}

func TestPublicListenerClosesIdleConnection(t *testing.T) {
	lim := shortLimits()
	lim.Read = time.Hour // the server would use it for idle connections too
	addr, cl := testServer(t, okHandler, lim)
	c := dial(t, addr)
	if code, _ := c.get("/"); code != 200 {
		t.Fatal(code)
	}
	if !c.closedByServer() {
		t.Fatal("an idle keep-alive connection stayed open")
	}
	waitUntil(t, "the slot is free", func() bool { return cl.Open() == 0 })
}

func TestPublicListenerCutsOffTrickledBody(t *testing.T) {
	// /livez reads no body; the server still reads what is sent, to reuse
	// the connection, and must not do so forever.
	addr, _ := testServer(t, okHandler, shortLimits())
	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n0123456789")
	if code, _ := c.response(); code != 200 {
		t.Fatalf("status %d", code)
	}
	if !c.closedByServer() {
		t.Fatal("a body trickled after the answer kept its connection")
	}
}

// webhookServer serves a stand-in webhook handler under the webhook's
// deadlines (body, handle) with the public listener's short limits.
func webhookServer(t *testing.T, body, handle time.Duration, h http.HandlerFunc) string {
	t.Helper()
	lim := shortLimits()
	// Only the route's own deadlines can cut a body off; every other
	// route answers at once.
	lim.Read, lim.Write = time.Hour, 200*time.Millisecond
	addr, _ := testServer(t, withWebhookDeadlines(h, body, handle, time.Second), lim)
	return addr
}

func TestWebhookBodyUnderDeadline(t *testing.T) {
	readErr := make(chan error, 1)
	addr := webhookServer(t, 100*time.Millisecond, 10*time.Second, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
		}
	})
	c := dial(t, addr)
	c.send("POST /hook HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789") // 90 bytes never come
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("a body that never ends was read without error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still reading a body that never ends")
	}
	if code, _ := c.response(); code != http.StatusBadRequest {
		t.Errorf("status %d, want the handler's 400", code)
	}
}

func TestWebhookHandlingOutlivesBodyDeadline(t *testing.T) {
	// The server's WriteTimeout (200 ms) and the body deadline (50 ms)
	// both pass while the update is handled: neither may cancel the
	// handling or lose its answer.
	addr := webhookServer(t, 50*time.Millisecond, 10*time.Second, func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(500 * time.Millisecond): // a slow LLM, in the test
			io.WriteString(w, "handled")
		case <-r.Context().Done():
			http.Error(w, "cancelled: "+context.Cause(r.Context()).Error(), http.StatusServiceUnavailable)
		}
	})
	c := dial(t, addr)
	c.send("POST /hook HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}")
	if code, body := c.response(); code != 200 {
		t.Errorf("status %d %q, want 200 handled", code, body)
	}
}

func TestWebhookHandlingEndsAtDeadline(t *testing.T) {
	cause := make(chan error, 1)
	addr := webhookServer(t, time.Second, 100*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) //nolint:errcheck // the body is not what this test is about
		<-r.Context().Done()
		cause <- r.Context().Err()
		http.Error(w, "not handled", http.StatusServiceUnavailable)
	})
	c := dial(t, addr)
	c.send("POST /hook HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}")
	if code, _ := c.response(); code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 written after the handling deadline", code)
	}
	if err := <-cause; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler context ended with %v, want its deadline", err)
	}
}

// countingCheck is a readiness check that counts its calls.
type countingCheck struct {
	calls atomic.Int64
	err   atomic.Pointer[error]
}

func (c *countingCheck) ping(context.Context) error {
	c.calls.Add(1)
	if e := c.err.Load(); e != nil {
		return *e
	}
	return nil
}

func TestReadyzCachesChecks(t *testing.T) {
	redis := &countingCheck{}
	h := newHealth(slog.New(slog.DiscardHandler), healthCheck{"redis", redis.ping})
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", h.readyz)
	addr, _ := testServer(t, mux, publicLimits)

	probe := func() int {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if code := probe(); code != 200 {
				t.Errorf("readyz %d", code)
			}
		})
	}
	wg.Wait()
	if n := redis.calls.Load(); n != 1 {
		t.Errorf("50 probes within the TTL made %d checks, want 1", n)
	}
	down := errors.New("connection refused")
	redis.err.Store(&down)
	if code := probe(); code != 200 {
		t.Errorf("within the TTL: %d, want the cached 200", code)
	}
	advance(h.ttl)
	if code := probe(); code != http.StatusServiceUnavailable {
		t.Errorf("after the TTL with Redis down: %d, want 503", code)
	}
	if n := redis.calls.Load(); n != 2 {
		t.Errorf("%d checks, want 2", n)
	}
}

func TestReadyzFailsWhenRecordsDoNotAnswer(t *testing.T) {
	db, err := records.OpenDemo(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	h := newHealth(newLogger(logs, slog.LevelInfo), healthCheck{"records", db.Ping})
	h.ttl = 0 // every probe checks
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.HandleFunc("GET /livez", h.livez)
	addr, _ := testServer(t, mux, publicLimits)
	if code, body := dial(t, addr).get("/readyz"); code != 200 {
		t.Fatalf("records open: %d %q", code, body)
	}
	db.Close()
	if code, body := dial(t, addr).get("/readyz"); code != http.StatusServiceUnavailable || body != "records unavailable\n" {
		t.Errorf("records closed: %d %q, want 503 records unavailable", code, body)
	}
	if code, _ := dial(t, addr).get("/livez"); code != 200 {
		t.Errorf("livez with the records closed: %d, want 200", code)
	}
	if !strings.Contains(logs.String(), `"msg":"not ready","check":"records"`) {
		t.Errorf("the failure is not in the log:\n%s", logs.String())
	}
}

// startRedisServer starts a private redis-server on a free loopback port
// and returns its URL and a function that kills it.
func startRedisServer(t *testing.T) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (CI installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(kill)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitUntil(t, "redis-server answers", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		io.WriteString(c, "PING\r\n")
		b := make([]byte, 5)
		_, err = io.ReadFull(c, b)
		return err == nil && string(b) == "+PONG"
	})
	return "redis://" + addr + "/0", kill
}

func status(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeProbesWhileRedisIsDown(t *testing.T) {
	redisURL, killRedis := startRedisServer(t)
	fake := telegramtest.New(testToken)
	defer fake.Close()
	vars := map[string]string{
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL,
		"LISTEN_ADDR": "127.0.0.1:0", "REDIS_URL": redisURL, "SHEBAO_KEYS": testKeys,
	}
	logs, stop := startServe(t, vars)
	addr := listenAddr(t, logs)
	base := "http://" + addr
	for _, path := range []string{"/livez", "/readyz", "/healthz"} {
		if code, body := status(t, base+path); code != 200 || body != "ok\n" {
			t.Errorf("GET %s with Redis up = %d %q, want 200 ok", path, code, body)
		}
	}
	probeVars := map[string]string{"LISTEN_ADDR": addr}
	if err := run(context.Background(), []string{"probe"}, env(probeVars), nil, io.Discard, io.Discard); err != nil {
		t.Errorf("shebao probe with Redis up: %v", err)
	}

	killRedis()
	waitUntil(t, "/readyz notices Redis is gone", func() bool {
		code, _ := status(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if _, body := status(t, base+"/readyz"); body != "redis unavailable\n" {
		t.Errorf("/readyz body %q, want redis unavailable", body)
	}
	if code, _ := status(t, base+"/livez"); code != 200 {
		t.Errorf("/livez with Redis down = %d, want 200: an orchestrator would restart a bot that still answers", code)
	}
	if code, _ := status(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz (as /readyz) with Redis down = %d, want 503", code)
	}
	if err := run(context.Background(), []string{"probe", "/readyz"}, env(probeVars), nil, io.Discard, io.Discard); err == nil {
		t.Error("shebao probe /readyz with Redis down succeeded")
	}
	if err := run(context.Background(), []string{"probe", "/livez"}, env(probeVars), nil, io.Discard, io.Discard); err != nil {
		t.Errorf("shebao probe /livez with Redis down: %v", err)
	}
	if code, _ := status(t, base+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the public listener = %d, want 404", code)
	}
	stop() //nolint:errcheck // how serve stops with Redis gone is not this test's subject
	l := logs.String()
	for _, want := range []string{
		`"msg":"DEBUG_ADDR not set: /metrics and /debug/pprof/ are off"`,
		`"msg":"GET /healthz is deprecated`,
		`"msg":"not ready","check":"redis"`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if n := strings.Count(l, "/healthz is deprecated"); n != 1 {
		t.Errorf("deprecation logged %d times, want once", n)
	}
}

func TestServeReadyzDrainsBeforeListenerCloses(t *testing.T) {
	fake := telegramtest.New(testToken)
	defer fake.Close()
	logs, stop := startServe(t, map[string]string{
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL,
		"LISTEN_ADDR": "127.0.0.1:0", "DRAIN_DELAY": "3s",
	})
	base := "http://" + listenAddr(t, logs)
	if code, _ := status(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz before SIGTERM = %d", code)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Within DRAIN_DELAY the listener still answers, /readyz with 503.
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var saw []string
	for draining := false; !draining; {
		resp, err := c.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("listener gone before /readyz said draining, after %d answers %v: %v", len(saw), saw[max(0, len(saw)-3):], err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		saw = append(saw, fmt.Sprint(resp.StatusCode))
		if draining = resp.StatusCode == http.StatusServiceUnavailable; draining && string(b) != "draining\n" {
			t.Errorf("body %q, want draining", b)
		}
	}
	if code, _ := status(t, base+"/livez"); code != 200 {
		t.Errorf("/livez while draining = %d, want 200", code)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if _, err := c.Get(base + "/livez"); err == nil {
		t.Error("the listener still answers after serve returned")
	}
}

func TestServeWarnsOnPublicDebugAddr(t *testing.T) {
	fake := telegramtest.New(testToken)
	defer fake.Close()
	logs, stop := startServe(t, map[string]string{
		"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL,
		"LISTEN_ADDR": "127.0.0.1:0", "DEBUG_ADDR": ":0",
	})
	listenAddr(t, logs)
	debugAddr(t, logs)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"level":"WARN","msg":"DEBUG_ADDR is not a loopback address`).MatchString(logs.String()) {
		t.Errorf("no warning for DEBUG_ADDR on every interface:\n%s", logs.String())
	}
}

var debugRE = regexp.MustCompile(`"msg":"debug listener","addr":"([^"]+)"`)

// debugAddr waits for the "debug listener" log line and returns its address.
func debugAddr(t *testing.T, logs *syncBuffer) string {
	t.Helper()
	var addr string
	waitUntil(t, "the debug listener is logged", func() bool {
		m := debugRE.FindStringSubmatch(logs.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}

func TestConfigHTTPSettings(t *testing.T) {
	c, err := loadConfig(env(map[string]string{}), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConns != defaultMaxConns || c.DrainDelay != 0 || c.DebugAddr != "" {
		t.Errorf("defaults: max conns %d, drain delay %s, debug addr %q", c.MaxConns, c.DrainDelay, c.DebugAddr)
	}
	c, err = loadConfig(env(map[string]string{"LISTEN_MAX_CONNS": "256", "DRAIN_DELAY": "5s", "DEBUG_ADDR": "127.0.0.1:6060"}), false)
	if err != nil || c.MaxConns != 256 || c.DrainDelay != 5*time.Second {
		t.Errorf("set: %+v, %v", c, err)
	}
	_, err = loadConfig(env(map[string]string{"LISTEN_MAX_CONNS": "4", "DRAIN_DELAY": "forever", "DEBUG_ADDR": "6060"}), false)
	for _, name := range []string{"LISTEN_MAX_CONNS", "DRAIN_DELAY", "DEBUG_ADDR"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s not reported: %v", name, err)
		}
	}
}
