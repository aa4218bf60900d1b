package main

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// testServer serves h on a loopback port with lim and returns its address
// and connection cap (nil without one).
func testServer(t *testing.T, h http.Handler, lim httpLimits) (string, *connLimit) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, sln, cl := newServer(h, ln, lim, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), cl
}

// testConn is a raw client connection; every read and write gives up
// after 10 s, far beyond any limit under test, so that a test can tell
// the server closing the connection from the client giving up.
type testConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *testConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a fresh connection
	return &testConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

func (c *testConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// get sends a keep-alive GET and returns the answer's status and body.
func (c *testConn) get(path string) (int, string) {
	c.t.Helper()
	c.send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n")
	return c.response()
}

func (c *testConn) response() (int, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// closedByServer reports whether the server has closed the connection:
// a read ends with EOF or a reset, not with the client's own deadline.
func (c *testConn) closedByServer() bool {
	c.t.Helper()
	_, err := c.r.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// waitUntil polls cond (test scaffolding, not logic) for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

func (l *connLimit) idleCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle.Len()
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

func capped(n int, grace time.Duration) httpLimits {
	lim := publicLimits
	lim.MaxConns, lim.HeaderGrace = n, grace
	return lim
}

func TestConnLimitShedsLongestIdleForNewcomer(t *testing.T) {
	addr, cl := testServer(t, okHandler, capped(2, time.Hour))
	first, second := dial(t, addr), dial(t, addr)
	if code, _ := first.get("/"); code != 200 {
		t.Fatalf("first: %d", code)
	}
	waitUntil(t, "the first connection is idle", func() bool { return cl.idleCount() == 1 })
	if code, _ := second.get("/"); code != 200 {
		t.Fatalf("second: %d", code)
	}
	waitUntil(t, "both connections are idle", func() bool { return cl.idleCount() == 2 })

	third := dial(t, addr)
	if code, _ := third.get("/"); code != 200 {
		t.Fatalf("third, over the cap: %d, want 200", code)
	}
	if !first.closedByServer() {
		t.Error("the longest-idle connection was not closed for the newcomer")
	}
	if code, _ := second.get("/"); code != 200 {
		t.Errorf("the other idle connection: %d, want 200 (kept)", code)
	}
	if idle, slow := cl.Shed(); idle != 1 || slow != 0 {
		t.Errorf("shed idle %d, slow header %d; want 1, 0", idle, slow)
	}
	if n := cl.Open(); n != 2 {
		t.Errorf("%d connections hold a slot, want 2", n)
	}
}

func TestConnLimitShedsStalledHeaderForNewcomer(t *testing.T) {
	addr, cl := testServer(t, okHandler, capped(1, 0))
	stalled := dial(t, addr)
	stalled.send("GET / HTTP/1.1\r\nHost: test\r\nX-Never: ends")
	waitUntil(t, "the stalled connection holds the slot", func() bool { return cl.Open() == 1 })

	if code, _ := dial(t, addr).get("/"); code != 200 {
		t.Fatalf("newcomer: %d, want 200", code)
	}
	if !stalled.closedByServer() {
		t.Error("the connection stuck on its header kept its slot")
	}
	if idle, slow := cl.Shed(); idle != 0 || slow != 1 {
		t.Errorf("shed idle %d, slow header %d; want 0, 1", idle, slow)
	}
}

func TestConnLimitWaitsWhileEverySlotServesARequest(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/busy", func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	mux.Handle("/", okHandler)
	addr, cl := testServer(t, mux, capped(1, 0))

	busy := dial(t, addr)
	busy.send("GET /busy HTTP/1.1\r\nHost: test\r\n\r\n")
	<-entered
	waiting := dial(t, addr)
	waiting.send("GET / HTTP/1.1\r\nHost: test\r\n\r\n")
	// The only slot serves a request: nothing may answer the newcomer.
	// (A working cap never answers; a broken one would within a moment.)
	waiting.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) //nolint:errcheck
	if _, err := waiting.r.Peek(1); err == nil {
		t.Fatal("a connection over the cap was served while the only slot was busy")
	}
	waiting.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck

	close(release)
	if code, body := busy.response(); code != 200 || body != "done" {
		t.Errorf("busy: %d %q", code, body)
	}
	if code, _ := waiting.response(); code != 200 {
		t.Errorf("newcomer after the slot freed: %d, want 200", code)
	}
	if !busy.closedByServer() {
		t.Error("the finished connection, idle, kept the only slot")
	}
	if n := cl.Open(); n != 1 {
		t.Errorf("%d connections hold a slot, want 1", n)
	}
}

func TestConnLimitCloseStopsAWaitingAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { <-release })
	srv, sln, cl := newServer(h, ln, capped(1, time.Hour), slog.New(slog.DiscardHandler))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sln) }()
	busy := dial(t, ln.Addr().String())
	busy.send("GET / HTTP/1.1\r\nHost: test\r\n\r\n")
	waitUntil(t, "the busy request holds the slot", func() bool { return cl.Open() == 1 })
	dial(t, ln.Addr().String()) // Accept now waits for a slot

	srv.Close()
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return: Accept kept waiting for a slot after Close")
	}
	waitUntil(t, "every slot is free", func() bool { return cl.Open() == 0 })
}

func TestConnLimitFreesSlots(t *testing.T) {
	addr, cl := testServer(t, okHandler, capped(4, time.Hour))
	var cs []*testConn
	for range 4 {
		c := dial(t, addr)
		if code, _ := c.get("/"); code != 200 {
			t.Fatal(code)
		}
		cs = append(cs, c)
	}
	if n := cl.Open(); n != 4 {
		t.Fatalf("open = %d, want 4", n)
	}
	for _, c := range cs {
		c.Close()
	}
	waitUntil(t, "the closed connections free their slots", func() bool { return cl.Open() == 0 })
}
