package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/terminal"
	"github.com/shebao/shebao/faq"
)

// askJSON is the machine-readable answer of `shebao ask --json`.
type askJSON struct {
	Date      string         `json:"date"`
	Answer    string         `json:"answer"`
	Citations []faq.Citation `json:"citations"`
	// Labels are the citations as the user sees them on that day.
	Labels    []string  `json:"labels"`
	Notes     []askNote `json:"notes"`
	Entry     string    `json:"entry"`
	Score     float64   `json:"score"`
	Abstained bool      `json:"abstained"`
	Reply     string    `json:"reply"` // the whole reply as plain text
}

type askNote struct {
	From      string         `json:"from,omitempty"`
	Text      string         `json:"text"`
	Citations []faq.Citation `json:"citations"`
}

func runAsk(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ask", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lang := fs.String("lang", "", "answer language: zh or en (default: the language of the question)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	date := fs.String("date", "", "answer as on this day, YYYY-MM-DD (default: today in Asia/Shanghai)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if q == "" {
		return errors.New("ask: give a question, e.g. shebao ask 医保断缴了还能补吗")
	}
	l := faq.DetectLang(q)
	switch *lang {
	case "":
	case "zh", "en":
		l = faq.Lang(*lang)
	default:
		return fmt.Errorf("ask: --lang must be zh or en, not %q", *lang)
	}
	day := faq.DateOf(time.Now())
	if *date != "" {
		d, err := faq.ParseDate(*date)
		if err != nil {
			return fmt.Errorf("ask: --date: %w", err)
		}
		day = d
	}
	c, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	f, err := openFAQ(c, newLogger(stderr, max(c.LogLevel, slog.LevelWarn)), nil)
	if err != nil {
		return err
	}
	a, err := f.Answer(ctx, faq.Query{Text: q, Lang: l, Day: day})
	if err != nil {
		return fmt.Errorf("ask: %w", err)
	}
	var text strings.Builder
	terminal.Print(&text, bot.AnswerReply(f, a, string(l)), nil)
	if *asJSON {
		out := askJSON{Date: day.String(), Answer: a.Text, Citations: a.Citations, Labels: []string{}, Notes: []askNote{},
			Entry: a.EntryID, Score: a.Score, Abstained: a.Abstained, Reply: strings.TrimSpace(text.String())}
		if out.Citations == nil {
			out.Citations = []faq.Citation{}
		}
		for _, c := range a.Citations {
			out.Labels = append(out.Labels, f.Label(c, l, day))
		}
		for _, n := range a.Notes {
			an := askNote{Text: n.Text, Citations: n.Citations}
			if !n.From.IsZero() {
				an.From = n.From.String()
			}
			out.Notes = append(out.Notes, an)
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	_, err = io.WriteString(stdout, text.String())
	return err
}
