package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// harness runs phases: each phase is one bot (shebao or the echo
// baseline) in one mode under one scenario, against its own fake Bot API.
type harness struct {
	opt      options
	log      *slog.Logger
	cs       *children
	dir      string
	shebao   string // serve binary
	self     string // this binary, for the echo bot
	redis    *redisServer
	redisURL string
	phase    int
	// idBase starts this run's update_ids: a Redis reused with
	// --redis-url still remembers the last run's, and would drop
	// repeated ones as answered. Below 2^53, so JSON clients that read
	// numbers as doubles still see exact IDs.
	idBase int64
}

// botProc is one bot process and how to start it again.
type botProc struct {
	name, bin string
	args, env []string
	listen    string // 127.0.0.1:port
	debug     string // shebao's DEBUG_ADDR (metrics, pprof); "" for echo
	webhook   string // full webhook URL, "" when polling
	proc      *child
}

func (b *botProc) base() string { return "http://" + b.listen }

func (b *botProc) metricsURL() string { return "http://" + b.debug + "/metrics" }

// startBot starts bot kind ("shebao" or "echo") number i of the phase
// against fake, with the webhook secret in webhook mode, and waits until it
// is ready.
func (h *harness) startBot(ctx context.Context, kind, mode, secret string, f *fakeAPI, i int) (*botProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &botProc{name: fmt.Sprintf("%s-%s-%d-%d", kind, mode, h.phase, i), listen: "127.0.0.1:" + strconv.Itoa(port)}
	b.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir,
		"TELEGRAM_BOT_TOKEN=" + f.opts.Token, "TELEGRAM_API_URL=" + f.URL,
		"LISTEN_ADDR=" + b.listen, "LOG_LEVEL=" + h.opt.serveLog,
	}
	if mode == "webhook" {
		b.webhook = b.base() + "/telegram"
		b.env = append(b.env, "WEBHOOK_URL="+b.webhook, "WEBHOOK_SECRET="+secret)
	}
	switch kind {
	case "shebao":
		b.bin, b.args = h.shebao, []string{"serve"}
		b.env = append(b.env, h.limitEnv()...)
		dport, err := freePort()
		if err != nil {
			return nil, err
		}
		// Metrics (and pprof, for profiling a run) on their own listener,
		// as in production.
		b.debug = "127.0.0.1:" + strconv.Itoa(dport)
		b.env = append(b.env, "DEBUG_ADDR="+b.debug)
		if h.redisURL != "" {
			// A shared Redis needs SHEBAO_KEYS; fixed, so that a rerun
			// against the same -redis-url reads what the last run wrote.
			b.env = append(b.env, "REDIS_URL="+h.redisURL, "SHEBAO_KEYS=load:c2hlYmFvLWxvYWQtaGFybmVzcy1maXhlZC1rZXktMDE=")
		}
	case "echo":
		b.bin, b.args = h.self, []string{"echo"}
	}
	if err := b.start(ctx, h.cs, h.dir); err != nil {
		return nil, err
	}
	// The first start also waits for the bot to reach the fake.
	reached := f.polled
	if mode == "webhook" {
		reached = f.webhookOn
	}
	select {
	case <-reached:
		if b.debug != "" {
			h.log.Info("bot ready", "name", b.name, "debug_addr", b.debug)
		}
	case <-b.proc.done:
		return nil, fmt.Errorf("%s exited with code %d before reaching the fake (see %s.log)", b.name, b.proc.code, filepath.Join(h.dir, b.name))
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s did not call the fake Bot API within 30s", b.name)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b, nil
}

