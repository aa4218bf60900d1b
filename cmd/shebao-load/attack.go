package main

// The connection-exhaustion scenarios. slow-headers and idle-conns attack
// the public listener of `shebao serve` the way anyone on the internet can,
// without the webhook secret, and measure what that costs the bot: its
// memory (VmHWM, the kernel's peak RSS), its open file descriptors, the
// "too many open files" errors in its log, and whether its liveness probe
// keeps answering during the attack and after it.
//
// slow-headers: each of --attack-conns workers opens a connection, sends a
// request line and --header-bytes of one header line that never ends
// (optionally a little at a time, --trickle), and holds the connection
// until the server closes it; then it opens another after --redial.
//
// idle-conns: each worker opens a connection, makes one request, reads the
// answer and keeps the connection open and idle until the server closes
// it; then it opens another after --redial.
//
// The attack lasts --hold. The bot inherits the harness's file limit when
// it starts; the harness raises its own limit only afterwards, so the bot
// runs with the machine's limit (reported) and the harness can hold more
// connections than the bot may.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// attackOptions are the flags of the attack scenarios.
type attackOptions struct {
	conns       int
	headerBytes int
	trickle     time.Duration
	hold        time.Duration
	redial      time.Duration
	botNoFile   int
}

// Bounds of the attack flags. Loopback offers about 28,000 ephemeral ports
// towards one address, and the harness must keep some for its probes.
const (
	maxAttackConns = 25_000
	maxHeaderBytes = 16 << 20
)

func addAttackFlags(fs *flag.FlagSet, a *attackOptions) {
	fs.IntVar(&a.conns, "attack-conns", 0, "slow-headers and idle-conns: attacking connections held at once (default 1000 for slow-headers, 20000 for idle-conns)")
	fs.IntVar(&a.headerBytes, "header-bytes", 1<<20, "slow-headers: bytes of unfinished header each connection sends")
	fs.DurationVar(&a.trickle, "trickle", 0, "slow-headers: send the header 64 bytes at a time with this pause between (0: all at once)")
	fs.DurationVar(&a.hold, "hold", 30*time.Second, "slow-headers and idle-conns: how long the attack lasts")
	fs.DurationVar(&a.redial, "redial", time.Second, "slow-headers and idle-conns: after the server closes an attacking connection, open another after this pause (0: do not)")
	fs.IntVar(&a.botNoFile, "bot-nofile", 0, "slow-headers and idle-conns: set the bot's RLIMIT_NOFILE (soft and hard) to this once it runs, so that it runs out before the harness does (0: leave it as inherited)")
}

func isAttack(scenario string) bool { return scenario == "slow-headers" || scenario == "idle-conns" }

// check fills the scenario's defaults and bounds the flags.
func (a *attackOptions) check(scenario string) error {
	if !isAttack(scenario) {
		return nil
	}
	if a.conns == 0 {
		a.conns = 1000
		if scenario == "idle-conns" {
			a.conns = 20_000
		}
	}
	var errs []error
	if a.conns < 1 || a.conns > maxAttackConns {
		errs = append(errs, fmt.Errorf("--attack-conns: want 1 to %d", maxAttackConns))
	}
	if a.headerBytes < 1 || a.headerBytes > maxHeaderBytes {
		errs = append(errs, fmt.Errorf("--header-bytes: want 1 to %d", maxHeaderBytes))
	}
	if a.trickle < 0 || a.trickle > time.Minute {
		errs = append(errs, errors.New("--trickle: want 0 to 1m"))
	}
	if a.hold <= 0 || a.hold > 10*time.Minute {
		errs = append(errs, errors.New("--hold: want more than 0 and at most 10m"))
	}
	if a.redial < 0 || a.redial > time.Minute {
		errs = append(errs, errors.New("--redial: want 0 to 1m"))
	}
	if a.botNoFile != 0 && (a.botNoFile < 64 || a.botNoFile > 1<<20) {
		errs = append(errs, errors.New("--bot-nofile: want 0, or 64 to 1048576"))
	}
	return errors.Join(errs...)
}

// harnessFDs are the descriptors the harness keeps for itself (probes,
// the fake Bot API, logs) beyond the attacking connections.
const harnessFDs = 512

// rssGoal is the bar: the attacks leave the bot under 200 MB.
const rssGoalKiB = 200 * 1024

