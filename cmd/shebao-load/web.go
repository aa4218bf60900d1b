package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shebao/shebao/bot/web"
)

// The web scenario (--scenario web) loads the web chat instead of
// Telegram: `shebao serve` with WEB_CHAT=on and no Telegram token, --users
// WebSocket sessions held open at once (each its own cookie, as many
// browsers), and questions sent open loop at --web-rate a second to
// sessions picked at random among those not waiting for an answer. It
// reports the sessions connected, the first-reply and whole-answer
// latencies, and the serve process's memory idle, with every session
// connected, and at the end.
//
// The sessions reach the bot through a "proxy" it trusts
// (WEB_TRUST_PROXY=127.0.0.1), each with an X-Forwarded-For address of its
// own: a replica behind a load balancer sees many client addresses, and
// the per-address limits (200 connections, 120 messages a minute) are not
// what is measured here.

// webOptions are the web scenario's flags.
type webOptions struct {
	rate     float64       // questions a second, all sessions together
	dialRate float64       // new sessions a second while connecting
	connect  time.Duration // how long connecting all sessions may take
	env      envList       // more environment for the serve process
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, not %q", v)
	}
	*e = append(*e, v)
	return nil
}

func (w *webOptions) flags(fs *flag.FlagSet) {
	fs.Float64Var(&w.rate, "web-rate", 200, "in --scenario web, questions a second over all sessions (open loop)")
	fs.Float64Var(&w.dialRate, "web-dial-rate", 500, "in --scenario web, sessions opened a second before the questions start")
	fs.DurationVar(&w.connect, "web-connect-timeout", 2*time.Minute, "in --scenario web, how long opening all sessions may take")
	fs.Var(&w.env, "web-serve-env", "in --scenario web, KEY=VALUE added to the serve process's environment (repeatable), e.g. GOMEMLIMIT=250MiB")
}

func (w *webOptions) check() error {
	var errs []error
	if w.rate <= 0 || w.rate > 5000 {
		errs = append(errs, errors.New("--web-rate: want more than 0 and at most 5000"))
	}
	if w.dialRate <= 0 || w.dialRate > 5000 {
		errs = append(errs, errors.New("--web-dial-rate: want more than 0 and at most 5000"))
	}
	if w.connect <= 0 || w.connect > 10*time.Minute {
		errs = append(errs, errors.New("--web-connect-timeout: want more than 0 and at most 10m"))
	}
	return errors.Join(errs...)
}

// webReport is what a web run found.
type webReport struct {
	Command  string     `json:"command"`
	Load1    [2]float64 `json:"load_average_1m_start_end"` // the machine's, others' work included
	Cores    int        `json:"cores"`
	Sessions int        `json:"sessions"`
	Rate     float64    `json:"target_rate_per_sec"`
	Seconds  float64    `json:"seconds"`

	Connected    int       `json:"sessions_connected"`
	ConnectFails int       `json:"connect_failures"`
	ConnectErrs  []string  `json:"connect_error_samples,omitempty"`
	ConnectSec   float64   `json:"connect_all_sec"`
	Greeting     latencies `json:"dial_to_greeting_latency"`
	OpenAtEnd    float64   `json:"server_connections_at_end"`

	Sent       int            `json:"questions_sent"`
	Skipped    int            `json:"ticks_without_an_idle_session"`
	Answered   int            `json:"questions_answered"`
	PerSec     float64        `json:"answered_per_sec"`
	FirstReply latencies      `json:"first_reply_latency"`
	FullAnswer latencies      `json:"full_answer_latency"`
	Lost       int            `json:"lost"` // no answer by the end of the drain
	Notices    map[string]int `json:"notices,omitempty"`
	Closed     int            `json:"sessions_closed_by_server"`
	CloseCodes map[int]int    `json:"close_codes,omitempty"`

	RSSIdleKiB      int64   `json:"serve_rss_idle_kib"`
	RSSConnectedKiB int64   `json:"serve_rss_all_connected_kib"`
	RSSEndKiB       int64   `json:"serve_rss_end_kib"`
	HWMKiB          int64   `json:"serve_hwm_kib"`
	ServeCPUSec     float64 `json:"serve_cpu_sec"`

	Problems []string `json:"problems,omitempty"`
}

