// Package terminal is the channel of `shebao chat`: a conversation in a
// terminal, one line in and the replies out as plain text. Buttons are
// numbered and pressed by typing the number; "/contact PHONE" stands in for
// Telegram's "share my phone number" button. It is an adapter like any
// other: it builds bot.Messages and renders bot.Replies, and imports no
// platform library.
package terminal

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/shebao/shebao/bot"
)

// User is the identity of the terminal's one user and chat.
var User = bot.ID(bot.ChannelTerminal, "1")

// Options configure Run.
type Options struct {
	Handler bot.Handler
	Lang    string           // the client language: "zh" or "en"
	Now     func() time.Time // nil: time.Now
	// OnError is told what the handler returned besides its replies.
	OnError func(err error)
}

// Run talks to the handler until in ends or ctx is done.
func Run(ctx context.Context, o Options, in io.Reader, stdout io.Writer) error {
	if o.Now == nil {
		o.Now = time.Now
	}
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
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
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
		m := bot.Message{Chat: User, User: User, LanguageCode: o.Lang, Time: o.Now()}
		cmd, arg, _ := strings.Cut(line, " ")
		switch n, err := strconv.Atoi(line); {
		case err == nil && n >= 1 && n <= len(buttons) && buttons[n-1].Kind == bot.Callback:
			m.Callback = buttons[n-1].Data
		case err == nil && n >= 1 && n <= len(buttons):
			fmt.Fprintf(out, "→ %s\n", buttons[n-1].Data)
			continue
		case cmd == "/contact" && strings.TrimSpace(arg) == "":
			fmt.Fprintln(out, "用法 / usage: /contact 13900000000")
			continue
		case cmd == "/contact":
			m.Contact = &bot.Contact{User: User, Phone: strings.TrimSpace(arg)}
		default:
			m.Text = line
		}
		replies, err := o.Handler.Handle(ctx, m)
		if err != nil && o.OnError != nil {
			o.OnError(err)
		}
		buttons = buttons[:0]
		for _, r := range replies {
			buttons = Print(out, r, buttons)
		}
	}
}

// Print renders a reply as plain text and returns buttons extended by the
// reply's buttons, numbered on screen.
func Print(w io.Writer, r bot.Reply, buttons []bot.Button) []bot.Button {
	if text := bot.PlainText(r); text != "" {
		fmt.Fprintln(w, text)
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