// attackReport is what one attack found.
type attackReport struct {
	Started     time.Time `json:"started"`
	Command     string    `json:"command"`
	Host        string    `json:"host_note"`
	Scenario    string    `json:"scenario"`
	Binary      string    `json:"binary"`
	ProbePath   string    `json:"probe_path"`
	Conns       int       `json:"attack_conns"`
	ConnsAsked  int       `json:"attack_conns_asked,omitempty"` // when the harness's own limit forced fewer
	HeaderBytes int       `json:"header_bytes,omitempty"`
	TrickleMs   float64   `json:"trickle_ms,omitempty"`
	HoldSec     float64   `json:"hold_sec"`
	BotNoFile   string    `json:"bot_rlimit_nofile"`
	HarnessNoFi uint64    `json:"harness_rlimit_nofile"`

	Opened      int64     `json:"connections_opened"`
	DialErrors  int64     `json:"dial_errors"`
	Answered    int64     `json:"requests_answered,omitempty"` // idle-conns: the request before idling
	Status431   int64     `json:"status_431,omitempty"`        // slow-headers: header too large
	ClosedBySrv int64     `json:"closed_by_server"`            // EOF or reset before the end
	OpenAtEnd   int64     `json:"open_at_end"`                 // the server never closed them
	MaxOpenAtt  int64     `json:"max_attack_conns_open"`       // harness side, at once
	Lifetime    latencies `json:"lifetime_until_server_closed"`

	RSSBeforeKiB int64 `json:"bot_rss_before_kib"`
	RSSMaxKiB    int64 `json:"bot_rss_max_sampled_kib"`
	HWMKiB       int64 `json:"bot_peak_rss_kib"` // VmHWM at the end of the attack
	RSSAfterKiB  int64 `json:"bot_rss_after_kib"`
	FDsMax       int   `json:"bot_open_fds_max"`
	FDsAfter     int   `json:"bot_open_fds_after"`
	EMFILE       int   `json:"bot_log_too_many_open_files"`

	ProbesDuring  map[int]int `json:"probes_during"` // status → count; 0: no answer within 2 s; -1: the harness could not open a socket
	ProbeLatency  latencies   `json:"probe_latency_during"`
	ProbesAfter   map[int]int `json:"probes_after"`
	ExitCode      int         `json:"sigterm_exit_code"`
	ExitSec       float64     `json:"sigterm_exit_sec"`
	Problems      []string    `json:"problems"`
	botLog, botNm string
}