// webSession is one browser: its socket and the question in flight.
type webSession struct {
	c    *web.Client
	lang string
	mu   sync.Mutex
	id   string    // the pending question's message id, "" when idle
	sent time.Time // when it was sent
	got  bool      // its first reply came
	busy atomic.Bool
}

// webStats gathers what the sessions see.
type webStats struct {
	mu       sync.Mutex
	first    []time.Duration
	full     []time.Duration
	notices  map[string]int
	closes   map[int]int
	closed   int
	answered int
}

func (h *harness) webLoad(ctx context.Context, stdout io.Writer) error {
	o := h.opt
	rep := &webReport{Command: o.commandLine, Cores: runtime.NumCPU(), Sessions: o.users, Rate: o.web.rate,
		Notices: map[string]int{}, CloseCodes: map[int]int{}}
	port, err := freePort()
	if err != nil {
		return err
	}
	dport, err := freePort()
	if err != nil {
		return err
	}
	b := &botProc{name: "shebao-web", bin: h.shebao, args: []string{"serve"}, listen: "127.0.0.1:" + strconv.Itoa(port),
		debug: "127.0.0.1:" + strconv.Itoa(dport)}
	b.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir,
		"LISTEN_ADDR=" + b.listen, "DEBUG_ADDR=" + b.debug, "LOG_LEVEL=" + o.serveLog,
		"WEB_CHAT=on", "WEB_TRUST_PROXY=127.0.0.1", "WEB_MAX_CONNS=" + strconv.Itoa(o.users+100),
		"REDIS_URL=" + h.redisURL, "SHEBAO_KEYS=load:c2hlYmFvLWxvYWQtaGFybmVzcy1maXhlZC1rZXktMDE=",
	}
	b.env = append(b.env, h.limitEnv()...)
	b.env = append(b.env, o.web.env...)
	if err := b.start(ctx, h.cs, h.dir); err != nil {
		return err
	}
	rep.RSSIdleKiB, _, _ = memory(b.proc.pid())
	rep.Load1[0] = loadAverage()
	h.log.Info("bot ready", "name", b.name, "debug_addr", b.debug)

	st := &webStats{notices: map[string]int{}, closes: map[int]int{}}
	sessions, greet, fails := h.webConnect(ctx, b.base(), st)
	rep.Connected, rep.ConnectFails, rep.ConnectErrs = len(sessions), fails.n, fails.samples
	rep.ConnectSec = fails.took.Seconds()
	rep.Greeting = summarize(greet)
	defer func() {
		for _, s := range sessions {
			s.c.CloseNow()
		}
	}()
	rep.RSSConnectedKiB, _, _ = memory(b.proc.pid())
	h.log.Info("sessions connected", "n", len(sessions), "failed", fails.n, "took", fails.took.Round(time.Millisecond), "rss_kib", rep.RSSConnectedKiB)
	if len(sessions) == 0 {
		return errors.New("no web chat session connected")
	}

	// Open loop: the k-th question is due at start + k/rate, whatever
	// the answers do.
	rng := rand.New(rand.NewPCG(o.seed, 0x3eb))
	var questions [2][]string
	for _, in := range builtinInputs {
		if in.Text == "/start" {
			continue
		}
		l := 0
		if in.Lang == "en" {
			l = 1
		}
		questions[l] = append(questions[l], in.Text)
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / o.web.rate)
	var sent, skipped int
	for k := 0; ; k++ {
		due := start.Add(time.Duration(k) * interval)
		if due.Sub(start) >= o.duration || (o.messages > 0 && sent >= o.messages) {
			break
		}
		if err := sleepCtx(ctx, time.Until(due)); err != nil {
			return err
		}
		var s *webSession
		for range 8 { // a few tries at an idle one
			c := sessions[rng.IntN(len(sessions))]
			if c.busy.CompareAndSwap(false, true) {
				s = c
				break
			}
		}
		if s == nil {
			skipped++
			continue
		}
		l := 0
		if s.lang == "en" {
			l = 1
		}
		text := questions[l][rng.IntN(len(questions[l]))]
		sent++
		go s.ask(ctx, text)
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Sent, rep.Skipped = sent, skipped

	// Drain: every question answered, or the answer timeout.
	_ = waitFor(ctx, o.answerTimeout, func() error {
		n := 0
		for _, s := range sessions {
			if s.busy.Load() {
				n++
			}
		}
		if n > 0 {
			return fmt.Errorf("%d questions unanswered", n)
		}
		return nil
	})
	for _, s := range sessions {
		if s.busy.Load() {
			rep.Lost++
		}
	}
	if m, err := scrapeGauge(b.metricsURL(), "shebao_web_connections"); err == nil {
		rep.OpenAtEnd = m
	}
	rep.RSSEndKiB, rep.HWMKiB, _ = memory(b.proc.pid())
	rep.ServeCPUSec = cpuSeconds(b.proc.pid())
	rep.Load1[1] = loadAverage()

	st.mu.Lock()
	rep.Answered = st.answered
	rep.FirstReply, rep.FullAnswer = summarize(st.first), summarize(st.full)
	rep.Notices, rep.CloseCodes, rep.Closed = st.notices, st.closes, st.closed
	st.mu.Unlock()
	rep.PerSec = float64(rep.Answered) / rep.Seconds
	rep.Problems = rep.problems()

	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return errProblems
	}
	return nil
}

