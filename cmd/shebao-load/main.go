// Command shebao-load is the load and fault harness for `shebao serve`.
//
// It plays Telegram: a lean fake Bot API on 127.0.0.1 (getUpdates long
// polling with offset confirmation, or webhook deliveries with the secret
// header, at most --max-connections at a time, retried on non-200 like
// Telegram), and N simulated users in private chats, each in a closed
// loop: ask, wait for the whole answer, ask again. What a whole answer is
// comes from a warm-up pass that sends every built-in question once. The
// bot under test runs as a separate process (built from ./cmd/shebao or
// --bin) against a redis-server the harness starts on a free loopback port
// (or --redis-url), and every child is killed with its process group when
// the harness ends.
//
// It reports updates/s, first-reply latency percentiles, updates lost or
// answered twice or out of order, the serve process's memory and the
// Redis round trips per handled update, for the scenarios load, sigterm,
// sigkill, redis-restart and replicas; slow-headers and idle-conns attack
// the bot's HTTP listener instead (attack.go); web loads the web chat
// over WebSocket sessions instead of Telegram (web.go). The load scenario
// also runs a bare echo bot (`shebao-load echo`) against the same fake and
// reports the throughput ratio.
//
// The echo bot lives in echo.go and imports github.com/go-telegram/bot
// directly: a deliberate exception to the rule that only bot/telegram
// imports it, because a baseline must not run through shebao's code.
//
// Exit status: 0 when nothing was lost, repeated or reordered; 3 when the
// report lists problems; 1 when the harness itself failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errProblems marks a run that worked but found problems in the bot.
var errProblems = errors.New("problems found")

// options are the command-line flags of a load run.
type options struct {
	users, distinct, burst, messages, maxConns int
	rounds                                     int
	duration, answerTimeout, drain, settle     time.Duration
	faultAt, outage                            time.Duration
	mode, scenario, bin, src, redisURL, dir    string
	serveLog, cpuProfile                       string
	echo, json, keep, chatParallel             bool
	think                                      time.Duration
	seed                                       uint64
	commandLine                                string
	attack                                     attackOptions // slow-headers, idle-conns
	fair                                       fairOptions   // flood, send-outage (fair.go)
	web                                        webOptions    // the web chat (web.go)
}

