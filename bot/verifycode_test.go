package bot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/sms"
	"github.com/shebao/shebao/faq"
	"github.com/shebao/shebao/records"
)

// smsBox is a fake SMS gateway: it keeps what was sent, or fails.
type smsBox struct {
	mu   sync.Mutex
	sent []sms.Message
	fail error
}

func (b *smsBox) Send(ctx context.Context, m sms.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	b.sent = append(b.sent, m)
	return nil
}

func (b *smsBox) all() []sms.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]sms.Message(nil), b.sent...)
}

// codeEnv is an engine whose users are on the web chat, with the demo
// records, an SMS box and a clock the test moves.
type codeEnv struct {
	t     *testing.T
	e     *bot.Engine
	store *memStore
	box   *smsBox
	now   time.Time
}

func newCodeEnv(t *testing.T, tweak func(*bot.Config)) *codeEnv {
	t.Helper()
	f, err := faq.New(faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := records.OpenDemo(context.Background(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	env := &codeEnv{t: t, store: newMemStore(), box: &smsBox{}, now: testNow}
	cfg := bot.Config{Sessions: env.store, Attempts: env.store, Reminders: env.store, FAQ: f, Records: db,
		SMS: env.box, Keys: testKeys, Now: func() time.Time { return env.now }}
	if tweak != nil {
		tweak(&cfg)
	}
	env.e = bot.New(cfg)
	return env
}

// say sends text (or, when it starts with "[", button data) as the web
// user and returns the replies as plain text.
func (c *codeEnv) say(user, in string) (string, []bot.Reply) {
	c.t.Helper()
	m := bot.Message{Chat: user, User: user, Text: in, Time: c.now, Remote: "203.0.113.7"}
	if strings.HasPrefix(in, "[") {
		m.Text, m.Callback = "", strings.Trim(in, "[]")
	}
	replies, err := c.e.Handle(context.Background(), m)
	if err != nil {
		c.t.Fatalf("%q: %v", in, err)
	}
	var texts []string
	for _, r := range replies {
		if r.AskContact != "" {
			c.t.Errorf("%q: a web user was asked to share a contact", in)
		}
		texts = append(texts, bot.PlainText(r))
	}
	return strings.Join(texts, "\n"), replies
}

func demoPerson(t *testing.T, i int) records.Person {
	t.Helper()
	return records.Demo()[i].Person
}

// madeUpID completes 17 digits with their check character: a valid ID
// number of no one on record.
func madeUpID(t *testing.T, body string) string {
	t.Helper()
	for _, c := range "0123456789X" {
		if id, err := records.CheckID(body + string(c)); err == nil {
			return id
		}
	}
	t.Fatalf("no check character makes %s valid", body)
	return ""
}

func hasCodeButton(replies []bot.Reply) bool {
	for _, r := range replies {
		for _, row := range r.Buttons {
			for _, b := range row {
				if b.Kind == bot.Code {
					return true
				}
			}
		}
	}
	return false
}

func TestVerifyByCode(t *testing.T) {
	c := newCodeEnv(t, nil)
	web := bot.ID(bot.ChannelWeb, "s1")
	p := demoPerson(t, 0)
	if out, _ := c.say(web, "/verify"); !strings.Contains(out, "短信验证码") {
		t.Fatalf("/verify on the web does not announce a text-message code:\n%s", out)
	}
	out, replies := c.say(web, p.ID)
	if !strings.Contains(out, records.MaskID(p.ID)) || strings.Contains(out, p.ID) {
		t.Errorf("ID not shown masked:\n%s", out)
	}
	if !hasCodeButton(replies) {
		t.Error("no button to enter the code")
	}
	sent := c.box.all()
	if len(sent) != 1 || sent[0].Phone != p.Phone || len(sent[0].Code) != 6 || sent[0].TTL != 5*time.Minute {
		t.Fatalf("sent %+v, want one 6-digit code to the phone on record", sent)
	}
	code := sent[0].Code
	// The code is kept only as a keyed tag.
	for _, v := range c.store.dialog[web].Data {
		if strings.Contains(v, code) || strings.Contains(v, p.Phone) {
			t.Errorf("dialog keeps %q, which holds the code or the phone", v)
		}
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if out, _ := c.say(web, wrong); !strings.Contains(out, "验证码不正确") || !strings.Contains(out, "2次") {
		t.Errorf("wrong code:\n%s", out)
	}
	if out, _ := c.say(web, "12345"); !strings.Contains(out, "6位数字") {
		t.Errorf("five digits:\n%s", out)
	}
	// Full-width digits from a Chinese input method count.
	fw := strings.Map(func(r rune) rune { return r - '0' + '０' }, code)
	if out, _ := c.say(web, fw); !strings.Contains(out, "验证成功") {
		t.Fatalf("right code (full width) not accepted:\n%s", out)
	}
	if out, _ := c.say(web, "/records"); !strings.Contains(out, records.MaskID(p.ID)) || strings.Contains(out, p.ID) {
		t.Errorf("records after verification:\n%s", out)
	}
}

// An ID number not on record gets the same reply, and no code works.
func TestVerifyByCodeUnknownIDLooksTheSame(t *testing.T) {
	c := newCodeEnv(t, nil)
	known, unknown := demoPerson(t, 1).ID, "11010519491231002X"
	if _, err := records.CheckID(unknown); err != nil {
		t.Fatalf("test ID invalid: %v", err)
	}
	c.say(bot.ID(bot.ChannelWeb, "a"), "/verify")
	outKnown, _ := c.say(bot.ID(bot.ChannelWeb, "a"), known)
	c.say(bot.ID(bot.ChannelWeb, "b"), "/verify")
	outUnknown, _ := c.say(bot.ID(bot.ChannelWeb, "b"), unknown)
	if strings.ReplaceAll(outKnown, records.MaskID(known), "ID") != strings.ReplaceAll(outUnknown, records.MaskID(unknown), "ID") {
		t.Errorf("replies differ:\n%s\n---\n%s", outKnown, outUnknown)
	}
	if n := len(c.box.all()); n != 1 {
		t.Errorf("%d texts sent, want 1 (none for the unknown number)", n)
	}
	for _, guess := range []string{"000000", "123456", "999999"} {
		if out, _ := c.say(bot.ID(bot.ChannelWeb, "b"), guess); strings.Contains(out, "验证成功") {
			t.Fatalf("guess %s verified an unknown number", guess)
		}
	}
}

func TestVerifyByCodeExpiresAndResends(t *testing.T) {
	c := newCodeEnv(t, nil)
	web := bot.ID(bot.ChannelWeb, "s")
	p := demoPerson(t, 2)
	c.say(web, "/verify")
	c.say(web, p.ID)
	old := c.box.all()[0].Code
	// A second code at once is refused: one ID number, one text a minute.
	if out, _ := c.say(web, "[verify:resend]"); !strings.Contains(out, "发送太频繁") {
		t.Errorf("immediate resend:\n%s", out)
	}
	c.say(web, "/verify")
	c.say(web, p.ID) // refused again, the dialog ended; start over later
	c.now = c.now.Add(6 * time.Minute)
	c.say(web, "/verify")
	c.say(web, p.ID)
	sent := c.box.all()
	if len(sent) != 2 {
		t.Fatalf("%d texts, want 2", len(sent))
	}
	c.now = c.now.Add(5 * time.Minute)
	if out, _ := c.say(web, sent[1].Code); !strings.Contains(out, "已过期") {
		t.Errorf("code after 5 minutes:\n%s", out)
	}
	c.now = c.now.Add(5 * time.Minute)
	if out, _ := c.say(web, "[verify:resend]"); !strings.Contains(out, "验证码已通过短信") {
		t.Fatalf("resend after expiry:\n%s", out)
	}
	sent = c.box.all()
	if len(sent) != 3 {
		t.Fatalf("%d texts, want 3", len(sent))
	}
	if sent[2].Code != old {
		if out, _ := c.say(web, old); strings.Contains(out, "验证成功") {
			t.Error("an earlier code still works after a new one was sent")
		}
	}
	if out, _ := c.say(web, sent[2].Code); !strings.Contains(out, "验证成功") {
		t.Errorf("new code:\n%s", out)
	}
}

func TestVerifyByCodeWrongCodesVoidIt(t *testing.T) {
	c := newCodeEnv(t, nil)
	web := bot.ID(bot.ChannelWeb, "s")
	p := demoPerson(t, 3)
	c.say(web, "/verify")
	c.say(web, p.ID)
	code := c.box.all()[0].Code
	var last string
	for _, g := range []string{"000001", "000002", "000003"} {
		if g == code {
			t.Skip("the random code is one of the guesses")
		}
		last, _ = c.say(web, g)
	}
	if !strings.Contains(last, "暂停") && !strings.Contains(last, "作废") {
		t.Errorf("third wrong code:\n%s", last)
	}
	if out, _ := c.say(web, code); strings.Contains(out, "验证成功") {
		t.Error("the right code works after three wrong ones")
	}
}

func TestVerifyByCodeSendLimits(t *testing.T) {
	c := newCodeEnv(t, func(cfg *bot.Config) { cfg.SMSHourlyCap = 3 })
	people := records.Demo()
	// Made-up numbers do not spend the hourly cap.
	for i := range 5 {
		u := bot.ID(bot.ChannelWeb, "fake"+string(rune('a'+i)))
		c.say(u, "/verify")
		c.say(u, madeUpID(t, fmt.Sprintf("11010519491231%03d", i)))
	}
	// Three sessions, three people: the cap of 3 is reached.
	var first string
	for i := range 3 {
		u := bot.ID(bot.ChannelWeb, "u"+string(rune('a'+i)))
		c.say(u, "/verify")
		out, _ := c.say(u, people[i].Person.ID)
		if i == 0 {
			first = strings.ReplaceAll(out, records.MaskID(people[i].Person.ID), "ID")
		}
	}
	if n := len(c.box.all()); n != 3 {
		t.Fatalf("%d texts sent, want 3", n)
	}
	// A fourth within the hour gets no text, and the same reply: the cap
	// must not tell who is on record.
	u := bot.ID(bot.ChannelWeb, "ud")
	c.say(u, "/verify")
	out, _ := c.say(u, people[3].Person.ID)
	if got := strings.ReplaceAll(out, records.MaskID(people[3].Person.ID), "ID"); got != first {
		t.Errorf("fourth code within the hour:\n%s\nwant the usual reply:\n%s", out, first)
	}
	if n := len(c.box.all()); n != 3 {
		t.Errorf("%d texts sent, want 3", n)
	}
	c.now = c.now.Add(61 * time.Minute)
	c.say(u, "[verify:resend]")
	if n := len(c.box.all()); n != 4 {
		t.Errorf("an hour after the last text: %d sent, want 4", n)
	}

	// One session cannot fan out over many ID numbers.
	c2 := newCodeEnv(t, nil)
	s := bot.ID(bot.ChannelWeb, "one")
	for i := range 5 {
		c2.say(s, "/verify")
		c2.say(s, "[verify:restart]")
		c2.say(s, people[i].Person.ID)
		c2.now = c2.now.Add(time.Minute)
	}
	if n := len(c2.box.all()); n != 3 {
		t.Errorf("one session sent %d texts in 5 minutes, want 3", n)
	}
}

// A gateway that fails changes nothing the user sees (else it would tell
// who is on record), and the sends stay charged.
func TestVerifyByCodeSendFailureLooksTheSame(t *testing.T) {
	c := newCodeEnv(t, nil)
	known, unknown := demoPerson(t, 4).ID, "11010519491231002X"
	c.box.fail = errors.New("gateway down")
	var outs []string
	for i, id := range []string{known, unknown} {
		u := bot.ID(bot.ChannelWeb, fmt.Sprint("s", i))
		c.say(u, "/verify")
		out, _ := c.say(u, id)
		outs = append(outs, strings.ReplaceAll(out, records.MaskID(id), "ID"))
	}
	if outs[0] != outs[1] {
		t.Errorf("a failing gateway shows who is on record:\n%s\n---\n%s", outs[0], outs[1])
	}
	c.box.fail = nil
	web := bot.ID(bot.ChannelWeb, "s0")
	if out, _ := c.say(web, "[verify:resend]"); !strings.Contains(out, "发送太频繁") || !strings.Contains(out, "仍然有效") {
		t.Errorf("resend at once after a failed send (still charged):\n%s", out)
	}
	c.now = c.now.Add(2 * time.Minute)
	c.say(web, "[verify:resend]")
	sent := c.box.all()
	if len(sent) != 1 {
		t.Fatalf("%d texts after the gateway recovered, want 1", len(sent))
	}
	if out, _ := c.say(web, "您的验证码是 "+sent[0].Code+"，5 分钟内有效"); !strings.Contains(out, "验证成功") {
		t.Errorf("the pasted text message was not taken as the code:\n%s", out)
	}
}

// /verify while a code is on its way keeps it; the first code still
// works after a refused resend.
func TestVerifyByCodeKeepsThePendingCode(t *testing.T) {
	c := newCodeEnv(t, nil)
	web := bot.ID(bot.ChannelWeb, "s")
	p := demoPerson(t, 1)
	c.say(web, "/verify")
	c.say(web, p.ID)
	code := c.box.all()[0].Code
	c.now = c.now.Add(30 * time.Second)
	if out, _ := c.say(web, "[verify:resend]"); !strings.Contains(out, "仍然有效") {
		t.Errorf("resend within the minute:\n%s", out)
	}
	if out, _ := c.say(web, "/verify"); !strings.Contains(out, "验证码已经发出") {
		t.Errorf("/verify while a code is on its way:\n%s", out)
	}
	if out, _ := c.say(web, code); !strings.Contains(out, "验证成功") {
		t.Errorf("the first code after a refused resend and /verify:\n%s", out)
	}
}

func TestVerifyWithoutSMS(t *testing.T) {
	c := newCodeEnv(t, func(cfg *bot.Config) { cfg.SMS = nil })
	if out, _ := c.say(bot.ID(bot.ChannelWeb, "s"), "/verify"); !strings.Contains(out, "尚未开通短信") {
		t.Errorf("/verify without SMS:\n%s", out)
	}
	// Telegram keeps the contact and needs no SMS.
	replies, err := c.e.Handle(context.Background(), bot.Message{Chat: tg(5), User: tg(5), Text: "/verify", Time: c.now})
	if err != nil || len(replies) == 0 || strings.Contains(bot.PlainText(replies[0]), "短信") {
		t.Errorf("Telegram /verify: %v %v", replies, err)
	}
}

// The web chat cannot write first: no reminder offer after verifying, and
// /remind says so and links to where reminders work.
func TestRemindOnAChannelThatCannotPush(t *testing.T) {
	c := newCodeEnv(t, func(cfg *bot.Config) {
		cfg.PushLinks = func() []bot.PushLink {
			return []bot.PushLink{{Channel: bot.ChannelTelegram, URL: "https://t.me/ShebaoBot?start="}}
		}
	})
	web := bot.ID(bot.ChannelWeb, "s")
	p := demoPerson(t, 4)
	c.say(web, "/verify")
	c.say(web, p.ID)
	out, replies := c.say(web, c.box.all()[0].Code)
	if !strings.Contains(out, "验证成功") {
		t.Fatalf("verify: %s", out)
	}
	for _, r := range replies {
		for _, row := range r.Buttons {
			for _, b := range row {
				if strings.HasPrefix(b.Data, "remind:") {
					t.Errorf("reminders offered on the web: %q", b.Text)
				}
			}
		}
	}
	for _, in := range []string{"/remind", "[remind:on]", "[remind:evening]"} {
		out, replies := c.say(web, in)
		if !strings.Contains(out, "无法开启缴费提醒") {
			t.Errorf("%s on the web:\n%s", in, out)
		}
		if len(replies) != 1 || len(replies[0].Buttons) != 1 || replies[0].Buttons[0][0].Kind != bot.URL ||
			replies[0].Buttons[0][0].Data != "https://t.me/ShebaoBot?start=remind" {
			t.Errorf("%s: buttons %+v, want a link to /remind on Telegram", in, replies[0].Buttons)
		}
		if _, on, _ := c.store.Reminder(context.Background(), web, web); on {
			t.Fatalf("%s turned reminders on for a web session", in)
		}
	}
	// Turning them off is always allowed.
	if out, _ := c.say(web, "[remind:off]"); !strings.Contains(out, "已关闭") {
		t.Errorf("remind:off: %s", out)
	}
}
