package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/bot/reminder"
	"github.com/shebao/shebao/bot/telegram"
	"github.com/shebao/shebao/bot/wechat"
	"github.com/shebao/shebao/records"
)

// newScheduler builds the reminder scheduler over the store and records;
// sender may be nil for dry runs only.
func newScheduler(store *redisstore.Store, db *records.DB, sender reminder.Sender, log *slog.Logger, m reminder.Metrics, now func() time.Time) *reminder.Scheduler {
	return reminder.New(schedulerConfig(store, db, sender, log, m, now))
}

func schedulerConfig(store *redisstore.Store, db *records.DB, sender reminder.Sender, log *slog.Logger, m reminder.Metrics, now func() time.Time) reminder.Config {
	var channels []string
	if s, ok := sender.(senders); ok {
		// Another process may run the other channels on the same Redis:
		// this one's pass leaves their chats, and their slots, to it.
		channels = s.channels()
	}
	return reminder.Config{
		Store: store, Records: db, Sender: sender, Channels: channels, Blocklist: store, Keys: store.Keys(),
		// A deleted account or a chat Telegram no longer knows will never
		// take a reminder either.
		// (WeChat's unfollowed chats wrap bot.ErrGone.)
		Blocked: func(err error) bool {
			return errors.Is(err, telegram.ErrBlocked) || telegram.Gone(err) || errors.Is(err, bot.ErrGone)
		},
		// Only what cannot have been delivered and may work later: any
		// other failure retried would be retried every recheck, forever
		// (a 400), or could reach the user twice (a timeout).
		Retryable: func(err error) bool { return telegram.Temporary(err) || wechat.Temporary(err) },
		Now:       now, Logger: log, Metrics: m,
	}
}

// runRemindCmd is `shebao remind --once [--now RFC3339] [--dry-run]`: one
// reminder pass by hand.
func runRemindCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("remind", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.Bool("once", false, "run one pass now and exit")
	nowFlag := fs.String("now", "", "pretend the time is this RFC 3339 instant (testing, demos)")
	dry := fs.Bool("dry-run", false, "list what would be sent; send and record nothing")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("remind: %w", err)
	}
	if !*once || fs.NArg() > 0 {
		return errors.New("remind: usage: shebao remind --once [--now RFC3339] [--dry-run] (serve runs passes by itself)")
	}
	now := time.Now
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			return fmt.Errorf("remind: --now: want RFC 3339, like 2026-11-26T09:00:00+08:00")
		}
		// The clock runs on from the given instant, so pacing still works.
		start := time.Now()
		now = func() time.Time { return t.Add(time.Since(start)) }
	}
	c, err := loadConfig(getenv, false)
	if err = errors.Join(err, c.needKeys()); err != nil {
		return err
	}
	if !*dry && c.Token == "" && !c.WeChat.on() {
		return errors.New("remind: TELEGRAM_BOT_TOKEN (or WECHAT_*) is required to send (or use --dry-run)")
	}
	log := newLogger(stderr, c.LogLevel)
	store, stop, err := openStore(ctx, c, log)
	if err != nil {
		return fmt.Errorf("remind: %w", err)
	}
	defer stop()
	db, err := openRecords(ctx, c, log, now())
	if err != nil {
		return fmt.Errorf("remind: %w", err)
	}
	defer db.Close()
	var sender reminder.Sender
	if !*dry {
		var to senders
		if c.Token != "" {
			tg, err := telegram.New(telegram.Options{Token: c.Token, APIURL: c.APIURL, Handler: noHandler{}, Blocklist: store, Logger: log,
				Budget: store, SendLimits: c.sendLimits()})
			if err != nil {
				return fmt.Errorf("remind: %w", err)
			}
			to.tg = tg
		}
		if c.WeChat.on() {
			// Over the shared store: serve's access token, reply windows
			// and subscriptions.
			w := c.WeChat
			wx, err := wechat.New(wechat.Options{
				AppID: w.AppID, AppSecret: w.AppSecret, Token: w.Token, AESKey: w.AESKey, APIURL: w.APIURL,
				RemindTemplate: w.RemindTemplate, Handler: noHandler{}, Store: store, Coordinator: store,
				Blocklist: store, Reminders: store, Logger: log,
			})
			if err != nil {
				return fmt.Errorf("remind: %w", err)
			}
			to.wx = wx
		}
		sender = to
	}
	cfg := schedulerConfig(store, db, sender, log, nil, now)
	cfg.ListSent = true // printed below
	sum, err := reminder.New(cfg).Pass(ctx, *dry)
	printSummary(stdout, sum)
	if err != nil {
		return fmt.Errorf("remind: %w", err)
	}
	return nil
}

// printSummary writes the pass for the operator: counts, then each
// reminder (chat, kind, month and text; the text shows IDs masked).
func printSummary(w io.Writer, s reminder.Summary) {
	verb := "sent"
	if s.DryRun {
		verb = "would send"
	}
	fmt.Fprintf(w, "reminder pass at %s: slots %v, %d candidates, %d due, %d sent, %d failed",
		s.Start.Format(time.RFC3339), s.Slots, s.Candidates, s.Due, s.Sent, s.Failed)
	if s.Incomplete {
		fmt.Fprint(w, ", incomplete (resumes next window)")
	}
	fmt.Fprintln(w)
	reasons := make([]string, 0, len(s.Skipped))
	for r := range s.Skipped {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "  skipped %-15s %d\n", r, s.Skipped[r])
	}
	for _, p := range s.Planned {
		fmt.Fprintf(w, "%s to chat %s: %s %s\n", verb, p.Chat, p.Kind, p.Month)
		for _, l := range strings.Split(bot.PlainText(p.Reply), "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

// noHandler satisfies telegram.Options for an adapter that only sends.
type noHandler struct{}

func (noHandler) Handle(context.Context, bot.Message) ([]bot.Reply, error) { return nil, nil }