// attack runs the slow-headers or idle-conns scenario against one serve
// process and writes the report.
func (h *harness) attack(ctx context.Context, stdout io.Writer) error {
	o, a := h.opt, h.opt.attack
	h.phase++
	f, err := startFake(fakeOptions{Token: "700001:attack", FirstUpdateID: h.idBase, Logger: h.log})
	if err != nil {
		return err
	}
	defer f.close()
	b, err := h.startBot(ctx, "shebao", "polling", "", f, 0)
	if err != nil {
		return err
	}
	rep := &attackReport{
		Started: time.Now(), Command: o.commandLine, Scenario: o.scenario, Binary: h.shebao,
		Host:  "figures from a shared 2-core machine; the harness and the bot compete for the same cores",
		Conns: a.conns, HoldSec: a.hold.Seconds(),
		botLog: filepath.Join(h.dir, b.name+".log"), botNm: b.name,
	}
	if o.scenario == "slow-headers" {
		rep.HeaderBytes, rep.TrickleMs = a.headerBytes, float64(a.trickle)/1e6
	}
	pid := b.proc.pid()
	if a.botNoFile > 0 {
		if err := setNoFile(pid, uint64(a.botNoFile)); err != nil {
			return fmt.Errorf("--bot-nofile: %w", err)
		}
	}
	rep.BotNoFile = fdLimit(pid)
	// Raised only now: the bot has inherited the limit it started with.
	if rep.HarnessNoFi, err = raiseNoFile(uint64(a.conns) + harnessFDs); err != nil {
		h.log.Warn("could not raise the harness's file limit", "err", err)
	}
	if room := int(rep.HarnessNoFi) - harnessFDs; a.conns > room {
		// Out of descriptors, the harness would fail its own probes and
		// blame the bot.
		h.log.Warn("attack reduced to what the harness's file limit allows", "asked", a.conns, "conns", room)
		rep.ConnsAsked, a.conns, rep.Conns = a.conns, room, room
	}
	prober := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	rep.ProbePath = "/livez"
	if code, _ := probeOnce(prober, b.base()+"/livez"); code == http.StatusNotFound {
		rep.ProbePath = "/healthz" // a build from before /livez existed
	}
	probeURL := b.base() + rep.ProbePath
	if rep.RSSBeforeKiB, _, err = memory(pid); err != nil {
		return err
	}
	h.log.Info("attack", "scenario", o.scenario, "conns", a.conns, "hold", a.hold, "bot_nofile", rep.BotNoFile, "probe", rep.ProbePath)

	actx, cancel := context.WithTimeout(ctx, a.hold)
	defer cancel()
	var wg sync.WaitGroup
	// Bot memory and descriptors, every 200 ms.
	var rssMax atomic.Int64
	var fdMax atomic.Int64
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, _, err := memory(pid); err == nil && rss > rssMax.Load() {
				rssMax.Store(rss)
			}
			if n := openFDs(pid); int64(n) > fdMax.Load() {
				fdMax.Store(int64(n))
			}
			select {
			case <-actx.Done():
				return
			case <-tick.C:
			}
		}
	})
	// The liveness probe an orchestrator would send: a fresh connection
	// every 500 ms, 2 s to answer.
	during := map[int]int{}
	var probeTimes []time.Duration
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			code, took := probeOnce(prober, probeURL)
			during[code]++
			probeTimes = append(probeTimes, took)
			select {
			case <-actx.Done():
				return
			case <-tick.C:
			}
		}
	})
	st := &attackStats{}
	addr := b.listen
	dials := make(chan struct{}, 512) // connects in progress at once
	for range a.conns {
		wg.Go(func() {
			switch o.scenario {
			case "slow-headers":
				st.worker(actx, addr, dials, a.redial, func(c net.Conn) attackOutcome { return slowHeader(actx, c, a.headerBytes, a.trickle) })
			case "idle-conns":
				st.worker(actx, addr, dials, a.redial, idleConn)
			}
		})
	}
	wg.Wait()

	rep.Opened, rep.DialErrors = st.opened.Load(), st.dialErrs.Load()
	rep.Answered, rep.Status431 = st.answered.Load(), st.status431.Load()
	rep.ClosedBySrv, rep.OpenAtEnd, rep.MaxOpenAtt = st.closed.Load(), st.openAtEnd.Load(), st.maxOpen.Load()
	rep.Lifetime = summarize(st.lifetimes)
	rep.RSSMaxKiB, rep.FDsMax = rssMax.Load(), int(fdMax.Load())
	if _, hwm, err := memory(pid); err == nil {
		// The kernel updates VmHWM lazily; a sample may have seen more.
		rep.HWMKiB = max(hwm, rep.RSSMaxKiB)
	}
	rep.ProbesDuring, rep.ProbeLatency = during, summarize(probeTimes)

	// After: the attack's connections are closed; give the bot a moment
	// and probe again.
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return err
	}
	rep.ProbesAfter = map[int]int{}
	for range 10 {
		code, _ := probeOnce(prober, probeURL)
		rep.ProbesAfter[code]++
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	rep.RSSAfterKiB, _, _ = memory(pid)
	rep.FDsAfter = openFDs(pid)
	exited := b.proc.exited()
	code, took := b.proc.stop(20 * time.Second)
	rep.ExitCode, rep.ExitSec = code, math.Round(took.Seconds()*100)/100
	rep.EMFILE = countInFile(rep.botLog, "too many open files")
	rep.Problems = rep.problems(exited)

	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.writeText(stdout); err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return errProblems
	}
	return nil
}

func (r *attackReport) problems(exitedEarly bool) []string {
	var out []string
	if exitedEarly {
		out = append(out, fmt.Sprintf("the bot exited during the attack, code %d (log: %s)", r.ExitCode, r.botLog))
	} else if r.ExitCode != 0 {
		out = append(out, fmt.Sprintf("the bot exited with code %d on SIGTERM (log: %s)", r.ExitCode, r.botLog))
	}
	if r.HWMKiB >= rssGoalKiB {
		out = append(out, fmt.Sprintf("peak RSS %.0f MiB, over the 200 MiB goal", float64(r.HWMKiB)/1024))
	}
	for _, p := range []struct {
		when string
		m    map[int]int
	}{{"during", r.ProbesDuring}, {"after", r.ProbesAfter}} {
		when, m := p.when, p.m
		if bad := total(m) - m[http.StatusOK] - m[-1]; bad > 0 {
			out = append(out, fmt.Sprintf("%d of %d %s probes %s the attack got no 200: %s", bad, total(m), r.ProbePath, when, statusCounts(m)))
		}
		if m[-1] > 0 {
			out = append(out, fmt.Sprintf("%d %s probes %s the attack were not sent: the harness had no socket (the figure is incomplete)", m[-1], r.ProbePath, when))
		}
	}
	if r.EMFILE > 0 {
		out = append(out, fmt.Sprintf("%d \"too many open files\" lines in the bot's log", r.EMFILE))
	}
	return out
}

