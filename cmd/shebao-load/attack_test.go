package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAttackOptions(t *testing.T) {
	var stderr bytes.Buffer
	for scenario, conns := range map[string]int{"slow-headers": 1000, "idle-conns": 20000} {
		o, err := parseOptions([]string{"--scenario", scenario}, &stderr)
		if err != nil {
			t.Fatalf("%s: %v", scenario, err)
		}
		if o.attack.conns != conns {
			t.Errorf("%s: %d connections by default, want %d", scenario, o.attack.conns, conns)
		}
	}
	_, err := parseOptions([]string{"--scenario", "idle-conns", "--attack-conns", "100000", "--hold", "0s", "--bot-nofile", "3"}, &stderr)
	for _, flag := range []string{"--attack-conns", "--hold", "--bot-nofile"} {
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("bad %s not reported: %v", flag, err)
		}
	}
}

// attackTarget serves srv on a loopback port for one attack connection.
func attackTarget(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func attackOnce(t *testing.T, addr string, attack func(net.Conn) attackOutcome) attackOutcome {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a fresh connection
	return attack(c)
}

var answerOK = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

func TestSlowHeaderAttackSees431(t *testing.T) {
	addr := attackTarget(t, &http.Server{Handler: answerOK, MaxHeaderBytes: 1 << 10})
	out := attackOnce(t, addr, func(c net.Conn) attackOutcome { return slowHeader(context.Background(), c, 64<<10, 0) })
	if !out.status431 || !out.closed {
		t.Errorf("outcome %+v, want 431 and closed by the server", out)
	}
}

func TestSlowHeaderAttackSeesHeaderTimeout(t *testing.T) {
	addr := attackTarget(t, &http.Server{Handler: answerOK, ReadHeaderTimeout: 50 * time.Millisecond})
	out := attackOnce(t, addr, func(c net.Conn) attackOutcome { return slowHeader(context.Background(), c, 100, 0) })
	if out.status431 || !out.closed {
		t.Errorf("outcome %+v, want closed by the server without 431", out)
	}
}

func TestIdleAttackSeesIdleTimeout(t *testing.T) {
	addr := attackTarget(t, &http.Server{Handler: answerOK, IdleTimeout: 50 * time.Millisecond})
	if out := attackOnce(t, addr, idleConn); !out.answered || !out.closed {
		t.Errorf("outcome %+v, want answered, then closed by the server", out)
	}
}

func TestIdleAttackSeesConnectionKept(t *testing.T) {
	addr := attackTarget(t, &http.Server{Handler: answerOK}) // no idle timeout
	out := attackOnce(t, addr, func(c net.Conn) attackOutcome {
		c.SetDeadline(time.Now().Add(200 * time.Millisecond)) //nolint:errcheck // the attack's end, soon
		return idleConn(c)
	})
	if !out.answered || out.closed {
		t.Errorf("outcome %+v, want answered and still open when the attack ended", out)
	}
}
