package main

// The fairness scenarios of issue 12.
//
// flood: about twenty users chat at a human pace (a question, the answer,
// --think, the next question) while one more user sends --flood messages at
// once. It runs twice per mode, without and with the flood, and compares
// the others' first-reply latency: the flood must leave their p99 within
// 2× of the unflooded run. It also reports what became of the flood: the
// messages the flooder got back, how many of them were the rate-limit
// notice, and how many updates the bot counted as skipped.
//
// send-outage: the users chat as above while the fake Bot API fails every
// sendMessage for --outage (10 s by default). --outage-kind picks how:
// "500" answers 500 without delivering (Telegram down), "502-after"
// delivers and then answers 502 (a proxy that lost the answer),
// "timeout-after" delivers and never answers. The first must lose nothing
// and repeat nothing; the other two are the at-least-once edge, where each
// retry may repeat a message: the report counts the repeats.

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fairOptions are the flags of the fairness scenarios.
type fairOptions struct {
	flood      int
	outageKind string
}

func (f *fairOptions) flags(fs *flag.FlagSet) {
	fs.IntVar(&f.flood, "flood", 10_000, "in --scenario flood, messages the flooding user sends at once")
	fs.StringVar(&f.outageKind, "outage-kind", "500", "in --scenario send-outage: 500, 502-after or timeout-after")
}

// defaults sets what the fairness scenarios need unless the flag was
// given: a few users at a human pace (a closed loop without a pause would
// itself be a flood), and a 10 s outage.
func (f *fairOptions) defaults(o *options, fs *flag.FlagSet) []error {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if !set["users"] {
		o.users = 20
	}
	if !set["think"] {
		o.think = 3 * time.Second
	}
	if !set["duration"] {
		o.duration = 60 * time.Second
	}
	if !set["outage"] && o.scenario == "send-outage" {
		o.outage = 10 * time.Second
	}
	if !set["drain"] && o.scenario == "send-outage" {
		o.drain = 90 * time.Second // replies retried for up to a minute
	}
	var errs []error
	if f.flood < 1 || f.flood > 100_000 {
		errs = append(errs, errors.New("--flood: want 1 to 100000"))
	}
	switch f.outageKind {
	case "500", "502-after", "timeout-after":
	default:
		errs = append(errs, fmt.Errorf("--outage-kind: want 500, 502-after or timeout-after, not %q", f.outageKind))
	}
	return errs
}

// limitEnv is the per-user rate limit given to a shebao process. The
// older scenarios measure throughput with users who ask again the moment
// an answer arrives, many times a second: the limit is set far above them
// so that they measure what they did before, limiter round trip included.
// The fairness scenarios run with the defaults.
//
// The send budget (TELEGRAM_SEND_RATE) is off, as before it existed, in
// every scenario but budget: the fake has no limits, and they measure the
// bot's own throughput.
func (h *harness) limitEnv() []string {
	switch h.opt.scenario {
	case "flood", "send-outage":
		return []string{"TELEGRAM_SEND_RATE=0"}
	case "budget":
		env := []string{"USER_RATE_LIMIT=1000000", "USER_RATE_BURST=1000000"}
		if h.opt.sendRate != "" {
			env = append(env, "TELEGRAM_SEND_RATE="+h.opt.sendRate)
		}
		return env
	}
	return []string{"USER_RATE_LIMIT=1000000", "USER_RATE_BURST=1000000", "TELEGRAM_SEND_RATE=0"}
}

