package bot_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

var update = flag.Bool("update", false, "rewrite the transcripts in testdata with the engine's current replies")

// testNow is the fixed clock of every transcript: a Thursday morning in
// Shanghai.
var testNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))

// Transcript files hold a conversation: "> " lines are what the user does,
// "< " lines what the bot answers. User lines:
//
//	> some text          typed text
//	> [data]             pressing the inline button with that callback data
//	> {contact U PHONE}  sharing the contact of Telegram user U
//
// Directives: "@user N" switches to user (and private chat) N, "@chat group
// N" (or supergroup, channel) makes the user write in that group chat and
// "@chat private" back in their own, "@limited on|off" marks the messages
// as refused by the transport's rate limit, "@lang CODE" sets the client
// language code, "@advance DURATION" moves the clock, "@now RFC3339" sets
// it (answers are for that day in China), "@store down|up" makes the state
// store fail or recover, "@records down|lacking|up" swaps the record file
// for one that cannot be read, for a sound one without the first demo
// person, or back to the demo. Bot lines show
// each reply's text, then its buttons as "[label](data)", a contact
// request as "{ask contact: label}", "{remove keyboard}", and "---"
// between replies. Lines starting with "#" are comments.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runTranscript(t, file, f)
		})
	}
}

func runTranscript(t *testing.T, file string, f *faq.FAQ) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := records.OpenDemo(ctx, testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := newMemStore()
	now := testNow
	engine := func(db *records.DB) *bot.Engine {
		return bot.New(bot.Config{Sessions: store, Attempts: store, Reminders: store, FAQ: f, Records: db, Keys: testKeys,
			Now: func() time.Time { return now }})
	}
	e := engine(db)

	var got []string
	user, lang := int64(100), "zh"
	var chat int64 // 0: the user's private chat
	chatType := bot.ChatPrivate
	limited := false
	flush := func(replies []bot.Reply) {
		for i, r := range replies {
			if i > 0 {
				got = append(got, "< ---")
			}
			got = append(got, renderReply(r)...)
		}
	}
	for n, line := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "< "), line == "<":
			continue // expected output: regenerated below
		case strings.HasPrefix(line, "#"), strings.TrimSpace(line) == "":
			got = append(got, line)
		case strings.HasPrefix(line, "@"):
			got = append(got, line)
			dir, arg, _ := strings.Cut(line[1:], " ")
			switch dir {
			case "user":
				user, err = strconv.ParseInt(arg, 10, 64)
			case "chat":
				kind, id, _ := strings.Cut(arg, " ")
				chatType, chat = bot.ChatType(kind), 0
				switch chatType {
				case bot.ChatPrivate:
				case bot.ChatGroup, bot.ChatSupergroup, bot.ChatChannel:
					chat, err = strconv.ParseInt(id, 10, 64)
				default:
					err = fmt.Errorf("unknown chat type %q", kind)
				}
			case "limited":
				limited = arg == "on"
			case "lang":
				lang = arg
			case "advance":
				var d time.Duration
				d, err = time.ParseDuration(arg)
				now = now.Add(d)
			case "now":
				now, err = time.Parse(time.RFC3339, arg)
			case "store":
				store.mu.Lock()
				store.down = arg == "down"
				store.mu.Unlock()
			case "records":
				switch arg {
				case "up":
					e = engine(db)
				case "down":
					e = engine(closedRecords(t))
				case "lacking":
					e = engine(recordsWithout(t, records.Demo()[0]))
				default:
					err = fmt.Errorf("want up, down or lacking")
				}
			default:
				err = fmt.Errorf("unknown directive")
			}
			if err != nil {
				t.Fatalf("%s:%d: %s: %v", file, n+1, line, err)
			}
		case strings.HasPrefix(line, "> "):
			got = append(got, line)
			m := bot.Message{Chat: tg(user), User: tg(user), LanguageCode: lang, Time: now,
				ChatType: chatType, PrivateChatURL: "https://t.me/ShebaoBot?start=", Limited: limited}
			if chat != 0 {
				m.Chat = tg(chat)
			}
			in := line[2:]
			switch {
			case strings.HasPrefix(in, "[") && strings.HasSuffix(in, "]"):
				m.Callback = in[1 : len(in)-1]
			case strings.HasPrefix(in, "{contact ") && strings.HasSuffix(in, "}"):
				owner, phone, _ := strings.Cut(in[len("{contact "):len(in)-1], " ")
				id, err := strconv.ParseInt(owner, 10, 64)
				if err != nil {
					t.Fatalf("%s:%d: bad contact owner: %v", file, n+1, err)
				}
				m.Contact = &bot.Contact{User: tg(id), Phone: phone}
			default:
				m.Text = in
			}
			replies, err := e.Handle(ctx, m)
			if err != nil {
				got = append(got, "< {error: "+err.Error()+"}")
			}
			flush(replies)
		default:
			t.Fatalf("%s:%d: cannot parse %q", file, n+1, line)
		}
	}
	out := strings.Join(got, "\n") + "\n"
	if *update {
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(string(raw), out); diff != "" {
		t.Errorf("%s differs (-file +engine); run go test ./bot -update and review the diff:\n%s", file, diff)
	}
}

// closedRecords is a record file that opened sound and can no longer be
// read: every read fails, as when the disk fails under a running bot.
func closedRecords(t *testing.T) *records.DB {
	t.Helper()
	db, err := records.OpenDemo(context.Background(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	return db
}

// recordsWithout is a sound record file, written by import and opened as
// the bot opens it, holding every demo person except gone.
func recordsWithout(t *testing.T, gone records.DemoPerson) *records.DB {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "records.db")
	w, err := records.OpenForImport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("id_number,name,phone,region,category,employer\n")
	for _, p := range records.Demo() {
		if p.ID != gone.ID {
			fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s\n", p.ID, p.Name, p.Phone, p.Region, p.Category, p.Employer)
		}
	}
	if _, err := w.Import(ctx, records.ImportSources{Persons: &records.ImportFile{Name: "persons.csv", R: strings.NewReader(b.String())}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	db, err := records.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func renderReply(r bot.Reply) []string {
	var out []string
	if r.Replaces {
		out = append(out, "< {replaces the menu}")
	}
	if text := bot.Transcript(r); text != "" {
		for _, l := range strings.Split(text, "\n") {
			out = append(out, strings.TrimRight("< "+l, " "))
		}
	}
	for _, row := range r.Buttons {
		var cells []string
		for _, b := range row {
			cells = append(cells, fmt.Sprintf("[%s](%s)", b.Text, b.Data))
		}
		out = append(out, "< "+strings.Join(cells, " "))
	}
	if r.AskContact != "" {
		out = append(out, "< {ask contact: "+r.AskContact+"}")
	}
	if r.RemoveKeyboard {
		out = append(out, "< {remove keyboard}")
	}
	return out
}
