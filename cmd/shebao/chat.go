package main

import (
	"bufio"
	"context"
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

// chatUser is the fixed user and chat id of the terminal conversation.
const chatUser = 1

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
	c, err := loadConfig(getenv, false)
	if err != nil {
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

	var buttons []bot.Button
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 64*1024), 1<<20)
	for {
		fmt.Fprint(out, "> ")
		out.Flush()
		if !in.Scan() {
			break
		}
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		m := bot.Message{ChatID: chatUser, UserID: chatUser, LanguageCode: *lang, Time: time.Now()}
		if n, err := strconv.Atoi(line); err == nil && n >= 1 && n <= len(buttons) {
			m.Callback = buttons[n-1].Data
		} else if phone, ok := strings.CutPrefix(line, "/contact"); ok {
			m.Contact = &bot.Contact{UserID: chatUser, Phone: strings.TrimSpace(phone)}
		} else {
			m.Text = line
		}
		replies, err := parts.engine.Handle(ctx, m)
		if err != nil {
			log.Error("handle message", "err", err)
		}
		if ctx.Err() != nil {
			break
		}
		buttons = buttons[:0]
		for _, r := range replies {
			buttons = printReply(out, r, buttons)
		}
	}
	fmt.Fprintln(out)
	out.Flush()
	if err := in.Err(); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	return nil
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
