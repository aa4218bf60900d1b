package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// Every citation the product can emit resolves through the law registry:
// FAQ entries (every version, both languages), article look-ups, /law,
// /backpay, /documents, /records, /balance, reminders and the dev
// questions, each on the last day before the Medical Security Law and on
// its first day. A reply that names a law the registry does not have, or
// an article the corpus does not have, fails; so does one that cites a
// law not in force on its day without saying so.
func TestEveryCitationResolves(t *testing.T) {
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cst := time.FixedZone("CST", 8*3600)
	checked := 0
	var questions []string
	raw, err := os.ReadFile(filepath.Join("..", "faq", "testdata", "extra-questions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Items []struct {
			Q string `json:"q"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	for _, it := range set.Items {
		questions = append(questions, it.Q)
	}
	for _, now := range []time.Time{time.Date(2026, 12, 31, 10, 0, 0, 0, cst), time.Date(2027, 1, 1, 10, 0, 0, 0, cst)} {
		day := faq.DateOf(now)
		db, err := records.OpenDemo(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		store := newMemStore()
		e := bot.New(bot.Config{Sessions: store, Attempts: store, Reminders: store, FAQ: f, Records: db,
			Now: func() time.Time { return now }})
		user := int64(1)
		// send handles m and checks the replies; quoted statute text
		// (which names other laws and "本法第六十三条") is not checked.
		send := func(lang string, m bot.Message, quoted ...string) {
			t.Helper()
			m.Chat, m.User, m.LanguageCode, m.Time = tg(user), tg(user), lang, now
			replies, err := e.Handle(ctx, m)
			if err != nil {
				t.Fatalf("%+v: %v", m, err)
			}
			for _, r := range replies {
				checkReply(t, f, r, day, fmt.Sprintf("%s %+v", day, m), quoted...)
				checked++
			}
		}
		for _, lang := range []string{"zh", "en"} {
			user++
			send(lang, bot.Message{Text: "/lang " + lang})
			for _, en := range f.Entries() {
				send(lang, bot.Message{Callback: "faq:" + en.ID})
			}
			for _, l := range f.Laws() {
				for n := 1; n <= l.Articles; n++ {
					c := faq.Citation{Law: l.Name, Article: n}
					a, _ := f.Article(c)
					quoted := append([]string{a.Text}, strings.Split(a.English, "\n")...)
					send(lang, bot.Message{Callback: "art:" + f.Key(c)}, quoted...)
				}
			}
			for _, cmd := range []string{"/start", "/help", "/law", "/remind"} {
				send(lang, bot.Message{Text: cmd})
			}
			for _, q := range questions {
				send(lang, bot.Message{Text: q})
			}
			for _, p := range records.Demo() {
				user++
				send(lang, bot.Message{Text: "/lang " + lang})
				send(lang, bot.Message{Text: "/verify"})
				send(lang, bot.Message{Text: p.ID})
				send(lang, bot.Message{Contact: &bot.Contact{User: tg(user), Phone: p.Phone}})
				for _, cmd := range []string{"/records", "/balance", "/backpay", "/documents", "/remind"} {
					send(lang, bot.Message{Text: cmd})
				}
				gaps, err := db.Gaps(ctx, p.ID, records.Medical, now)
				if err != nil {
					t.Fatal(err)
				}
				rule := db.Rule(ctx, p.Region)
				for _, g := range gaps {
					for _, k := range []bot.ReminderKind{bot.RemindMissed, bot.RemindWindow, bot.RemindDueSoon} {
						r := bot.ReminderReply(bot.ReminderNote{Kind: k, Lang: lang, PersonID: p.ID, Month: g.To, Gap: g, DueDay: 25, Rule: rule})
						checkReply(t, f, r, day, fmt.Sprintf("reminder %s %s", k, lang))
						checked++
					}
				}
			}
		}
	}
	t.Logf("%d replies checked", checked)
}

// checkReply fails the test when r cites something that does not resolve
// on day, in its text, its citation blocks or on its buttons. Statute text
// (quote blocks, and the English renderings given as quoted) is not ours
// and is not checked.
func checkReply(t *testing.T, f *faq.FAQ, r bot.Reply, day faq.Date, what string, quoted ...string) {
	t.Helper()
	checkLayout(t, r, what)
	var own bot.Reply
	for _, b := range r.Body {
		if b.Kind == bot.Quote {
			continue
		}
		if b.Kind == bot.Cite {
			b = bot.Block{Spans: []bot.Span{{Text: b.Cite.Label}}}
		}
		own.Body = append(own.Body, b)
	}
	text := bot.PlainText(own)
	for _, q := range quoted {
		if q != "" {
			text = strings.ReplaceAll(text, q, "")
		}
	}
	texts := []string{text}
	for _, row := range r.Buttons {
		for _, b := range row {
			texts = append(texts, b.Text)
		}
	}
	for _, text := range texts {
		cs, ok := f.CitationsIn(text)
		if !ok {
			t.Errorf("%s: the reply names a law the registry does not have, or an article without its law:\n%s", what, text)
			continue
		}
		for _, c := range cs {
			if _, ok := f.Article(c); !ok {
				t.Errorf("%s: cites %s article %d, which the corpus does not have:\n%s", what, c.Law, c.Article, text)
				continue
			}
			l, _ := f.Law(c.Law)
			if l.StatusOn(day) != faq.InForce && !strings.Contains(text, "尚未施行") && !strings.Contains(text, "not yet in force") {
				t.Errorf("%s: cites %s, not in force on %s, without saying so:\n%s", what, f.Label(c, faq.ZH, faq.Date{}), day, text)
			}
		}
	}
}

// checkLayout fails the test when a reply would look broken on a phone:
// empty, opening or ending with a blank line, or with two blank lines in a
// row.
func checkLayout(t *testing.T, r bot.Reply, what string) {
	t.Helper()
	text := bot.PlainText(r)
	if strings.TrimSpace(text) == "" {
		if len(r.Buttons) == 0 && r.AskContact == "" {
			t.Errorf("%s: an empty reply", what)
		}
		return
	}
	if strings.HasPrefix(text, "\n") || strings.HasSuffix(text, "\n") {
		t.Errorf("%s: the reply opens or ends with a blank line:\n%q", what, text)
	}
	if strings.Contains(text, "\n\n\n") {
		t.Errorf("%s: two blank lines in a row:\n%s", what, text)
	}
}