// Upper bounds keep every loop bounded however the flags are set.
const (
	maxUsers    = 20000
	maxDistinct = 1_000_000
	maxDuration = 30 * time.Minute
)

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("shebao-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.users, "users", 200, "concurrent simulated users (closed loop)")
	fs.IntVar(&o.distinct, "distinct-users", 0, "chats taking turns; when set without --messages, each writes once (memory after N distinct users)")
	fs.IntVar(&o.burst, "burst", 0, "messages a user sends before waiting for the answers (default 1; 3 for --scenario replicas)")
	fs.IntVar(&o.rounds, "rounds", 1, "in --scenario load with the echo bot, alternate shebao and echo phases this many times and report the median ratio")
	fs.IntVar(&o.messages, "messages", 0, "stop after this many updates (0: only --duration bounds the run)")
	fs.IntVar(&o.maxConns, "max-connections", 40, "concurrent webhook deliveries, like setWebhook's max_connections")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "sending window of each phase")
	fs.DurationVar(&o.answerTimeout, "answer-timeout", 30*time.Second, "how long a user waits for an answer before asking the next question")
	fs.DurationVar(&o.drain, "drain", 20*time.Second, "after sending stops, how long to wait for answers still due")
	fs.DurationVar(&o.settle, "settle", time.Second, "after the drain, how long to keep listening for late duplicates")
	fs.DurationVar(&o.faultAt, "fault-at", 0, "when the fault is injected, from the start of sending (default: half the duration, a third for redis-restart)")
	fs.DurationVar(&o.outage, "outage", 3*time.Second, "how long redis-server stays down in --scenario redis-restart")
	fs.StringVar(&o.mode, "mode", "polling", "polling, webhook or both")
	fs.StringVar(&o.scenario, "scenario", "load", "load, sigterm, sigkill, redis-restart, replicas, slow-headers, idle-conns, flood, send-outage or web")
	fs.StringVar(&o.bin, "bin", "", "shebao binary to run (default: go build ./cmd/shebao in --src)")
	fs.StringVar(&o.src, "src", ".", "module root to build ./cmd/shebao from")
	fs.StringVar(&o.redisURL, "redis-url", "", "use this Redis instead of starting redis-server (not with redis-restart)")
	fs.StringVar(&o.dir, "dir", "", "working directory for binaries and logs (default: a new temporary directory)")
	fs.StringVar(&o.serveLog, "serve-log-level", "warn", "LOG_LEVEL of the bot processes")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the harness itself to this file (its share of the shared cores)")
	fs.BoolVar(&o.chatParallel, "webhook-chat-parallel", false, "let webhook deliveries of one chat overlap (Telegram sends a chat's next update only after the previous one was answered)")
	fs.DurationVar(&o.think, "think", 0, "pause between an answer and the user's next question")
	fs.BoolVar(&o.echo, "echo", true, "in --scenario load, also run the bare echo bot and report the throughput ratio")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON instead of text")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (process logs) at the end")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the users' question choice")
	addAttackFlags(fs, &o.attack)
	o.fair.flags(fs)
	o.web.flags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.commandLine = "shebao-load " + strings.Join(args, " ")

	var errs []error
	switch o.mode {
	case "polling", "webhook", "both":
	default:
		errs = append(errs, fmt.Errorf("--mode: want polling, webhook or both, not %q", o.mode))
	}
	switch o.scenario {
	case "load", "sigterm", "sigkill", "redis-restart":
	case "slow-headers", "idle-conns":
		if err := o.attack.check(o.scenario); err != nil {
			errs = append(errs, err)
		}
	case "flood", "send-outage":
		errs = append(errs, o.fair.defaults(&o, fs)...)
	case "web":
		if err := o.web.check(); err != nil {
			errs = append(errs, err)
		}
	case "replicas":
		if o.mode == "polling" {
			o.mode = "webhook" // replicas share a webhook; polling has one consumer
		}
	default:
		errs = append(errs, fmt.Errorf("--scenario: want load, sigterm, sigkill, redis-restart, replicas, slow-headers, idle-conns, flood, send-outage or web, not %q", o.scenario))
	}
	if o.burst == 0 {
		o.burst = 1
		if o.scenario == "replicas" {
			o.burst = 3
		}
	}
	if o.users < 1 || o.users > maxUsers {
		errs = append(errs, fmt.Errorf("--users: want 1 to %d", maxUsers))
	}
	if o.distinct < 0 || o.distinct > maxDistinct {
		errs = append(errs, fmt.Errorf("--distinct-users: want 0 to %d", maxDistinct))
	}
	if o.burst < 1 || o.burst > 10 {
		errs = append(errs, errors.New("--burst: want 1 to 10"))
	}
	if o.rounds < 1 || o.rounds > 20 {
		errs = append(errs, errors.New("--rounds: want 1 to 20"))
	}
	if o.messages < 0 {
		errs = append(errs, errors.New("--messages: want 0 or more"))
	}
	if o.duration <= 0 || o.duration > maxDuration {
		errs = append(errs, fmt.Errorf("--duration: want more than 0 and at most %s", maxDuration))
	}
	if o.maxConns < 1 || o.maxConns > 100 {
		errs = append(errs, errors.New("--max-connections: want 1 to 100, as Telegram allows"))
	}
	for name, d := range map[string]time.Duration{"--answer-timeout": o.answerTimeout, "--drain": o.drain, "--outage": o.outage} {
		if d <= 0 || d > 10*time.Minute {
			errs = append(errs, fmt.Errorf("%s: want more than 0 and at most 10m", name))
		}
	}
	if o.think < 0 || o.think > time.Minute {
		errs = append(errs, errors.New("--think: want 0 to 1m"))
	}
	if o.settle < 0 || o.settle > time.Minute {
		errs = append(errs, errors.New("--settle: want 0 to 1m"))
	}
	if o.faultAt == 0 {
		o.faultAt = o.duration / 2
		if o.scenario == "redis-restart" {
			o.faultAt = o.duration / 3
		}
	}
	return o, errors.Join(errs...)
}

// run is main without the process, returning the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "echo" {
		if err := runEcho(ctx, getenv, stderr); err != nil {
			fmt.Fprintln(stderr, "shebao-load echo:", err)
			return 1
		}
		return 0
	}
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "shebao-load:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "shebao-load: --cpuprofile:", err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	err = runLoad(ctx, o, log, stdout)
	switch {
	case errors.Is(err, errProblems):
		return 3
	case err != nil:
		fmt.Fprintln(stderr, "shebao-load:", err)
		return 1
	}
	return 0
}

// runLoad owns the working directory and the children: whatever happens
// below, including a panic, every child process group is killed.
func runLoad(ctx context.Context, o options, log *slog.Logger, stdout io.Writer) (err error) {
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "shebao-load-"); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	cs := &children{log: log}
	defer cs.killAll()
	defer func() {
		// A bug in the harness must not leave bots and Redis running.
		if p := recover(); p != nil {
			cs.killAll()
			err = fmt.Errorf("harness panic: %v", p)
		}
	}()
	h := &harness{opt: o, log: log, cs: cs, dir: dir, idBase: rand.Int64N(1<<16) * 100_000_000_000}
	if err := h.prepare(ctx); err != nil {
		return err
	}
	if isAttack(o.scenario) {
		return h.attack(ctx, stdout) // attack.go
	}
	if o.scenario == "web" {
		return h.webLoad(ctx, stdout) // web.go
	}
	rep, err := h.run(ctx)
	if rep != nil && len(rep.Results) > 0 {
		if o.json {
			if werr := rep.writeJSON(stdout); werr != nil && err == nil {
				err = werr
			}
		} else if werr := rep.writeText(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if o.keep || o.dir != "" {
		log.Info("process logs kept", "dir", dir)
	}
	if err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return errProblems
	}
	return nil
}