// connectFailures counts the sessions that did not open.
type connectFailures struct {
	n       int
	samples []string
	took    time.Duration
}

// webConnect opens --users sessions at --web-dial-rate, each with its own
// cookie jar and client address, and waits for each one's greeting.
func (h *harness) webConnect(ctx context.Context, base string, st *webStats) ([]*webSession, []time.Duration, connectFailures) {
	o := h.opt
	life := ctx // the sessions read until the run ends
	ctx, cancel := context.WithTimeout(ctx, o.web.connect)
	defer cancel()
	var (
		mu       sync.Mutex
		sessions []*webSession
		greet    []time.Duration
		fails    connectFailures
		wg       sync.WaitGroup
	)
	// Loopback handshakes are cheap; bounded so a slow server is not
	// buried in half-open dials.
	slots := make(chan struct{}, 64)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1, DisableKeepAlives: true}}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / o.web.dialRate)
	for i := range o.users {
		if sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*interval))) != nil {
			break
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			t0 := time.Now()
			xff := fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255)
			c, err := web.Dial(ctx, base, web.DialOptions{Origin: base, HTTPClient: hc, Header: http.Header{"X-Forwarded-For": {xff}}})
			if err == nil {
				s := &webSession{c: c, lang: chatLang(int64(i))}
				if err = c.Hello(ctx, s.lang); err == nil {
					err = s.greeting(ctx)
				}
				if err == nil {
					d := time.Since(t0)
					go s.read(life, st)
					mu.Lock()
					sessions, greet = append(sessions, s), append(greet, d)
					mu.Unlock()
					return
				}
				c.CloseNow()
			}
			mu.Lock()
			fails.n++
			if len(fails.samples) < 5 {
				fails.samples = append(fails.samples, err.Error())
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	fails.took = time.Since(start)
	return sessions, greet, fails
}

// greeting reads up to the first reply (the /start answer of a new
// session).
func (s *webSession) greeting(ctx context.Context) error {
	for {
		f, err := s.c.Next(ctx)
		if err != nil {
			return err
		}
		if f.Type == "reply" {
			return nil
		}
	}
}

// ask sends text as the session's pending question.
func (s *webSession) ask(ctx context.Context, text string) {
	s.mu.Lock()
	s.id, s.sent, s.got = s.c.NewID(), time.Now(), false
	id := s.id
	s.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.c.Send(wctx, web.ClientFrame{Type: "text", ID: id, Text: text}); err != nil {
		// The reader sees the socket end and counts it; the question
		// stays pending and is reported lost.
		return
	}
}

