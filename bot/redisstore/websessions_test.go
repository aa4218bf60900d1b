package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/web"
)

var _ web.Sessions = (*Store)(nil)

const webDomain = "websession" // any domain: the adapter picks its own

func TestWebSessionLifecycle(t *testing.T) {
	s, st, _ := testStore(t)
	ctx := t.Context()
	ttl := 3 * st.Unit
	tag := s.keys.Name(webDomain, "token-1")
	id := bot.ID(bot.ChannelWeb, tag)

	if got, err := s.TouchWebSession(ctx, []string{tag}, ttl); err != nil || got != "" {
		t.Fatalf("a session never created: %q, %v", got, err)
	}
	if err := s.CreateWebSession(ctx, tag, id, ttl); err != nil {
		t.Fatalf("CreateWebSession: %v", err)
	}
	// Touching it keeps it alive past its first TTL: the TTL slides.
	for range 3 {
		st.FastForward(2 * st.Unit)
		got, err := s.TouchWebSession(ctx, []string{tag}, ttl)
		if err != nil || got != id {
			t.Fatalf("TouchWebSession = %q, %v; want %q", got, err, id)
		}
	}
	// Left alone for longer than the TTL, it expires.
	st.FastForward(ttl + st.Unit)
	if got, err := s.TouchWebSession(ctx, []string{tag}, ttl); err != nil || got != "" {
		t.Fatalf("an idle session outlived its TTL: %q, %v", got, err)
	}

	if err := s.CreateWebSession(ctx, tag, id, ttl); err != nil {
		t.Fatalf("CreateWebSession: %v", err)
	}
	if err := s.EndWebSession(ctx, []string{tag}); err != nil {
		t.Fatalf("EndWebSession: %v", err)
	}
	if got, err := s.TouchWebSession(ctx, []string{tag}, ttl); err != nil || got != "" {
		t.Fatalf("an ended session is still there: %q, %v", got, err)
	}
}

// The session's key holds a tag of the token and the identity, never the
// token.
func TestWebSessionStoresNoToken(t *testing.T) {
	sv := newServer(t)
	s := sv.open(t, Options{Keys: testKeys})
	token := "Zm9vYmFyYmF6cXV4cXV1eA" // what the adapter puts in the cookie
	tag := s.keys.Name(webDomain, token)
	if err := s.CreateWebSession(t.Context(), tag, bot.ID(bot.ChannelWeb, tag), time.Hour); err != nil {
		t.Fatalf("CreateWebSession: %v", err)
	}
	for k, v := range sv.dump(t) {
		if strings.Contains(k, token) || strings.Contains(v, token) {
			t.Errorf("key %s = %q holds the token", k, v)
		}
	}
}

// A key rotation does not log anyone out: a session made under the old key
// is found by its old tag, moved to the new one, and keeps its identity.
func TestWebSessionSurvivesRotation(t *testing.T) {
	sv := newServer(t)
	old := sv.open(t, Options{Keys: testKeys})
	ctx := t.Context()
	token := "dG9rZW4tb2YtYS1zZXNzaW9u"
	oldTag := testKeys.Name(webDomain, token)
	id := bot.ID(bot.ChannelWeb, oldTag)
	if err := old.CreateWebSession(ctx, oldTag, id, time.Hour); err != nil {
		t.Fatalf("CreateWebSession: %v", err)
	}

	entry, err := keyring.NewEntry("k2")
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustRing(entry + ",k1:" + strings.Repeat("A", 43) + "=")
	s := sv.open(t, Options{Keys: rotated})
	tags := rotated.Names(webDomain, token)
	if tags[0] == oldTag || tags[1] != oldTag {
		t.Fatalf("tags under the new ring: %v; want the old tag second", tags)
	}
	got, err := s.TouchWebSession(ctx, tags, time.Hour)
	if err != nil || got != id {
		t.Fatalf("after rotation TouchWebSession = %q, %v; want %q", got, err, id)
	}
	// Now under the new tag alone: the old key can go.
	got, err = s.TouchWebSession(ctx, tags[:1], time.Hour)
	if err != nil || got != id {
		t.Fatalf("under the current tag alone = %q, %v; want %q", got, err, id)
	}
	if n := sv.rdb.Exists(ctx, s.webSessionKey(oldTag)).Val(); n != 0 {
		t.Errorf("the session is still under the old tag too")
	}
}

// A store written by the release before web sessions (its own write path)
// takes web sessions beside its data, and nothing of that data changes.
func TestWebSessionsBesideAnExistingStore(t *testing.T) {
	sv := newServer(t)
	s := sv.open(t, Options{Keys: testKeys})
	ctx := t.Context()
	if err := s.Save(ctx, tg(7), tg(7), bot.State{Lang: "en"}, bot.PartLang); err != nil {
		t.Fatalf("Save: %v", err)
	}
	before := sv.dump(t)
	tag := testKeys.Name(webDomain, "t")
	if err := s.CreateWebSession(ctx, tag, bot.ID(bot.ChannelWeb, tag), time.Hour); err != nil {
		t.Fatalf("CreateWebSession: %v", err)
	}
	if err := s.Save(ctx, bot.ID(bot.ChannelWeb, tag), bot.ID(bot.ChannelWeb, tag), bot.State{Lang: "zh"}, bot.PartLang); err != nil {
		t.Fatalf("Save web user: %v", err)
	}
	after := sv.dump(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("key %s changed: %q → %q", k, v, after[k])
		}
	}
	reopened := sv.open(t, Options{Keys: testKeys})
	if st, err := reopened.Load(ctx, tg(7), tg(7)); err != nil || st.Lang != "en" {
		t.Errorf("Telegram user after reopening: %+v, %v", st, err)
	}
	if got, err := reopened.TouchWebSession(ctx, []string{tag}, time.Hour); err != nil || got == "" {
		t.Errorf("web session after reopening: %q, %v", got, err)
	}
}

func TestWebSessionRedisDown(t *testing.T) {
	s, _, mr := testStore(t)
	if mr == nil {
		t.Skip("needs miniredis to stop the server")
	}
	mr.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.TouchWebSession(ctx, []string{"x"}, time.Hour); !errors.Is(err, bot.ErrUnavailable) {
		t.Errorf("TouchWebSession with Redis down: %v, want ErrUnavailable", err)
	}
	if err := s.CreateWebSession(ctx, "x", "web:x", time.Hour); !errors.Is(err, bot.ErrUnavailable) {
		t.Errorf("CreateWebSession with Redis down: %v, want ErrUnavailable", err)
	}
}