// fairReport is what a fairness phase adds to its result.
type fairReport struct {
	// flood
	Flooded            bool       `json:"flooded,omitempty"`
	FloodSent          int        `json:"flood_sent,omitempty"`
	FloodReplies       int64      `json:"flood_replies,omitempty"` // messages the flooder received
	FloodNotices       int64      `json:"flood_notices,omitempty"` // of them, the rate-limit notice
	FloodSkipped       float64    `json:"flood_skipped_by_bot,omitempty"`
	FloodDrainSec      float64    `json:"flood_taken_in_sec,omitempty"` // until the fake had delivered or confirmed all of it
	BaselineFirstReply *latencies `json:"unflooded_first_reply,omitempty"`
	P99Ratio           float64    `json:"others_p99_ratio,omitempty"`
	// send-outage
	OutageKind       string  `json:"outage_kind,omitempty"`
	OutageSec        float64 `json:"outage_sec,omitempty"`
	FailedSends      int64   `json:"send_calls_failed,omitempty"`
	SentBeforeOrIn   int     `json:"updates_sent_before_outage_end,omitempty"`
	LongestWaitSec   float64 `json:"longest_first_reply_sec,omitempty"`
	DeliveredInFault int64   `json:"messages_delivered_but_failed,omitempty"`
	Repeats          int     `json:"messages_repeated,omitempty"` // duplicate messages, over all updates
}

// runFair runs the phases of a fairness scenario in one mode.
func (h *harness) runFair(ctx context.Context, mode string) ([]*result, error) {
	if h.opt.scenario == "send-outage" {
		r, err := h.runFairPhase(ctx, mode, false)
		if r == nil {
			return nil, err
		}
		return []*result{r}, err
	}
	base, err := h.runFairPhase(ctx, mode, false)
	if err != nil {
		return nil, err
	}
	flooded, err := h.runFairPhase(ctx, mode, true)
	if err != nil {
		return []*result{base}, err
	}
	fr := flooded.Fair
	fr.BaselineFirstReply = &base.FirstReply
	if base.FirstReply.P99 > 0 {
		fr.P99Ratio = math.Round(flooded.FirstReply.P99/base.FirstReply.P99*100) / 100
	}
	verdict := "within"
	if fr.P99Ratio > 2 {
		verdict = "PROBLEM: over"
	}
	flooded.Events = append(flooded.Events,
		fmt.Sprintf("flood of %d messages, all taken from the fake in %.2fs: the flooder got %d messages back (%d of them the rate-limit notice); the bot counted %.0f updates skipped",
			fr.FloodSent, fr.FloodDrainSec, fr.FloodReplies, fr.FloodNotices, fr.FloodSkipped),
		fmt.Sprintf("%s 2x: the other users' first-reply p99 %.1f ms flooded against %.1f ms unflooded (p50 %.1f against %.1f): ratio %.2f",
			verdict, flooded.FirstReply.P99, base.FirstReply.P99, flooded.FirstReply.P50, base.FirstReply.P50, fr.P99Ratio))
	return []*result{base, flooded}, nil
}

// isNotice recognises shebao's rate-limit notice in either language.
func isNotice(text string) bool {
	return strings.Contains(text, "太快") || strings.Contains(strings.ToLower(text), "too fast")
}