// start runs the process and waits until /healthz answers 200.
func (b *botProc) start(ctx context.Context, cs *children, dir string) error {
	p, err := cs.start(b.name, dir, b.bin, b.args, b.env)
	if err != nil {
		return err
	}
	b.proc = p
	err = waitFor(ctx, 60*time.Second, func() error {
		if p.exited() {
			return fmt.Errorf("%s exited with code %d (see %s)", b.name, p.code, filepath.Join(dir, b.name+".log"))
		}
		if c := healthz(b.base() + "/healthz"); c != 200 {
			return fmt.Errorf("%s /healthz: %d", b.name, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("start %s: %w", b.name, err)
	}
	return nil
}

// phaseSpec says what one phase runs.
type phaseSpec struct {
	kind, mode, scenario string
	replicas             int
	// intercept sees every call to the fake first (fakeOptions.Intercept).
	intercept func(w http.ResponseWriter, r *http.Request, method string, p apiParams) bool
}

// runPhase runs one phase and returns its result.
func (h *harness) runPhase(ctx context.Context, ps phaseSpec) (*result, error) {
	h.phase++
	o := h.opt
	res := &result{Name: fmt.Sprintf("phase %d", h.phase), Bot: ps.kind, Mode: ps.mode, Scenario: ps.scenario, Users: o.users}
	h.log.Info("phase", "n", h.phase, "bot", ps.kind, "mode", ps.mode, "scenario", ps.scenario)

	sk := &sink{}
	f, err := startFake(fakeOptions{
		Token:         fmt.Sprintf("%d:load%s", 700000+h.phase, ps.kind),
		FirstUpdateID: h.idBase + int64(h.phase)*1_000_000_000, MaxConnections: o.maxConns, ChatParallel: o.chatParallel,
		OnSend: sk.send, Intercept: ps.intercept, Logger: h.log,
	})
	if err != nil {
		return nil, err
	}
	defer f.close()

	var bots []*botProc
	defer func() {
		for _, b := range bots {
			code, took := b.proc.stop(20 * time.Second)
			res.Events = append(res.Events, fmt.Sprintf("%s stopped with SIGTERM: exit code %d after %.2fs", b.name, code, took.Seconds()))
			if code != 0 && ps.kind == "shebao" {
				res.Events = append(res.Events, fmt.Sprintf("PROBLEM: %s exited with code %d on SIGTERM (log: %s.log)", b.name, code, filepath.Join(h.dir, b.name)))
			}
		}
	}()
	secret := rand.Text() // replicas behind one webhook share its secret
	for i := range max(ps.replicas, 1) {
		b, err := h.startBot(ctx, ps.kind, ps.mode, secret, f, i)
		if err != nil {
			return nil, err
		}
		bots = append(bots, b)
	}
	if ps.replicas > 1 {
		var urls []string
		for _, b := range bots {
			urls = append(urls, b.webhook)
		}
		f.setTargets(urls)
	}

	chatBase := int64(h.phase) * 100_000_000
	replies, err := warmUp(ctx, f, sk, builtinInputs, chatBase+90_000_000, 700*time.Millisecond, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", ps.kind, ps.mode, err)
	}
	tr := newTracker(expectations(replies))
	sk.set(tr.deliver)

	var before []promSample
	if ps.kind == "shebao" {
		for _, b := range bots {
			s, err := scrape(b.metricsURL())
			if err != nil {
				return nil, err
			}
			before = append(before, s)
		}
	}
	callsBefore, statusesBefore := f.callCounts(), f.webhookStatuses()

	lctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	start := time.Now()
	faultDone := make(chan *faultReport, 1)
	go func() { faultDone <- h.fault(lctx, ctx, ps, bots, f, tr, start) }()
	messages := int64(o.messages)
	distinct := o.distinct
	if distinct > 0 && messages == 0 {
		messages = int64(distinct * o.burst) // every distinct user writes once
	}
	runUsers(lctx, f, tr, builtinInputs, loadSpec{
		Users: o.users, Distinct: distinct, Burst: o.burst, Messages: messages, ChatBase: chatBase,
		AnswerTimeout: o.answerTimeout, Think: o.think, Seed: o.seed + uint64(h.phase),
	})
	stop := time.Now()
	cancel()
	fr := <-faultDone

	// Let the answers in flight arrive, then wait a little longer for late
	// duplicates.
	if err := waitFor(ctx, o.drain, func() error {
		if n := tr.pending(); n > 0 {
			return fmt.Errorf("%d updates unanswered", n)
		}
		return nil
	}); err != nil {
		res.Events = append(res.Events, "drain: "+err.Error())
	}
	if err := sleepCtx(ctx, o.settle); err != nil {
		return nil, err
	}

	recs, msgs, stray, samples := tr.snapshot()
	analyse(res, recs, start, stop)
	res.Messages, res.Stray, res.OtherSamples = msgs, stray, samples
	res.FakeCalls = diffCounts(f.callCounts(), callsBefore)
	res.WebhookStatuses, res.WebhookGaveUp = make(map[int]int64), f.gaveUp.Load()
	for code, n := range f.webhookStatuses() {
		if d := n - statusesBefore[code]; d > 0 {
			res.WebhookStatuses[code] = d
		}
	}
	for _, b := range bots {
		if b.proc.exited() {
			res.Events = append(res.Events, fmt.Sprintf("PROBLEM: %s had exited before the end, code %d", b.name, b.proc.code))
			continue
		}
		if rss, hwm, err := memory(b.proc.pid()); err == nil {
			res.RSSKiB, res.HWMKiB = append(res.RSSKiB, rss), append(res.HWMKiB, hwm)
		}
	}
	restarted := fr != nil && fr.Kind != "redis-restart"
	if ps.kind == "shebao" && !restarted {
		var trips, handled float64
		for i, b := range bots {
			s, err := scrape(b.metricsURL())
			if err != nil {
				return nil, err
			}
			trips += s.redisTrips - before[i].redisTrips
			handled += s.handled - before[i].handled
		}
		res.HandledDelta = handled
		if handled > 0 {
			v := math.Round(trips/handled*100) / 100
			res.RedisTripsPerUpdate = &v
		}
	}
	if fr != nil {
		fr.classify(recs)
		res.Fault = fr
	}
	return res, nil
}

func diffCounts(after, before map[string]int64) map[string]int64 {
	out := make(map[string]int64)
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// fault injects the scenario's fault once, at opt.faultAt into the sending
// window, and returns what it saw; nil for scenarios without a fault.
// lctx is the sending window; ctx the whole run (a restart may outlive the
// window).
func (h *harness) fault(lctx, ctx context.Context, ps phaseSpec, bots []*botProc, f *fakeAPI, tr *tracker, start time.Time) *faultReport {
	if ps.kind != "shebao" {
		return nil
	}
	switch ps.scenario {
	case "sigterm", "sigkill", "redis-restart":
	default:
		return nil
	}
	if err := sleepCtx(lctx, h.opt.faultAt); err != nil {
		return nil
	}
	fr := &faultReport{Kind: ps.scenario, AtSec: time.Since(start).Seconds(), at: time.Now()}
	// In flight: waiting for an answer (the users' view) or not yet
	// confirmed to the fake (Telegram's view: it will deliver them again).
	inflight := append(tr.pendingIDs(), f.unconfirmed()...)
	slices.Sort(inflight)
	inflight = slices.Compact(inflight)
	fr.InFlight = len(inflight)
	fr.inflight = inflight
	b := bots[0]

	if ps.scenario == "redis-restart" {
		h.redisOutage(lctx, ctx, fr, b)
		return fr
	}
	sig := syscall.SIGTERM
	if ps.scenario == "sigkill" {
		sig = syscall.SIGKILL
	}
	t0 := time.Now()
	b.proc.signal(sig)
	select {
	case <-b.proc.done:
	case <-time.After(30 * time.Second):
		h.log.Warn("serve did not exit within 30s of the signal; killing it", "signal", sig)
		b.proc.signal(syscall.SIGKILL)
		<-b.proc.done
	}
	code := b.proc.code
	fr.ExitCode, fr.ExitSec = &code, time.Since(t0).Seconds()
	t1 := time.Now()
	if err := b.start(ctx, h.cs, h.dir); err != nil {
		h.log.Error("restart serve", "err", err)
		return fr
	}
	fr.RestartSec = time.Since(t1).Seconds()
	return fr
}

// redisOutage stops redis-server for opt.outage, starts it again and
// samples serve's /healthz every 200 ms from the stop until well after
// the restart.
func (h *harness) redisOutage(lctx, ctx context.Context, fr *faultReport, b *botProc) {
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan []healthPoint, 1)
	go func() {
		var pts []healthPoint
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			pts = append(pts, healthPoint{time.Now(), healthz(b.base() + "/healthz")})
			select {
			case <-sctx.Done():
				sampled <- pts
				return
			case <-tick.C:
			}
		}
	}()
	down := time.Now()
	h.redis.proc.stop(5 * time.Second)
	sleepErr := sleepCtx(ctx, h.opt.outage)
	if sleepErr == nil {
		if err := h.redis.start(ctx); err != nil {
			h.log.Error("restart redis-server", "err", err)
		}
	}
	up := time.Now()
	// Keep sampling to the end of the sending window and a little after.
	select {
	case <-lctx.Done():
	case <-ctx.Done():
	}
	_ = sleepCtx(ctx, 2*time.Second) // ends early only when the run is cancelled
	stopSampling()
	pts := <-sampled

	fr.OutageSec = up.Sub(down).Seconds()
	fr.HealthDuring, fr.HealthAfter = map[int]int{}, map[int]int{}
	first200 := -1.0
	for _, p := range pts {
		if p.at.Before(up) {
			fr.HealthDuring[p.code]++
			continue
		}
		fr.HealthAfter[p.code]++
		if p.code == 200 && first200 < 0 {
			first200 = p.at.Sub(up).Seconds()
		}
	}
	fr.Healthy200After = first200
	fr.Timeline = pts
	fr.outage = [2]time.Time{down, up}
}

// slowReply is the first-reply wait past which an update counts as stalled
// in a fault report.
const slowReply = 5 * time.Second

// classify sorts the updates in flight at the fault by their fate and,
// for a Redis outage, counts what happened during it.
func (fr *faultReport) classify(recs []record) {
	byID := make(map[int64]record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	fr.InFlightAnswered, fr.InFlightLost, fr.InFlightTwice = []int64{}, []int64{}, []int64{}
	for _, id := range fr.inflight {
		r, ok := byID[id]
		if !ok {
			continue // a warm-up update
		}
		if !r.FirstAt.IsZero() {
			fr.InFlightMaxWaitSec = max(fr.InFlightMaxWaitSec, math.Round(r.FirstAt.Sub(r.SentAt).Seconds()*100)/100)
		}
		switch {
		case r.Got == 0:
			fr.InFlightLost = append(fr.InFlightLost, id)
		case r.Dups > 0:
			fr.InFlightTwice = append(fr.InFlightTwice, id)
		default:
			fr.InFlightAnswered = append(fr.InFlightAnswered, id)
		}
	}
	for _, r := range recs {
		if r.Dups == 0 {
			continue
		}
		fr.TwiceAll++
		if !r.FirstAt.IsZero() && r.FirstAt.Before(fr.at) {
			fr.TwiceLatestBeforeMs = max(fr.TwiceLatestBeforeMs, math.Round(float64(fr.at.Sub(r.FirstAt).Microseconds())/100)/10)
		}
	}
	slow := make(map[int64]bool)
	for _, r := range recs {
		if !r.FirstAt.IsZero() && r.FirstAt.Sub(r.SentAt) > slowReply {
			fr.SlowReplies++
			slow[r.Chat] = true
		}
	}
	fr.SlowChats = len(slow)
	if fr.Kind != "redis-restart" || fr.outage[0].IsZero() {
		return
	}
	down, up := fr.outage[0], fr.outage[1]
	var lastBad time.Time
	for _, r := range recs {
		if !r.SentAt.Before(down) && r.SentAt.Before(up) {
			fr.SentInOutage++
		}
		if !r.FirstAt.IsZero() && !r.FirstAt.Before(down) && r.FirstAt.Before(up) {
			fr.AnsweredInOutage++
		}
		bad := r.Got == 0 || r.DoneAt.IsZero() || r.Alt != "" || r.Dups > 0
		if bad && !r.SentAt.Before(down) && r.SentAt.After(lastBad) {
			lastBad = r.SentAt
		}
	}
	normal := 0.0
	if lastBad.After(up) {
		normal = math.Round(lastBad.Sub(up).Seconds()*100) / 100
	}
	fr.NormalAfter = &normal
}

// run runs every phase the options ask for and builds the report.
func (h *harness) run(ctx context.Context) (*report, error) {
	o := h.opt
	rep := &report{Started: time.Now(), Command: o.commandLine,
		Host: "figures from a shared 2-core machine are smoke figures only; rerun on a quiet machine for measurements"}
	modes := []string{o.mode}
	if o.mode == "both" {
		modes = []string{"polling", "webhook"}
	}
	for _, mode := range modes {
		switch o.scenario {
		case "flood", "send-outage":
			rs, err := h.runFair(ctx, mode)
			rep.Results = append(rep.Results, rs...)
			if err != nil {
				return rep, err
			}
		case "replicas":
			if mode != "webhook" {
				continue
			}
			r, err := h.runPhase(ctx, phaseSpec{kind: "shebao", mode: mode, scenario: o.scenario, replicas: 2})
			if err != nil {
				return rep, err
			}
			rep.Results = append(rep.Results, r)
		case "budget":
			if mode != "webhook" {
				continue
			}
			l := budgetLimits(o.budgetSlack)
			m := telegramtest.NewMeter(l)
			r, err := h.runPhase(ctx, phaseSpec{kind: "shebao", mode: mode, scenario: o.scenario, replicas: 2, intercept: meterSends(m)})
			if err != nil {
				return rep, err
			}
			r.Budget = newBudgetReport(l, m.Stats(), r, o.sendRate)
			rep.Results = append(rep.Results, r)
		default:
			rounds := 1
			if o.scenario == "load" && o.echo {
				rounds = o.rounds
			}
			var rs []float64
			for range rounds {
				r, err := h.runPhase(ctx, phaseSpec{kind: "shebao", mode: mode, scenario: o.scenario})
				if err != nil {
					return rep, err
				}
				rep.Results = append(rep.Results, r)
				if o.scenario != "load" || !o.echo {
					continue
				}
				e, err := h.runPhase(ctx, phaseSpec{kind: "echo", mode: mode, scenario: o.scenario})
				if err != nil {
					return rep, err
				}
				rep.Results = append(rep.Results, e)
				if e.UpdatesPerSec > 0 {
					rs = append(rs, math.Round(r.UpdatesPerSec/e.UpdatesPerSec*100)/100)
				}
			}
			if len(rs) > 0 {
				rt := ratio{Mode: mode, Ratio: math.Round(median(rs)*100) / 100}
				if len(rs) > 1 {
					rt.Rounds = rs
				}
				rep.Ratios = append(rep.Ratios, rt)
			}
		}
	}
	rep.Problems = problems(rep.Results)
	return rep, nil
}

// problems lists what a lead must look at: anything lost, repeated,
// reordered or crashed. A fault scenario expects unusual replies, so those
// count only without a fault.
func problems(results []*result) []string {
	var out []string
	for _, r := range results {
		p := fmt.Sprintf("%s (%s %s %s):", r.Name, r.Bot, r.Mode, r.Scenario)
		add := func(format string, args ...any) { out = append(out, p+" "+fmt.Sprintf(format, args...)) }
		if r.Lost > 0 {
			add("%d updates never answered, e.g. %v", r.Lost, first(r.LostIDs, 10))
		}
		if r.Incomplete > 0 {
			add("%d updates only partly answered", r.Incomplete)
		}
		if r.AnsweredTwice > 0 {
			add("%d updates answered twice, e.g. %v", r.AnsweredTwice, first(r.TwiceIDs, 10))
		}
		if r.OutOfOrder > 0 {
			add("%d replies came before the answer to an earlier update of the same chat", r.OutOfOrder)
		}
		if r.OtherReplies > 0 && r.Fault == nil {
			add("%d updates got a reply not seen in the warm-up, e.g. %q", r.OtherReplies, first(r.OtherSamples, 1))
		}
		if r.Stray > 0 {
			add("%d messages to chats that were waiting for nothing", r.Stray)
		}
		if r.WebhookGaveUp > 0 {
			add("fake gave up %d webhook deliveries", r.WebhookGaveUp)
		}
		for _, e := range r.Events {
			if len(e) > 8 && e[:8] == "PROBLEM:" {
				add("%s", e[9:])
			}
		}
	}
	return out
}

func first[T any](s []T, n int) []T { return s[:min(n, len(s))] }

// prepare builds the serve binary unless one was given, and starts
// redis-server unless a URL was given.
func (h *harness) prepare(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary for the echo bot: %w", err)
	}
	h.self = self
	if h.opt.bin != "" {
		h.shebao = h.opt.bin
	} else {
		h.shebao = filepath.Join(h.dir, "shebao")
		h.log.Info("building shebao", "src", h.opt.src)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", h.shebao, "./cmd/shebao")
		cmd.Dir = h.opt.src
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/shebao in %s: %w\n%s", h.opt.src, err, out)
		}
	}
	if h.opt.redisURL != "" {
		if h.opt.scenario == "redis-restart" {
			return errors.New("--scenario redis-restart needs a redis-server the harness owns: drop --redis-url")
		}
		h.redisURL = h.opt.redisURL
		return nil
	}
	dir := filepath.Join(h.dir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("redis dir: %w", err)
	}
	r, err := startRedis(ctx, h.cs, dir)
	if err != nil {
		return err
	}
	h.redis, h.redisURL = r, r.url()
	h.log.Info("redis-server started", "url", h.redisURL)
	return nil
}
