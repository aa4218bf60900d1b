package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/bot/sms"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

const usage = `shebao — a social and medical insurance assistant (社保/医保助手)

Usage:
  shebao serve                      run the Telegram bot (long polling; webhook when WEBHOOK_URL is set),
                                    the web chat with WEB_CHAT=on, and the WeChat Official Account when
                                    WECHAT_APP_ID is set (each alone without TELEGRAM_BOT_TOKEN)
  shebao web                        serve the web chat on LISTEN_ADDR (default 127.0.0.1:8080; embedded defaults)
  shebao chat [--lang zh|en]        talk to the bot in this terminal (embedded defaults, nothing else needed)
  shebao ask [--lang zh|en] [--json] QUESTION
                                    print what the bot would answer
  shebao import [--persons F] [--contributions F] [--account F]
                                    validate and import CSV records into RECORDS_DB
                                    (created 0600 if missing)
  shebao import --migrate           bring an existing RECORDS_DB to this version's schema
  shebao remind --once [--now RFC3339] [--dry-run]
                                    run one reminder pass by hand (serve runs them itself)
  shebao wechat menu                set the WeChat Official Account's menu (政策问答, 我的记录, 提醒设置)
  shebao probe [/livez|/readyz]     ask the serve on this host (LISTEN_ADDR's port); exit 0 on 200
  shebao version [--json]           the version, commit and Go release of this binary
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
	case "web":
		return runWeb(ctx, rest, getenv, stdout, stderr)
	case "ask":
		return runAsk(ctx, rest, getenv, stdout, stderr)
	case "import":
		return runImport(ctx, rest, getenv, stdout, stderr)
	case "remind":
		return runRemindCmd(ctx, rest, getenv, stdout, stderr)
	case "wechat":
		return runWeChatCmd(ctx, rest, getenv, stdout, stderr)
	case "probe":
		return runProbe(ctx, rest, getenv, stdout, stderr)
	case "version", "--version":
		return runVersion(rest, stdout)
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
		keys := c.Keys
		if keys == nil {
			keys = keyring.Generate()
			log.Info("SHEBAO_KEYS not set: state is sealed under a key generated for this process, ephemeral like the embedded server")
		}
		s, err := redisstore.OpenEmbedded(ctx, redisstore.Options{Logger: log, Keys: keys})
		if err != nil {
			return nil, nil, fmt.Errorf("start embedded redis: %w", err)
		}
		return s, func() { s.Close() }, nil
	}
	if err := c.needKeys(); err != nil {
		return nil, nil, err
	}
	log.Info("state keyring", "keys", c.Keys)
	s, err := redisstore.Open(ctx, redisstore.Options{URL: c.RedisURL, Logger: log, Keys: c.Keys})
	if err != nil {
		return nil, nil, fmt.Errorf("connect to redis: %w", err)
	}
	return s, func() { s.Close() }, nil
}

// openRecords opens RECORDS_DB for reading, or the built-in demo data when
// unset. A file that is missing, empty, foreign, damaged, of an older schema
// or holding nobody is refused with one line saying what to do: served, it
// would tell every verified user that they are not in the records.
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
		if hint := recordsHint(err); hint != "" {
			return nil, fmt.Errorf("%w; %s", err, hint)
		}
		return nil, err
	}
	in := db.Info()
	attrs := []any{"path", c.RecordsDB, "persons", in.Persons, "schema", in.Schema, "immutable", in.Immutable}
	if !in.LastImport.IsZero() {
		attrs = append(attrs, "last_import", in.LastImport.Format(time.RFC3339))
	}
	log.Info("records opened", attrs...)
	if in.Immutable {
		log.Info("records folder is not writable and the file is in WAL mode: it is read as an unchanging image; " +
			"to serve a new file, put it in place by rename (never write over it); serve picks it up")
	}
	if in.Schema > in.Known {
		log.Warn("records file was migrated by a newer shebao; upgrade this one", "schema", in.Schema, "known", in.Known)
	}
	return db, nil
}

// recordsHint tells the operator what to do about a refused records file.
func recordsHint(err error) string {
	switch {
	case errors.Is(err, records.ErrMissing):
		return "check RECORDS_DB (serve, chat and remind never create a records file; shebao import does)"
	case errors.Is(err, records.ErrEmpty), errors.Is(err, records.ErrNoPersons):
		return "point RECORDS_DB at the file shebao import wrote, or import persons into this one (shebao import --persons FILE)"
	case errors.Is(err, records.ErrForeign):
		return "RECORDS_DB must name a file written by shebao import"
	case errors.Is(err, records.ErrCorrupt):
		return "restore the file from a good copy, or import again into a new file"
	case errors.Is(err, records.ErrOldSchema):
		return "migrate it with shebao import --migrate (RECORDS_DB set to the file, in a writable folder), then ship the migrated file"
	case errors.Is(err, records.ErrUnmerged):
		return "copy the file only after shebao import has finished (it merges the -wal into the file), or mount the folder writable"
	case errors.Is(err, fs.ErrPermission):
		return "the user shebao runs as must be able to read the file (shebao import creates it 0600: chown it, or share it with a group and chmod 640)"
	}
	return ""
}

// openFAQ loads the curated corpus, with the LLM when configured; observe
// (nil: none) times each LLM call.
func openFAQ(c config, log *slog.Logger, observe func(call string, d time.Duration, err error)) (*faq.FAQ, error) {
	opts := faq.Options{Logger: log}
	if c.OpenAIBaseURL != "" {
		opts.LLM = &faq.LLMConfig{BaseURL: c.OpenAIBaseURL, APIKey: c.OpenAIKey, Model: c.OpenAIModel, Timeout: c.LLMTimeout, Observe: observe}
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
	// pushLinks says where reminders can be turned on, once a channel
	// that can send them is running (serve sets it).
	pushLinks atomic.Pointer[func() []bot.PushLink]
}

func (p *engineParts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// setPushLinks tells the engine where reminders can be turned on.
func (p *engineParts) setPushLinks(f func() []bot.PushLink) { p.pushLinks.Store(&f) }

func (p *engineParts) links() []bot.PushLink {
	if f := p.pushLinks.Load(); f != nil {
		return (*f)()
	}
	return nil
}

// openEngine opens the store, the records and the FAQ and builds the
// engine over them. On error everything opened so far is closed.
//
// demoOut is where the demo SMS sender prints codes when the records are
// the demo's; nil for none.
func openEngine(ctx context.Context, c config, log *slog.Logger, m bot.Metrics, demoOut io.Writer) (_ *engineParts, err error) {
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
	if p.faq, err = openFAQ(c, log, llmObserver(m)); err != nil {
		return nil, err
	}
	codes := codeSender(c, log, demoOut)
	if q, ok := codes.(*sms.Queue); ok {
		if sm, ok := m.(interface{ SMS(outcome string) }); ok {
			q.Result = sm.SMS
		}
		qctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { q.Run(qctx); close(done) }()
		p.closers = append(p.closers, func() { stop(); <-done })
	}
	p.engine = bot.New(bot.Config{
		Sessions: store, Attempts: store, Reminders: store, FAQ: p.faq, Records: db, Keys: store.Keys(), Logger: log, Metrics: m,
		SMS: codes, SMSHourlyCap: c.SMSHourlyCap, PushLinks: p.links, Caps: c.caps,
	})
	return p, nil
}

// codeSender delivers verification codes: through SMS_WEBHOOK_URL when
// set; with the demo records only, printed to demoOut and marked as a
// demo (never with real records); otherwise none, and channels without a
// shared contact say verification is not offered.
func codeSender(c config, log *slog.Logger, demoOut io.Writer) bot.CodeSender {
	switch {
	case c.SMSWebhookURL != "":
		log.Info("verification codes go through SMS_WEBHOOK_URL")
		// Queued: asking for a code never waits on the gateway, so the
		// reply's timing tells nobody whether a text went out.
		return &sms.Queue{Next: &sms.Webhook{URL: c.SMSWebhookURL, Secret: []byte(c.SMSWebhookSecret)}, Logger: log}
	case c.RecordsDB == "" && demoOut != nil:
		log.Info("demo records: verification codes are printed on this terminal, not sent")
		return &sms.Demo{Out: demoOut}
	}
	return nil
}
