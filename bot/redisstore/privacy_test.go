package redisstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/reminder"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// flow runs the engine and a reminder pass over a store as serve does:
// every message claimed through the coordinator, then handled.
type flow struct {
	t      *testing.T
	s      *Store
	e      *bot.Engine
	db     *records.DB
	now    time.Time
	update int64
}

// flowNow is a Thursday morning in Shanghai, in a reminder slot.
var flowNow = time.Date(2026, 11, 26, 10, 0, 0, 0, records.Shanghai)

func newFlow(t *testing.T, s *Store) *flow {
	t.Helper()
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := records.OpenDemo(context.Background(), flowNow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fl := &flow{t: t, s: s, db: db, now: flowNow}
	fl.e = bot.New(bot.Config{Sessions: s, Attempts: s, Reminders: s, FAQ: f, Records: db, Keys: s.Keys(),
		Now: func() time.Time { return fl.now }})
	return fl
}

// send handles one message of user (in their private chat): text, a
// button ("[data]") or a contact ("{phone}").
func (fl *flow) send(user int64, in string) string {
	fl.t.Helper()
	m := bot.Message{Chat: tg(user), User: tg(user), LanguageCode: "zh", Time: fl.now}
	switch {
	case strings.HasPrefix(in, "["):
		m.Callback = strings.Trim(in, "[]")
	case strings.HasPrefix(in, "{"):
		m.Contact = &bot.Contact{User: tg(user), Phone: strings.Trim(in, "{}")}
	default:
		m.Text = in
	}
	fl.update++
	ctx := context.Background()
	done, dup, err := fl.s.Begin(ctx, tg(user), fl.update)
	if err != nil || dup {
		fl.t.Fatalf("Begin: dup %v, %v", dup, err)
	}
	replies, err := fl.e.Handle(ctx, m)
	done(err == nil)
	if err != nil {
		fl.t.Fatalf("Handle(%q): %v", in, err)
	}
	var out []string
	for _, r := range replies {
		out = append(out, bot.PlainText(r))
	}
	return strings.Join(out, "\n")
}

type sentTo struct {
	mu    sync.Mutex
	chats []int64
}

func (s *sentTo) Send(_ context.Context, chatID string, _ []bot.Reply) error {
	chat := untg(chatID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chats = append(s.chats, chat)
	return nil
}

// The users of the flow.
const (
	flowVerified = 7 // verified as demo[1] (a gap about to leave its window: reminded), reminders on, English
	flowPending  = 8 // typed demo[2]'s number, the contact is next
	flowFailed   = 9 // shared a wrong phone for demo[3]
)

// run verifies a user, opts them in to reminders, runs a pass that
// reminds them, leaves another user mid-verify and a third after a
// failed attempt, and holds an update in flight that carries an ID number
// and a phone.
func (fl *flow) run() {
	fl.t.Helper()
	demo := records.Demo()
	fl.send(flowVerified, "/verify")
	fl.send(flowVerified, demo[1].ID)
	if got := fl.send(flowVerified, "{"+demo[1].Phone+"}"); !strings.Contains(got, "验证成功") {
		fl.t.Fatalf("verification: %q", got)
	}
	if got := fl.send(flowVerified, "[remind:on]"); !strings.Contains(got, "已开启") {
		fl.t.Fatalf("opt-in: %q", got)
	}
	fl.send(flowVerified, "[lang:en]")
	if got := fl.send(flowVerified, "/records"); !strings.Contains(got, "Contributions") {
		fl.t.Fatalf("records: %q", got)
	}
	fl.send(flowPending, "/verify")
	fl.send(flowPending, demo[2].ID)
	fl.send(flowFailed, "/verify")
	fl.send(flowFailed, demo[3].ID)
	if got := fl.send(flowFailed, "{13800000000}"); !strings.Contains(got, "不匹配") {
		fl.t.Fatalf("failed attempt: %q", got)
	}
	snd := &sentTo{}
	sum, err := reminder.New(reminder.Config{Store: fl.s, Records: fl.db, Sender: snd, Keys: fl.s.Keys(),
		Now: func() time.Time { return fl.now }, Sleep: func(context.Context, time.Duration) error { return nil }}).Pass(context.Background(), false)
	if err != nil || !slices.Contains(snd.chats, flowVerified) {
		fl.t.Fatalf("reminder pass: %+v, sent to %v, %v", sum, snd.chats, err)
	}
	raw := []byte(`{"update_id":9000,"message":{"from":{"id":9},"chat":{"id":9},"contact":{"phone_number":"` +
		demo[3].Phone + `","user_id":9},"text":"` + demo[3].ID + `"}}`)
	if err := fl.s.HoldUpdates(context.Background(), time.Now(), map[int64][]byte{9000: raw}); err != nil {
		fl.t.Fatal(err)
	}
}

// everyNumber is each demo ID number and phone, and the previous release's
// hashes of them.
func everyNumber() []string {
	var out []string
	for _, p := range records.Demo() {
		out = append(out, p.ID, p.Phone, legacyPersonHash(p.ID), legacyAttemptHash("id:"+p.ID))
	}
	return out
}

// The done criterion of issue 12: a dump of every key and every value after
// verification and opt-in (and a reminder sent, a dialog mid-verify, a
// failed attempt and an update in flight) holds no ID number and no phone.
func TestDumpHoldsNoIDNumberOrPhone(t *testing.T) {
	sv := newServer(t)
	s := sv.open(t, Options{})
	fl := newFlow(t, s)
	fl.run()
	// A webhook channel's state (bot/wechat): a message held in flight,
	// replies queued and a value, each carrying an ID number and a phone.
	ctx := context.Background()
	demo := records.Demo()
	secret := demo[4].ID + " " + demo[4].Phone
	if ok, err := s.HoldMessage(ctx, "wx", "oPriv/1", time.Now(), []byte(`{"text":"`+secret+`"}`)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := s.Queue(ctx, "wx:oPriv", 1, [][]byte{[]byte(secret)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetValue(ctx, "wx:menu:oPriv", secret, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	keys := sv.keys(t)
	for _, want := range []string{":link", ":remind", ":dialog", ":lang", "{t:", "{p:", "{held}", "{remind}:slot:", "{held}:wx", ":out", "{v:wx:menu:"} {
		if !slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, want) }) {
			t.Errorf("no %s key: the flow did not store what it should have\n%s", want, strings.Join(keys, "\n"))
		}
	}
	sv.assertNoPersonalData(t, everyNumber()...)
	// And what is sealed opens, with the key, to what the engine wrote.
	v, err := s.rdb.Get(context.Background(), s.userKey(tg(flowVerified), tg(flowVerified), linkKey)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := s.keys.Open(s.ad(s.userKey(tg(flowVerified), tg(flowVerified), linkKey)), v)
	if err != nil || !strings.Contains(string(plain), demo[1].ID) || strings.Contains(string(plain), demo[1].Phone) {
		t.Errorf("the sealed link opens to %q, %v; want the ID number and a phone tag, not the phone", plain, err)
	}
}

// /forget deletes everything about the user and the person: the keys are
// listed before and after, and every key left is accounted for.
func TestForgetLeavesNothingAboutUserOrPerson(t *testing.T) {
	sv := newServer(t)
	s := sv.open(t, Options{})
	fl := newFlow(t, s)
	fl.run()
	person := records.Demo()[1].ID
	before := sv.keys(t)
	t.Logf("keys before /forget:\n%s", strings.Join(before, "\n"))
	if got := fl.send(flowVerified, "/forget"); !strings.Contains(got, "Delete") {
		t.Fatalf("/forget: %q", got)
	}
	if got := fl.send(flowVerified, "[forget:yes]"); !strings.Contains(got, "Deleted") {
		t.Fatalf("forget:yes: %q", got)
	}
	after := sv.keys(t)
	t.Logf("keys after /forget:\n%s", strings.Join(after, "\n"))

	// What names the user or the person, under every key of the ring.
	about := []string{"{u:7}", "{c:7}:blocked", "{c:7}:q", "{c:7}:lock"}
	for _, tag := range append(append(s.personTags(person), s.throttleTags("user:7")...), s.throttleTags("id:"+person)...) {
		about = append(about, tag)
	}
	had := 0
	for _, k := range before {
		if strings.Contains(k, "{u:7}") || strings.Contains(k, "{p:"+s.personTags(person)[0]) {
			had++
		}
	}
	if had < 5 {
		t.Fatalf("before /forget only %d keys were about the user or the person", had)
	}
	for _, k := range after {
		rest := strings.TrimPrefix(k, sv.prefix+":")
		for _, a := range about {
			if strings.Contains(rest, a) {
				t.Errorf("left after /forget: %s", k)
			}
		}
		switch {
		case strings.HasPrefix(rest, "{u:8}"), strings.HasPrefix(rest, "{u:9}"), strings.HasPrefix(rest, "{c:8}"),
			strings.HasPrefix(rest, "{c:9}"), strings.HasPrefix(rest, "{held}"):
			// Other users'.
		case strings.HasPrefix(rest, "{t:"):
			// Throttles: user 7's success cleared the ID number's and
			// withdrew its own charge; these are user 9's (checked
			// above by tag).
		case rest == "{c:7}:done":
			// The dedupe marks of user 7's updates (update ids, 24 hours):
			// transport bookkeeping that keeps a redelivered update,
			// this /forget among them, from being answered twice.
		case strings.HasPrefix(rest, "{m:done:"), strings.HasPrefix(rest, "{meta}"), strings.HasPrefix(rest, "{remind}:lease"):
			// About no one.
		case strings.HasPrefix(rest, "{remind}:slot:"):
			if ok, _ := s.rdb.SIsMember(context.Background(), k, "7:7").Result(); ok {
				t.Errorf("slot index %s still lists user 7", k)
			}
		default:
			t.Errorf("unaccounted for after /forget: %s", k)
		}
	}
	// No sealed value left names the person either.
	for _, k := range after {
		if v, err := s.rdb.Get(context.Background(), k).Bytes(); err == nil && keyring.IsSealed(v) {
			if plain, _, err := s.keys.Open(s.ad(k), v); err == nil && strings.Contains(string(plain), person) {
				t.Errorf("%s still holds the person's ID number", k)
			}
		}
	}
	// The person's marks are gone: a new verification gets reminded again.
	if ok, _ := s.Marked(context.Background(), person, "day:"+flowNow.Format(time.DateOnly)); ok {
		t.Error("the person's reminded-today mark survived /forget")
	}
}