// runFairPhase is one phase: one shebao process, the users at a human
// pace, and the flood or the outage.
func (h *harness) runFairPhase(ctx context.Context, mode string, flood bool) (*result, error) {
	h.phase++
	o := h.opt
	name := fmt.Sprintf("phase %d", h.phase)
	if o.scenario == "flood" && !flood {
		name += " (unflooded)"
	}
	res := &result{Name: name, Bot: "shebao", Mode: mode, Scenario: o.scenario, Users: o.users, Fair: &fairReport{Flooded: flood}}
	h.log.Info("phase", "n", h.phase, "mode", mode, "scenario", o.scenario, "flood", flood)

	chatBase := int64(h.phase) * 100_000_000
	floodChat := chatBase + 95_000_000
	var floodReplies, floodNotices atomic.Int64
	var route atomic.Pointer[func(chatID int64, text string, at time.Time)]
	onSend := func(chatID int64, text string, at time.Time) {
		if chatID == floodChat {
			floodReplies.Add(1)
			if isNotice(text) {
				floodNotices.Add(1)
			}
			return
		}
		if fn := route.Load(); fn != nil {
			(*fn)(chatID, text, at)
		}
	}
	out := &sendOutage{kind: o.fair.outageKind, onSend: onSend}
	sk := &sink{}
	f, err := startFake(fakeOptions{
		Token:         fmt.Sprintf("%d:fair%s", 700000+h.phase, mode),
		FirstUpdateID: h.idBase + int64(h.phase)*1_000_000_000, MaxConnections: o.maxConns, ChatParallel: o.chatParallel,
		OnSend: onSend, Intercept: out.intercept, Logger: h.log,
	})
	if err != nil {
		return nil, err
	}
	defer f.close()
	sinkFn := sk.send
	route.Store(&sinkFn)

	b, err := h.startBot(ctx, "shebao", mode, rand.Text(), f, 0)
	if err != nil {
		return nil, err
	}
	defer func() {
		code, took := b.proc.stop(20 * time.Second)
		res.Events = append(res.Events, fmt.Sprintf("%s stopped with SIGTERM: exit code %d after %.2fs", b.name, code, took.Seconds()))
		if code != 0 {
			res.Events = append(res.Events, fmt.Sprintf("PROBLEM: %s exited with code %d on SIGTERM", b.name, code))
		}
	}()

	replies, err := warmUp(ctx, f, sk, builtinInputs, chatBase+90_000_000, 700*time.Millisecond, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.scenario, mode, err)
	}
	tr := newTracker(expectations(replies))
	sk.set(tr.deliver)
	skippedBefore, _ := scrapeCounter(b.metricsURL(), "shebao_updates_total", `outcome="limited"`)
	callsBefore := f.callCounts()

	lctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	start := time.Now()
	var side sync.WaitGroup
	if flood {
		side.Go(func() {
			// After the users have started, so the flood meets a
			// running conversation.
			if sleepCtx(lctx, 2*time.Second) != nil {
				return
			}
			t0 := time.Now()
			var first, last int64
			for i := range o.fair.flood {
				last = f.push(floodChat, "zh", "医保断缴了可以补缴吗", nil)
				if i == 0 {
					first = last
				}
			}
			res.Fair.FloodSent = o.fair.flood
			// How long Telegram's queue holds the flood: updates behind it
			// wait at least that long in polling mode.
			for ctx.Err() == nil {
				left := 0
				for _, id := range f.unconfirmed() {
					if id >= first && id <= last {
						left++
					}
				}
				if left == 0 {
					res.Fair.FloodDrainSec = math.Round(time.Since(t0).Seconds()*1000) / 1000
					return
				}
				if sleepCtx(ctx, 20*time.Millisecond) != nil {
					return
				}
			}
		})
	}
	var outageEnd time.Time
	if o.scenario == "send-outage" {
		side.Go(func() {
			if sleepCtx(lctx, o.faultAt) != nil {
				return
			}
			out.set(true)
			res.Events = append(res.Events, fmt.Sprintf("sendMessage fails (%s) from %.1fs for %s", out.kind, time.Since(start).Seconds(), o.outage))
			_ = sleepCtx(ctx, o.outage)
			out.set(false)
			outageEnd = time.Now()
		})
	}
	runPaced(lctx, f, tr, builtinInputs, o.users, chatBase, o.think, o.answerTimeout, o.seed+uint64(h.phase))
	stop := time.Now()
	cancel()
	side.Wait()

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
	if rss, hwm, err := memory(b.proc.pid()); err == nil {
		res.RSSKiB, res.HWMKiB = []int64{rss}, []int64{hwm}
	}
	if skipped, err := scrapeCounter(b.metricsURL(), "shebao_updates_total", `outcome="limited"`); err == nil {
		res.Fair.FloodSkipped = skipped - skippedBefore
	}
	res.Fair.FloodReplies, res.Fair.FloodNotices = floodReplies.Load(), floodNotices.Load()
	if o.scenario == "send-outage" {
		fr := res.Fair
		fr.OutageKind, fr.OutageSec = out.kind, o.outage.Seconds()
		fr.FailedSends, fr.DeliveredInFault = out.failed.Load(), out.delivered.Load()
		for _, r := range recs {
			fr.Repeats += r.Dups
			if !outageEnd.IsZero() && r.SentAt.Before(outageEnd) {
				fr.SentBeforeOrIn++
			}
			if !r.FirstAt.IsZero() {
				fr.LongestWaitSec = max(fr.LongestWaitSec, math.Round(r.FirstAt.Sub(r.SentAt).Seconds()*100)/100)
			}
		}
		res.Events = append(res.Events, fmt.Sprintf("outage (%s, %.0fs): %d sendMessage calls failed (%d of them after delivering); %d updates lost, %d answered twice (%d repeated messages); longest wait for a first reply %.1fs",
			fr.OutageKind, fr.OutageSec, fr.FailedSends, fr.DeliveredInFault, res.Lost, res.AnsweredTwice, fr.Repeats, fr.LongestWaitSec))
	}
	return res, nil
}

