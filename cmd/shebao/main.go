// Command shebao runs the shebao assistant: the Telegram bot (serve), the
// same engine in a terminal (chat), one-off questions (ask) and record
// imports (import). Everything below main is in run, so it can be tested.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	_ "time/tzdata" // times are shown in Asia/Shanghai on any host
)

func main() {
	if os.Getenv("GOGC") == "" {
		// The bot's live heap is small (tens of MB) and its garbage is
		// per-message; collecting at 4x the live heap instead of 2x
		// raised throughput under load by a fifth (BENCHMARKS.md). The
		// environment still wins.
		debug.SetGCPercent(300)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shebao:", err)
		os.Exit(1)
	}
}