func total(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (r *attackReport) writeText(w io.Writer) error {
	mib := func(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\n", r.Command, r.Host)
	fmt.Fprintf(&b, "scenario %s against %s, probe %s\n", r.Scenario, r.Binary, r.ProbePath)
	fmt.Fprintf(&b, "  attack: %d connections at once for %.0fs", r.Conns, r.HoldSec)
	if r.ConnsAsked > 0 {
		fmt.Fprintf(&b, " (%d asked; the harness's file limit allows %d)", r.ConnsAsked, r.Conns)
	}
	if r.HeaderBytes > 0 {
		fmt.Fprintf(&b, ", %d header bytes each", r.HeaderBytes)
		if r.TrickleMs > 0 {
			fmt.Fprintf(&b, " (64 every %.0f ms)", r.TrickleMs)
		}
	}
	fmt.Fprintf(&b, "; bot RLIMIT_NOFILE %s, harness %d\n", r.BotNoFile, r.HarnessNoFi)
	fmt.Fprintf(&b, "  connections: %d opened, %d dial errors, at most %d open at once", r.Opened, r.DialErrors, r.MaxOpenAtt)
	if r.Answered > 0 {
		fmt.Fprintf(&b, "; %d requests answered", r.Answered)
	}
	if r.Status431 > 0 {
		fmt.Fprintf(&b, "; %d got 431", r.Status431)
	}
	fmt.Fprintf(&b, "\n  server closed %d (lifetime p50 %.0f ms, p99 %.0f ms, max %.0f ms); %d still open when the attack ended\n",
		r.ClosedBySrv, r.Lifetime.P50, r.Lifetime.P99, r.Lifetime.Max, r.OpenAtEnd)
	fmt.Fprintf(&b, "  bot memory: RSS %s before, %s max sampled, peak (VmHWM) %s, %s after\n",
		mib(r.RSSBeforeKiB), mib(r.RSSMaxKiB), mib(r.HWMKiB), mib(r.RSSAfterKiB))
	fmt.Fprintf(&b, "  bot descriptors: %d at most, %d after; \"too many open files\" in its log: %d\n", r.FDsMax, r.FDsAfter, r.EMFILE)
	fmt.Fprintf(&b, "  %s during the attack: %v (0: no answer in 2 s; -1: the harness had no socket), latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; after: %v\n",
		r.ProbePath, statusCounts(r.ProbesDuring), r.ProbeLatency.P50, r.ProbeLatency.P99, r.ProbeLatency.Max, statusCounts(r.ProbesAfter))
	fmt.Fprintf(&b, "  SIGTERM: exit code %d after %.2fs\n", r.ExitCode, r.ExitSec)
	if len(r.Problems) == 0 {
		b.WriteString("problems: none\n")
	} else {
		b.WriteString("problems:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// statusCounts prints a status → count map in status order.
func statusCounts(m map[int]int) string {
	var keys []int
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d:%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// attackStats are the attackers' counters.
type attackStats struct {
	opened, dialErrs, answered, status431, closed, openAtEnd atomic.Int64
	open, maxOpen                                            atomic.Int64
	mu                                                       sync.Mutex
	lifetimes                                                []time.Duration
}

// attackOutcome is how one attacking connection ended.
type attackOutcome struct {
	answered  bool // idle-conns: its request was answered
	status431 bool
	closed    bool // by the server, before the attack ended
}

// worker keeps one attacking connection open until ctx ends: it dials,
// runs attack on the connection (which returns when the server closes it
// or the attack ends) and, when the server closed it, dials again after
// redial.
func (s *attackStats) worker(ctx context.Context, addr string, dials chan struct{}, redial time.Duration, attack func(net.Conn) attackOutcome) {
	d := net.Dialer{Timeout: 10 * time.Second}
	for ctx.Err() == nil {
		select {
		case dials <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		<-dials
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.dialErrs.Add(1)
			if sleepCtx(ctx, max(redial, 100*time.Millisecond)) != nil {
				return
			}
			continue
		}
		s.opened.Add(1)
		if n := s.open.Add(1); n > s.maxOpen.Load() {
			s.maxOpen.Store(n) // a racy maximum is good enough for a report
		}
		deadline, _ := ctx.Deadline()
		c.SetDeadline(deadline) //nolint:errcheck // a fresh connection
		start := time.Now()
		out := attack(c)
		c.Close()
		s.open.Add(-1)
		if out.answered {
			s.answered.Add(1)
		}
		if out.status431 {
			s.status431.Add(1)
		}
		if !out.closed {
			s.openAtEnd.Add(1)
			return
		}
		s.closed.Add(1)
		s.mu.Lock()
		s.lifetimes = append(s.lifetimes, time.Since(start))
		s.mu.Unlock()
		if redial == 0 || sleepCtx(ctx, redial) != nil {
			return
		}
	}
}

// slowHeader sends a request line and n bytes of a header line that never
// ends, then waits for the server to answer or close.
func slowHeader(ctx context.Context, c net.Conn, n int, trickle time.Duration) attackOutcome {
	head := "GET / HTTP/1.1\r\nHost: attack\r\nX-Pad: "
	if _, err := io.WriteString(c, head); err != nil {
		return attackOutcome{closed: !isTimeout(err)}
	}
	chunk := make([]byte, 16<<10)
	if trickle > 0 {
		chunk = chunk[:64]
	}
	for i := range chunk {
		chunk[i] = 'a'
	}
	for sent := 0; sent < n; {
		k := min(len(chunk), n-sent)
		if _, err := c.Write(chunk[:k]); err != nil {
			// Usually the server answered 431 and closed while we wrote.
			return finish(c, isTimeout(err))
		}
		sent += k
		if trickle > 0 && sleepCtx(ctx, trickle) != nil {
			return attackOutcome{} // the attack ended with the connection open
		}
	}
	return finish(c, false)
}

// finish reads what the server sent before it closed the connection.
func finish(c net.Conn, timedOut bool) attackOutcome {
	if timedOut {
		return attackOutcome{}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	out := attackOutcome{status431: strings.HasPrefix(line, "HTTP/1.1 431")}
	if err == nil {
		_, err = io.Copy(io.Discard, c) // until the server closes
	}
	out.closed = err == nil || !isTimeout(err)
	return out
}

// idleConn makes one request, reads the answer and keeps the connection
// idle until the server closes it or the attack ends.
func idleConn(c net.Conn) attackOutcome {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: attack\r\n\r\n"); err != nil {
		return attackOutcome{closed: !isTimeout(err)}
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return attackOutcome{closed: !isTimeout(err)}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return attackOutcome{closed: !isTimeout(err)}
	}
	out := attackOutcome{answered: true}
	_, err = br.ReadByte() // idle: nothing comes until the server closes
	out.closed = err == nil || !isTimeout(err)
	return out
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// probeOnce returns the status of GET url on a fresh connection (0: no
// answer in time) and how long it took.
func probeOnce(c *http.Client, url string) (int, time.Duration) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.EADDRNOTAVAIL) {
			return -1, time.Since(start) // the harness's fault, not the bot's
		}
		return 0, time.Since(start)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// fdLimit reads the "Max open files" soft and hard limits of pid.
func fdLimit(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(line, "Max open files") {
			if f[3] == f[4] {
				return f[3]
			}
			return f[3] + " (hard " + f[4] + ")"
		}
	}
	return "unknown"
}

// openFDs counts the open file descriptors of pid (0 when unreadable).
func openFDs(pid int) int {
	es, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	return len(es)
}

// raiseNoFile raises the harness's own RLIMIT_NOFILE to at least n (the
// hard limit too, which needs root), and returns the soft limit in force.
func raiseNoFile(n uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= n {
		return lim.Cur, nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Not root: go as far as the hard limit allows.
		want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err2 != nil {
			return lim.Cur, fmt.Errorf("setrlimit: %w", err)
		}
		return lim.Max, fmt.Errorf("setrlimit to %d: %w (raised to the hard limit %d)", n, err, lim.Max)
	}
	return n, nil
}

// setNoFile sets the soft and hard RLIMIT_NOFILE of process pid to n
// (prlimit(2); lowering needs no privilege for one's own child).
func setNoFile(pid int, n uint64) error {
	lim := syscall.Rlimit{Cur: n, Max: n}
	_, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("prlimit pid %d: %w", pid, e)
	}
	return nil
}

// countInFile counts the occurrences of s in the file at path.
func countInFile(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}