// runPaced runs users who chat like people: each starts at a random
// moment within think, asks, waits for the whole answer (at most
// answerTimeout), pauses for think ±50 % and asks again, until ctx ends.
// Unlike runUsers' closed loop the users do not move in step, so a flood
// at any moment meets some of them waiting for an answer.
func runPaced(ctx context.Context, f *fakeAPI, t *tracker, inputs []input, users int, chatBase int64, think, answerTimeout time.Duration, seed uint64) {
	byLang := map[string][]int{}
	for i, in := range inputs {
		byLang[in.Lang] = append(byLang[in.Lang], i)
	}
	var wg sync.WaitGroup
	for u := range users {
		rng := mrand.New(mrand.NewPCG(seed, uint64(u)))
		chat := chatBase + int64(u)
		wg.Go(func() {
			pause := func(d time.Duration) bool { return sleepCtx(ctx, d) == nil }
			if !pause(time.Duration(rng.Int64N(int64(think) + 1))) {
				return
			}
			for ctx.Err() == nil {
				in := pick(rng, byLang[chatLang(chat)], t.exp, t.recentClasses(chat, 4))
				var rec *record
				f.push(chat, inputs[in].Lang, inputs[in].Text, func(id int64) { rec = t.register(chat, in, id, time.Now()) })
				timeout := time.NewTimer(answerTimeout)
				select {
				case <-rec.done:
				case <-timeout.C:
				case <-ctx.Done():
				}
				timeout.Stop()
				if !pause(think/2 + time.Duration(rng.Int64N(int64(think)+1))) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// sendOutage fails sendMessage while on.
type sendOutage struct {
	kind      string
	onSend    func(chatID int64, text string, at time.Time)
	on        atomic.Bool
	failed    atomic.Int64
	delivered atomic.Int64
}

func (s *sendOutage) set(on bool) { s.on.Store(on) }

func (s *sendOutage) intercept(w http.ResponseWriter, r *http.Request, method string, p apiParams) bool {
	if method != "sendMessage" || !s.on.Load() {
		return false
	}
	s.failed.Add(1)
	switch s.kind {
	case "502-after":
		s.delivered.Add(1)
		s.onSend(p.int("chat_id"), p["text"], time.Now())
		// What a proxy in front of the Bot API answers: no JSON.
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
	case "timeout-after":
		s.delivered.Add(1)
		s.onSend(p.int("chat_id"), p["text"], time.Now())
		<-r.Context().Done() // never answers; the client times out
	default:
		writeAPI(w, http.StatusInternalServerError, `{"ok":false,"error_code":500,"description":"Internal Server Error"}`)
	}
	return true
}

// scrapeCounter sums the samples of a counter whose labels contain match.
func scrapeCounter(url, name, match string) (float64, error) {
	resp, err := probe.Get(url)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		_, val, ok := strings.Cut(line, "} ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}