// read takes the session's frames until its socket ends: the first reply
// after a question times it, the ack ends it.
func (s *webSession) read(ctx context.Context, st *webStats) {
	for {
		f, err := s.c.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				st.mu.Lock()
				st.closed++
				st.closes[web.CloseStatus(err)]++
				st.mu.Unlock()
			}
			return
		}
		now := time.Now()
		s.mu.Lock()
		id, sent, got := s.id, s.sent, s.got
		switch {
		case id == "":
		case f.Type == "reply" && !got:
			s.got = true
			st.mu.Lock()
			st.first = append(st.first, now.Sub(sent))
			st.mu.Unlock()
		case f.Type == "notice":
			st.mu.Lock()
			st.notices[f.Reason]++
			st.mu.Unlock()
		case f.Type == "ack" && f.For == id:
			s.id = ""
			st.mu.Lock()
			st.full = append(st.full, now.Sub(sent))
			st.answered++
			st.mu.Unlock()
			s.busy.Store(false)
		}
		s.mu.Unlock()
	}
}

func (r *webReport) problems() []string {
	var p []string
	if r.ConnectFails > 0 {
		p = append(p, fmt.Sprintf("%d sessions did not connect", r.ConnectFails))
	}
	if r.Lost > 0 {
		p = append(p, fmt.Sprintf("%d questions never answered", r.Lost))
	}
	if r.Closed > 0 {
		p = append(p, fmt.Sprintf("the server closed %d sessions", r.Closed))
	}
	for reason, n := range r.Notices {
		p = append(p, fmt.Sprintf("%d notices %q", n, reason))
	}
	return p
}

func (r *webReport) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.Command)
	fmt.Fprintf(&b, "web chat, one replica, %d cores shared with the harness; load average (1 min) %.1f at the start, %.1f at the end\n", r.Cores, r.Load1[0], r.Load1[1])
	fmt.Fprintf(&b, "sessions: %d of %d connected in %.1fs (%d failed); dial to greeting p50 %.1fms p99 %.1fms max %.1fms\n",
		r.Connected, r.Sessions, r.ConnectSec, r.ConnectFails, r.Greeting.P50, r.Greeting.P99, r.Greeting.Max)
	fmt.Fprintf(&b, "questions: %d sent in %.1fs at a target %.0f/s (%d ticks found no idle session), %d answered (%.1f/s), %d lost\n",
		r.Sent, r.Seconds, r.Rate, r.Skipped, r.Answered, r.PerSec, r.Lost)
	fmt.Fprintf(&b, "first reply: p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms (n=%d)\n",
		r.FirstReply.P50, r.FirstReply.P90, r.FirstReply.P99, r.FirstReply.Max, r.FirstReply.N)
	fmt.Fprintf(&b, "whole answer: p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms\n",
		r.FullAnswer.P50, r.FullAnswer.P90, r.FullAnswer.P99, r.FullAnswer.Max)
	fmt.Fprintf(&b, "serve RSS: idle %.1f MiB, all connected %.1f MiB, end %.1f MiB, peak %.1f MiB; CPU %.1fs; connections open at the end %.0f\n",
		float64(r.RSSIdleKiB)/1024, float64(r.RSSConnectedKiB)/1024, float64(r.RSSEndKiB)/1024, float64(r.HWMKiB)/1024, r.ServeCPUSec, r.OpenAtEnd)
	if len(r.Notices) > 0 || r.Closed > 0 {
		fmt.Fprintf(&b, "notices %v; closed by the server %d %v\n", r.Notices, r.Closed, r.CloseCodes)
	}
	for _, e := range r.ConnectErrs {
		fmt.Fprintf(&b, "connect error: %s\n", e)
	}
	if len(r.Problems) == 0 {
		b.WriteString("problems: none\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM: %s\n", p)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// scrapeGauge reads one unlabelled sample from a Prometheus text endpoint.
func scrapeGauge(url, name string) (float64, error) {
	resp, err := probe.Get(url)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("scrape %s: no %s", url, name)
}

// cpuSeconds is the user and system CPU time pid has used.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	return (ut + stt) / 100 // USER_HZ
}

// loadAverage is the machine's one-minute load average: on shared cores
// it says how much of them the run had.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
