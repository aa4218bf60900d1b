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

	"github.com/shebao/shebao/faq"
)

// askJSON is the machine-readable answer of `shebao ask --json`.
type askJSON struct {
	Answer    string         `json:"answer"`
	Citations []faq.Citation `json:"citations"`
	Entry     string         `json:"entry"`
	Score     float64        `json:"score"`
	Abstained bool           `json:"abstained"`
}

func runAsk(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ask", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lang := fs.String("lang", "", "answer language: zh or en (default: the language of the question)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
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
	c, err := loadConfig(getenv, false)
	if err != nil {
		return err
	}
	f, err := openFAQ(c, newLogger(stderr, max(c.LogLevel, slog.LevelWarn)))
	if err != nil {
		return err
	}
	a, err := f.Answer(ctx, q, l)
	if err != nil {
		return fmt.Errorf("ask: %w", err)
	}
	if *asJSON {
		out := askJSON{Answer: a.Text, Citations: a.Citations, Entry: a.EntryID, Score: a.Score, Abstained: a.Abstained}
		if out.Citations == nil {
			out.Citations = []faq.Citation{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintln(stdout, a.Text)
	if len(a.Citations) > 0 && a.Article == nil {
		labels := make([]string, len(a.Citations))
		for i, c := range a.Citations {
			labels[i] = c.Label(l)
		}
		sep, head := "、", "依据："
		if l == faq.EN {
			sep, head = "; ", "Legal basis: "
		}
		fmt.Fprintln(stdout, "\n"+head+strings.Join(labels, sep))
	}
	return nil
}
