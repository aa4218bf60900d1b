package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shebao/shebao/bot"
)

// chatUser is the fixed user and chat identity of the terminal
// conversation.
var chatUser = bot.ID(bot.ChannelTerminal, "1")

// runChat talks to the engine in the terminal: one line in, replies out.
// Buttons are numbered and chosen by number; "/contact PHONE" stands in for
// Telegram's share-contact button.
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
	parts, err := openEngine(ctx, c, log, nil)
	if err != nil {
		return err
	}
	defer parts.close()

	out := bufio.NewWriter(stdout)
	fmt.Fprintln(out, "shebao chat — 输入问题或 /start、/help；/contact 13900000000 代替“分享手机号”按钮；按数字选择按钮；Ctrl-D 退出。")
	fmt.Fprintln(out, "Type a question or /start, /help; /contact 13900000000 stands in for the share-contact button; pick a button by its number; Ctrl-D quits.")
	out.Flush()

	// Lines are read in their own goroutine so that Ctrl-C (ctx) ends the
	// conversation at once, not at the next Enter.
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		in := bufio.NewScanner(stdin)
		in.Buffer(make([]byte, 64*1024), 1<<20)
		for in.Scan() {
			select {
			case lines <- in.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- in.Err()
	}()

	var buttons []bot.Button
	for {
		fmt.Fprint(out, "> ")
		out.Flush()
		var line string
		select {
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintln(out)
				out.Flush()
				select {
				case err := <-readErr:
					if err != nil {
						return fmt.Errorf("read input: %w", err)
					}
				default:
				}
				return nil
			}
			line = strings.TrimSpace(l)
		case <-ctx.Done():
			fmt.Fprintln(out)
			out.Flush()
			return nil
		}
		if line == "" {
			continue
		}
		m := bot.Message{Chat: chatUser, User: chatUser, LanguageCode: *lang, Time: time.Now()}
		cmd, arg, _ := strings.Cut(line, " ")
		switch n, err := strconv.Atoi(line); {
		case err == nil && n >= 1 && n <= len(buttons):
			m.Callback = buttons[n-1].Data
		case cmd == "/contact" && strings.TrimSpace(arg) == "":
			fmt.Fprintln(out, "用法 / usage: /contact 13900000000")
			continue
		case cmd == "/contact":
			m.Contact = &bot.Contact{User: chatUser, Phone: strings.TrimSpace(arg)}
		default:
			m.Text = line
		}
		replies, err := parts.engine.Handle(ctx, m)
		if err != nil {
			log.Error("handle message", "err", err)
		}
		buttons = buttons[:0]
		for _, r := range replies {
			buttons = printReply(out, r, buttons)
		}
	}
}

var tagRE = regexp.MustCompile(`</?[a-zA-Z][^>]*>`)

// printReply renders a reply as plain text and returns buttons extended by
// the reply's buttons, numbered on screen.
func printReply(w io.Writer, r bot.Reply, buttons []bot.Button) []bot.Button {
	if r.Text != "" {
		fmt.Fprintln(w, html.UnescapeString(tagRE.ReplaceAllString(r.Text, "")))
	}
	for _, row := range r.Buttons {
		var cells []string
		for _, b := range row {
			buttons = append(buttons, b)
			cells = append(cells, fmt.Sprintf("[%d] %s", len(buttons), b.Text))
		}
		fmt.Fprintln(w, strings.Join(cells, "   "))
	}
	if r.AskContact != "" {
		fmt.Fprintf(w, "[%s] → /contact 手机号 / your phone\n", r.AskContact)
	}
	fmt.Fprintln(w)
	return buttons
}
