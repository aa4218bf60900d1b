package redisstore

import (
	"strings"
	"testing"
	"time"
)

func TestValues(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	if _, ok, err := s.Value(ctx, "wx:token"); ok || err != nil {
		t.Fatalf("Value of nothing = %v, %v", ok, err)
	}
	if ok, err := s.SetValue(ctx, "wx:token", "T1", time.Hour, true); !ok || err != nil {
		t.Fatalf("first SetValue onlyNew = %v, %v", ok, err)
	}
	if ok, err := s.SetValue(ctx, "wx:token", "T2", time.Hour, true); ok || err != nil {
		t.Fatalf("second SetValue onlyNew = %v, %v; want not stored", ok, err)
	}
	if v, ok, err := s.Value(ctx, "wx:token"); v != "T1" || !ok || err != nil {
		t.Fatalf("Value = %q, %v, %v; want T1", v, ok, err)
	}
	raw, _, _ := s.rawValue(ctx, "wx:token")
	if strings.Contains(string(raw), "T1") {
		t.Errorf("stored value is readable: %q", raw)
	}
	// Compare-and-delete: a stale token is not deleted, the current one is.
	if ok, err := s.DeleteValue(ctx, "wx:token", "T0"); ok || err != nil {
		t.Errorf("DeleteValue(stale) = %v, %v; want nothing deleted", ok, err)
	}
	if ok, err := s.DeleteValue(ctx, "wx:token", "T1"); !ok || err != nil {
		t.Errorf("DeleteValue(current) = %v, %v", ok, err)
	}
	if _, ok, _ := s.Value(ctx, "wx:token"); ok {
		t.Error("value still there after DeleteValue")
	}
	s.SetValue(ctx, "wx:x", "y", 0, false)
	if ok, err := s.DeleteValue(ctx, "wx:x", ""); !ok || err != nil {
		t.Errorf("DeleteValue(any) = %v, %v", ok, err)
	}
}

func TestInbox(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	at := time.UnixMilli(1_790_000_000_123)
	if ok, err := s.HoldMessage(ctx, "wx", "o1/7", at, []byte(`{"text":"医保断缴了还能补吗：a:b"}`)); !ok || err != nil {
		t.Fatalf("HoldMessage = %v, %v", ok, err)
	}
	if ok, err := s.HoldMessage(ctx, "wx", "o1/7", at, []byte(`{"text":"again"}`)); ok || err != nil {
		t.Fatalf("HoldMessage of a held message = %v, %v; want false", ok, err)
	}
	s.HoldMessage(ctx, "wx", "o2/9", at, []byte(`{}`))
	s.HoldMessage(ctx, "tgx", "o3/1", at, []byte(`{}`)) // another channel
	if err := s.ReleaseMessage(ctx, "wx", "o2/9"); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.HeldMessages(ctx, "wx", func(id string, a time.Time, raw []byte) {
		if !a.Equal(at) {
			t.Errorf("held at %v, want %v", a, at)
		}
		got = append(got, id+"="+string(raw))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != `o1/7={"text":"医保断缴了还能补吗：a:b"}` {
		t.Errorf("held = %q", got)
	}
}

func TestOutbox(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := t.Context()
	chat := "wx:oAbC"
	if ok, _ := s.Queued(ctx, chat, 5); ok {
		t.Fatal("queued before Queue")
	}
	if err := s.Queue(ctx, chat, 5, [][]byte{[]byte("one"), []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Queue(ctx, chat, 6, [][]byte{[]byte("three")}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Queued(ctx, chat, 5); !ok || err != nil {
		t.Fatalf("Queued = %v, %v", ok, err)
	}
	p, rest, err := s.PopPart(ctx, chat)
	if string(p) != "one" || rest != 2 || err != nil {
		t.Fatalf("PopPart = %q, %d, %v", p, rest, err)
	}
	if err := s.UnpopPart(ctx, chat, p); err != nil {
		t.Fatal(err)
	}
	var order []string
	for {
		p, _, err := s.PopPart(ctx, chat)
		if err != nil {
			t.Fatal(err)
		}
		if p == nil {
			break
		}
		order = append(order, string(p))
	}
	if strings.Join(order, ",") != "one,two,three" {
		t.Errorf("parts came out as %v", order)
	}
	s.Queue(ctx, chat, 7, [][]byte{[]byte("a"), []byte("b")})
	if n, err := s.DropParts(ctx, chat); n != 2 || err != nil {
		t.Errorf("DropParts = %d, %v", n, err)
	}

	now := time.Now()
	s.Park(ctx, "wx", chat, now.Add(-time.Second))
	s.Park(ctx, "wx", "wx:later", now.Add(time.Hour))
	chats, err := s.Parked(ctx, "wx", now, 10)
	if err != nil || len(chats) != 1 || chats[0] != chat {
		t.Fatalf("Parked = %v, %v", chats, err)
	}
	s.Unpark(ctx, "wx", chat)
	if chats, _ := s.Parked(ctx, "wx", now.Add(2*time.Hour), 10); len(chats) != 1 || chats[0] != "wx:later" {
		t.Errorf("Parked after Unpark = %v", chats)
	}
}
