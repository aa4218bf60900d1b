package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
	"github.com/shebao/shebao/records"
)

// importPersons runs `shebao import --persons` of the given demo people
// into path.
func importPersons(t *testing.T, path string, people ...records.DemoPerson) {
	t.Helper()
	var b strings.Builder
	b.WriteString("id_number,name,phone,region,category,employer\n")
	for _, p := range people {
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s\n", p.ID, p.Name, p.Phone, p.Region, p.Category, p.Employer)
	}
	csv := filepath.Join(t.TempDir(), "persons.csv")
	if err := os.WriteFile(csv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, logs bytes.Buffer
	if err := run(context.Background(), []string{"import", "--persons", csv}, env(map[string]string{"RECORDS_DB": path}), nil, &out, &logs); err != nil {
		t.Fatalf("import: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Published "+path) {
		t.Errorf("import output does not say it published the file:\n%s", out.String())
	}
}

// chatSays sends text in chat and returns what the bot answers, once a
// reply containing want arrives.
func chatSays(t *testing.T, fake *telegramtest.Server, chat int64, want string, push func()) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := len(fake.Chat(chat))
	push()
	for n := len(fake.Sent()) + 1; ; n++ {
		var got strings.Builder
		for _, m := range fake.Chat(chat)[before:] {
			got.WriteString(m.Text + "\n")
		}
		if strings.Contains(got.String(), want) {
			return got.String()
		}
		if _, err := fake.WaitSent(ctx, n); err != nil {
			t.Fatalf("chat %d never said %q; it said:\n%s", chat, want, got.String())
		}
	}
}

func verifyIn(t *testing.T, fake *telegramtest.Server, chat int64, p records.DemoPerson) string {
	t.Helper()
	return chatSays(t, fake, chat, "验证", func() {
		fake.PushText(chat, "/verify")
		fake.PushText(chat, p.ID)
		fake.PushContact(chat, p.Phone, chat)
	})
}

// A new records file put in place while serve runs is served without a
// restart, once it passes the checks; a damaged file, or one that lists
// far fewer persons, is refused, and the file in service keeps serving
// everyone verified on it.
func TestServeReloadsRecords(t *testing.T) {
	demo := records.Demo()
	dir := t.TempDir()
	path := filepath.Join(dir, "records.db")
	importPersons(t, path, demo[0], demo[1])

	fake := telegramtest.New(testToken)
	defer fake.Close()
	logs, stop := startServe(t, map[string]string{"RECORDS_DB": path, "TELEGRAM_BOT_TOKEN": testToken,
		"TELEGRAM_API_URL": fake.URL, "LISTEN_ADDR": "127.0.0.1:0", "SHEBAO_KEYS": testKeys,
		"RECORDS_POLL_INTERVAL": "100ms", "DEBUG_ADDR": "127.0.0.1:0"})
	listenAddr(t, logs)
	debug := debugAddr(t, logs)

	if got := verifyIn(t, fake, 50, demo[1]); !strings.Contains(got, "验证成功") {
		t.Fatalf("verification on the first file:\n%s", got)
	}
	if got := verifyIn(t, fake, 60, demo[2]); strings.Contains(got, "验证成功") {
		t.Fatalf("verified someone the first file does not list:\n%s", got)
	}

	// An import adds a person: the new file is renamed into place and
	// served at the next poll.
	importPersons(t, path, demo[2])
	waitUntil(t, "the new file is reloaded", func() bool {
		return strings.Contains(logs.String(), `"msg":"records reloaded"`)
	})
	if !strings.Contains(logs.String(), `"persons":3,"previous_persons":2`) {
		t.Errorf("reload log does not say what changed:\n%s", logs.String())
	}
	if got := verifyIn(t, fake, 60, demo[2]); !strings.Contains(got, "验证成功") {
		t.Fatalf("the person the new file added cannot verify:\n%s", got)
	}

	// Mistakes: a file listing one person instead of three, and a damaged
	// one, each renamed over the served file.
	small := filepath.Join(t.TempDir(), "small.db")
	importPersons(t, small, demo[0])
	if err := os.Rename(small, path); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the shrunken file is refused", func() bool {
		return strings.Contains(logs.String(), "far fewer persons")
	})
	damaged := filepath.Join(dir, "damaged.tmp")
	os.WriteFile(damaged, append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xa5}, 64<<10)...), 0o600)
	if err := os.Rename(damaged, path); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the damaged file is refused", func() bool {
		return strings.Count(logs.String(), `"msg":"new records file refused; still serving the previous one"`) == 2
	})
	if !strings.Contains(logs.String(), "good copy") {
		t.Errorf("the refusal of a damaged file gives no hint:\n%s", logs.String())
	}
	// Both verified users still see their own records from the file in
	// service: nobody was told they are not on record.
	for chat, p := range map[int64]records.DemoPerson{50: demo[1], 60: demo[2]} {
		got := chatSays(t, fake, chat, "缴费记录", func() { fake.PushText(chat, "/records") })
		if !strings.Contains(got, records.MaskID(p.ID)) || strings.Contains(got, "找不到") {
			t.Errorf("chat %d after the refused files:\n%s", chat, got)
		}
	}
	body := get(t, "http://"+debug+"/metrics")
	for _, want := range []string{`shebao_records_reloads_total{result="refused"} 2`, `shebao_records_reloads_total{result="reloaded"} 1`,
		"shebao_records_persons 3", `shebao_build_info{goversion="go`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The refused file is not tried again at every poll.
	time.Sleep(300 * time.Millisecond) // lets three polls pass; asserts their absence
	if n := strings.Count(logs.String(), `"msg":"new records file refused`); n != 2 {
		t.Errorf("%d refusals logged, want 2: a refused file is tried again only once it changes", n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertNoPersonalData(t, logs.String())
}

// With polling off, SIGHUP reloads.
func TestServeReloadsRecordsOnSIGHUP(t *testing.T) {
	demo := records.Demo()
	path := filepath.Join(t.TempDir(), "records.db")
	importPersons(t, path, demo[0])
	fake := telegramtest.New(testToken)
	defer fake.Close()
	logs, stop := startServe(t, map[string]string{"RECORDS_DB": path, "TELEGRAM_BOT_TOKEN": testToken,
		"TELEGRAM_API_URL": fake.URL, "LISTEN_ADDR": "127.0.0.1:0", "SHEBAO_KEYS": testKeys,
		"RECORDS_POLL_INTERVAL": "0"})
	listenAddr(t, logs)
	waitUntil(t, "the SIGHUP handler is in place", func() bool {
		return strings.Contains(logs.String(), "records are reloaded on SIGHUP")
	})
	importPersons(t, path, demo[1])
	if strings.Contains(logs.String(), `"msg":"records reloaded"`) {
		t.Fatal("reloaded without polling or SIGHUP")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "SIGHUP reloads the file", func() bool {
		return strings.Contains(logs.String(), `"msg":"records reloaded"`)
	})
	if got := verifyIn(t, fake, 70, demo[1]); !strings.Contains(got, "验证成功") {
		t.Errorf("the person the new file added cannot verify:\n%s", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRecordsPollConfig(t *testing.T) {
	c, err := loadConfig(env(map[string]string{}), false)
	if err != nil || c.RecordsPoll != defaultRecordsPoll {
		t.Errorf("default: %s, %v", c.RecordsPoll, err)
	}
	for v, want := range map[string]time.Duration{"0": 0, "1m": time.Minute, "250ms": 250 * time.Millisecond} {
		if c, err := loadConfig(env(map[string]string{"RECORDS_POLL_INTERVAL": v}), false); err != nil || c.RecordsPoll != want {
			t.Errorf("%s: %s, %v", v, c.RecordsPoll, err)
		}
	}
	for _, v := range []string{"1ms", "-1s", "often", "48h"} {
		if _, err := loadConfig(env(map[string]string{"RECORDS_POLL_INTERVAL": v}), false); err == nil || !strings.Contains(err.Error(), "RECORDS_POLL_INTERVAL") {
			t.Errorf("%s accepted: %v", v, err)
		}
	}
}

// turnProbe reloads the records in the middle of its turn, then looks up
// someone only the file it started with lists.
type turnProbe struct {
	db         *records.DB
	next, id   string
	found, ran bool
}

func (p *turnProbe) Handle(ctx context.Context, _ bot.Message) ([]bot.Reply, error) {
	p.ran = true
	if _, err := p.db.Reload(ctx, p.next, nil); err != nil {
		return nil, err
	}
	_, err := p.db.Person(ctx, p.id)
	p.found = err == nil
	return nil, nil
}

// What serve gives its channels holds each turn on one records file: a
// reload in the middle of a turn leaves the rest of it on the file it
// started with (Telegram, the web chat and WeChat all get this handler).
func TestTurnHandlerHoldsRecords(t *testing.T) {
	demo := records.Demo()
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.db"), filepath.Join(dir, "second.db")
	importPersons(t, first, demo[0], demo[1])
	importPersons(t, second, demo[1], demo[2])
	ctx := context.Background()
	db, err := records.Open(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	probe := &turnProbe{db: db, next: second, id: demo[0].ID}
	h := turnHandler(db, probe, newMetrics().latency)
	if _, err := h.Handle(ctx, bot.Message{Chat: "tg:1", User: "tg:1", Text: "/records"}); err != nil {
		t.Fatal(err)
	}
	if !probe.ran || !probe.found {
		t.Errorf("a turn saw the file reloaded in its middle: the person of the file it started with is gone (ran %v, found %v)", probe.ran, probe.found)
	}
	if _, err := db.Person(ctx, demo[0].ID); err == nil {
		t.Error("after the turn, the reloaded file should serve")
	}
}
