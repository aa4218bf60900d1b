package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

const usage = `shebao — a social and medical insurance assistant (社保/医保助手)

Usage:
  shebao serve                      run the Telegram bot (long polling; webhook when WEBHOOK_URL is set)
  shebao chat [--lang zh|en]        talk to the bot in this terminal (embedded defaults, nothing else needed)
  shebao ask [--lang zh|en] [--json] QUESTION
                                    print what the bot would answer
  shebao import [--persons F] [--contributions F] [--account F]
                                    validate and import CSV records into RECORDS_DB
  shebao remind --once [--now RFC3339] [--dry-run]
                                    run one reminder pass by hand (serve runs them itself)
  shebao probe [/livez|/readyz]     ask the serve on this host (LISTEN_ADDR's port); exit 0 on 200
  shebao help                       this text

Configuration is read from the environment; see README.md.
`

// run is main without the process: everything it needs comes in as
// arguments, so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "chat":
		return runChat(ctx, rest, getenv, stdin, stdout, stderr)
	case "ask":
		return runAsk(ctx, rest, getenv, stdout, stderr)
	case "import":
		return runImport(ctx, rest, getenv, stdout, stderr)
	case "remind":
		return runRemindCmd(ctx, rest, getenv, stdout, stderr)
	case "probe":
		return runProbe(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stdout, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// newLogger builds the JSON logger all packages receive.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openStore connects to REDIS_URL, or starts the embedded in-process
// server when it is unset.
func openStore(ctx context.Context, c config, log *slog.Logger) (*redisstore.Store, func(), error) {
	if c.RedisURL == "" {
		log.Info("REDIS_URL not set: using an embedded in-process Redis-compatible server; state is NOT durable and not shared between replicas")
		s, err := redisstore.OpenEmbedded(ctx, redisstore.Options{Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("start embedded redis: %w", err)
		}
		return s, func() { s.Close() }, nil
	}
	s, err := redisstore.Open(ctx, redisstore.Options{URL: c.RedisURL, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("connect to redis: %w", err)
	}
	return s, func() { s.Close() }, nil
}

// openRecords opens RECORDS_DB, or the built-in demo data when unset.
func openRecords(ctx context.Context, c config, log *slog.Logger, now time.Time) (*records.DB, error) {
	if c.RecordsDB == "" {
		log.Info("RECORDS_DB not set: using built-in demo records of fictional people (see README)")
		db, err := records.OpenDemo(ctx, now)
		if err != nil {
			return nil, fmt.Errorf("open demo records: %w", err)
		}
		return db, nil
	}
	db, err := records.Open(ctx, c.RecordsDB)
	if err != nil {
		return nil, fmt.Errorf("open records %s: %w", c.RecordsDB, err)
	}
	return db, nil
}

// openFAQ loads the curated corpus, with the LLM when configured.
func openFAQ(c config, log *slog.Logger) (*faq.FAQ, error) {
	opts := faq.Options{Logger: log}
	if c.OpenAIBaseURL != "" {
		opts.LLM = &faq.LLMConfig{BaseURL: c.OpenAIBaseURL, APIKey: c.OpenAIKey, Model: c.OpenAIModel, Timeout: c.LLMTimeout}
		log.Info("LLM phrasing enabled", "model", c.OpenAIModel)
	} else {
		log.Info("OPENAI_BASE_URL not set: answers come from retrieval alone")
	}
	f, err := faq.New(opts)
	if err != nil {
		return nil, fmt.Errorf("load faq: %w", err)
	}
	return f, nil
}

// engineParts are the resources behind an engine, closed in reverse order
// of opening.
type engineParts struct {
	store   *redisstore.Store
	records *records.DB
	faq     *faq.FAQ
	engine  *bot.Engine
	closers []func()
}

func (p *engineParts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// openEngine opens the store, the records and the FAQ and builds the
// engine over them. On error everything opened so far is closed.
func openEngine(ctx context.Context, c config, log *slog.Logger, m bot.Metrics) (_ *engineParts, err error) {
	p := &engineParts{}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	store, stop, err := openStore(ctx, c, log)
	if err != nil {
		return nil, err
	}
	p.store, p.closers = store, append(p.closers, stop)
	db, err := openRecords(ctx, c, log, time.Now())
	if err != nil {
		return nil, err
	}
	p.records, p.closers = db, append(p.closers, func() { db.Close() })
	if p.faq, err = openFAQ(c, log); err != nil {
		return nil, err
	}
	p.engine = bot.New(bot.Config{
		Sessions: store, Attempts: store, Reminders: store, FAQ: p.faq, Records: db, Logger: log, Metrics: m,
	})
	return p, nil
}
