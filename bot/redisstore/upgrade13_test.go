package redisstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shebao/shebao/bot"
)

// The fixture is a store as the release before channel-scoped identities
// (int64 chat and user ids) wrote it: a verified user of chat 42 with a
// language, an open dialog and reminders on, a reminder already sent, an ID
// number throttled by failures from chat 7, chat 7 blocked, an answered
// update. testdata/release-before-13.gen.go.txt is the test that wrote it,
// run on that release's tree.
type fixtureKey struct {
	Key    string            `json:"key"`
	Type   string            `json:"type"`
	PTTLms int64             `json:"pttl_ms"`
	String string            `json:"string"`
	Hash   map[string]string `json:"hash"`
	Set    []string          `json:"set"`
	ZSet   []redis.Z         `json:"zset"`
	List   []string          `json:"list"`
}

// restoreFixture writes the fixture's keys under sv's prefix.
func restoreFixture(t *testing.T, sv *server, path string) time.Time {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		At   time.Time    `json:"at"`
		Keys []fixtureKey `json:"keys"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	dec := func(s string) string {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ctx := context.Background()
	for _, k := range fx.Keys {
		key := sv.prefix + k.Key
		var err error
		switch k.Type {
		case "string":
			err = sv.rdb.Set(ctx, key, dec(k.String), 0).Err()
		case "hash":
			for f, v := range k.Hash {
				if err = sv.rdb.HSet(ctx, key, f, dec(v)).Err(); err != nil {
					break
				}
			}
		case "set":
			for _, v := range k.Set {
				if err = sv.rdb.SAdd(ctx, key, dec(v)).Err(); err != nil {
					break
				}
			}
		case "zset":
			for _, z := range k.ZSet {
				if err = sv.rdb.ZAdd(ctx, key, redis.Z{Score: z.Score, Member: dec(z.Member.(string))}).Err(); err != nil {
					break
				}
			}
		case "list":
			for _, v := range k.List {
				if err = sv.rdb.RPush(ctx, key, dec(v)).Err(); err != nil {
					break
				}
			}
		default:
			t.Fatalf("fixture key %s of type %s", k.Key, k.Type)
		}
		if err == nil && k.PTTLms > 0 {
			err = sv.rdb.PExpire(ctx, key, time.Duration(k.PTTLms)*time.Millisecond).Err()
		}
		if err != nil {
			t.Fatalf("restore %s: %v", k.Key, err)
		}
	}
	return fx.At
}

// TestUpgradeFromReleaseBefore13 opens a store the release before
// channel-scoped identities wrote and finds everything in it under the
// Telegram identities: nothing is lost and no migration is needed, because
// Telegram's keys keep their form.
func TestUpgradeFromReleaseBefore13(t *testing.T) {
	ctx := context.Background()
	sv := newServer(t)
	at := restoreFixture(t, sv, "testdata/release-before-13.json")
	s := sv.open(t, Options{})
	const person = "11010519491231002X"
	u42, u7 := tg(42), tg(7)

	st, err := s.Load(ctx, u42, u42)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lang != "en" || st.Link.PersonID != person || st.Link.PhoneTag != "ptag-1" ||
		!st.Link.Until.Equal(time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("verified link or language lost: %+v", st)
	}
	if st.Dialog.Name != "remind" || st.Dialog.Step != "slot" {
		t.Errorf("open dialog lost: %+v", st.Dialog)
	}

	r, ok, err := s.Reminder(ctx, u42, u42)
	if err != nil || !ok || r.Slot != bot.SlotEvening || r.PersonID != person || r.Lang != "en" {
		t.Errorf("reminder setting lost: %+v ok=%v err=%v", r, ok, err)
	}
	listed, _, err := s.ScanReminders(ctx, bot.SlotEvening, 0, 100)
	if err != nil || len(listed) != 1 || listed[0].Chat != u42 || listed[0].User != u42 || listed[0].PersonID != person {
		t.Errorf("the evening pass does not list the opt-in: %+v err=%v", listed, err)
	}

	if sent, err := s.Marked(ctx, person, "missed:2026-10"); err != nil || !sent {
		t.Errorf("sent-mark lost (the reminder would go out twice): %v %v", sent, err)
	}

	pol := bot.ThrottlePolicy{Free: 2, Delay: time.Hour, MaxDelay: 24 * time.Hour, Window: 24 * time.Hour}
	now := at.Add(time.Minute)
	for _, key := range []string{"id:" + person, "user:7"} {
		until, err := s.Throttled(ctx, []bot.Throttle{{Key: key, Policy: pol}}, now)
		if err != nil || !until.After(now) {
			t.Errorf("throttle %s lost: until %v err %v", key[:3], until, err)
		}
	}

	if blocked, err := s.Blocked(ctx, u7); err != nil || !blocked {
		t.Errorf("blocked mark lost: %v %v", blocked, err)
	}
	if _, dup, err := s.Begin(ctx, u42, 1001); err != nil || !dup {
		t.Errorf("an answered update would be answered again: dup=%v err=%v", dup, err)
	}

	// The same person turning reminders on in another chat (a WeChat
	// account) becomes their one reminder chat, although the old release
	// left the Telegram setting without a pointer: the next pass neither
	// lists nor keeps the Telegram one.
	wx := bot.ID(bot.ChannelWeChat, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
	if err := s.SetReminder(ctx, bot.ReminderSetting{Chat: wx, User: wx, Slot: bot.SlotMorning, PersonID: person,
		Until: r.Until, Lang: "zh"}); err != nil {
		t.Fatal(err)
	}
	if listed, _, err := s.ScanReminders(ctx, bot.SlotEvening, 0, 100); err != nil || len(listed) != 0 {
		t.Errorf("the person would be reminded in two chats: the evening pass lists %+v (err %v)", listed, err)
	}
	if _, ok, _ := s.Reminder(ctx, u42, u42); ok {
		t.Error("the old Telegram setting is still on after the person chose another chat")
	}
	if listed, _, err := s.ScanReminders(ctx, bot.SlotMorning, 0, 100); err != nil || len(listed) != 1 || listed[0].Chat != wx {
		t.Errorf("the chosen chat is not listed: %+v (err %v)", listed, err)
	}
}
