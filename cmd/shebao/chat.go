package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/shebao/shebao/bot/terminal"
)

// runChat talks to the engine in the terminal (bot/terminal).
func runChat(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lang := fs.String("lang", "zh", "language of the conversation: zh or en")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *lang != "zh" && *lang != "en" {
		return fmt.Errorf("chat: --lang must be zh or en, not %q", *lang)
	}
	c, err := loadConfig(getenv, false)
	if err = errors.Join(err, c.needKeys()); err != nil {
		return err
	}
	// The terminal is for the conversation; only problems go to stderr.
	log := newLogger(stderr, max(c.LogLevel, slog.LevelWarn))
	parts, err := openEngine(ctx, c, log, nil, nil)
	if err != nil {
		return err
	}
	defer parts.close()

	return terminal.Run(ctx, terminal.Options{
		Handler: parts.engine, Lang: *lang,
		OnError: func(err error) { log.Error("handle message", "err", err) },
	}, stdin, stdout)
}
