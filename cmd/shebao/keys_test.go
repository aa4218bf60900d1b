package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/shebao/shebao/bot/keyring"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// testKeys is SHEBAO_KEYS in the tests: one fixed 32-byte key.
const testKeys = "t1:dGVzdC1rZXktZm9yLXNoZWJhby1jbWQtdGVzdHMhISE="

func mustKeys(t *testing.T) *keyring.Ring {
	t.Helper()
	r, err := keyring.Parse(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// SHEBAO_KEYS: required wherever the state outlives the process or holds
// real records, reported with the other configuration errors, and never
// printed.
func TestKeysConfiguration(t *testing.T) {
	mr := miniredis.RunT(t)
	const secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1uZXZlci1wcmludGVk"
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want []string
	}{
		{"serve with real records", []string{"serve"}, map[string]string{"RECORDS_DB": "/nonexistent/records.db", "LOG_LEVEL": "loud"},
			[]string{"SHEBAO_KEYS is required for serve with RECORDS_DB", "TELEGRAM_BOT_TOKEN", "LOG_LEVEL"}},
		{"serve with a shared redis", []string{"serve"}, map[string]string{"TELEGRAM_BOT_TOKEN": testToken, "REDIS_URL": "redis://" + mr.Addr()},
			[]string{"SHEBAO_KEYS is required with REDIS_URL"}},
		{"chat with a shared redis", []string{"chat"}, map[string]string{"REDIS_URL": "redis://" + mr.Addr()},
			[]string{"SHEBAO_KEYS is required with REDIS_URL"}},
		{"remind with a shared redis", []string{"remind", "--once", "--dry-run"}, map[string]string{"REDIS_URL": "redis://" + mr.Addr()},
			[]string{"SHEBAO_KEYS is required with REDIS_URL"}},
		{"a short key", []string{"serve"}, map[string]string{"TELEGRAM_BOT_TOKEN": testToken, "SHEBAO_KEYS": "k1:" + secret[:20], "WEBHOOK_URL": "ftp://x"},
			[]string{"SHEBAO_KEYS: entry 1 (id \"k1\"): the key must be 32 bytes", "WEBHOOK_URL"}},
		{"no id", []string{"chat"}, map[string]string{"SHEBAO_KEYS": secret},
			[]string{"SHEBAO_KEYS: entry 1: want id:base64key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, logs syncBuffer
			err := run(context.Background(), tc.args, env(tc.vars), strings.NewReader(""), &out, &logs)
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if all := err.Error() + out.String() + logs.String(); strings.Contains(all, secret[:20]) {
				t.Errorf("the key was printed: %s", all)
			}
		})
	}
}

// With the embedded defaults serve seals under a key made for the process,
// and says so.
func TestServeEmbeddedMakesAProcessKey(t *testing.T) {
	fake := telegramtest.New(testToken)
	defer fake.Close()
	logs, stop := startServe(t, map[string]string{"TELEGRAM_BOT_TOKEN": testToken, "TELEGRAM_API_URL": fake.URL, "LISTEN_ADDR": "127.0.0.1:0"})
	listenAddr(t, logs)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "SHEBAO_KEYS not set: state is sealed under a key generated for this process") {
		t.Errorf("the ephemeral key is not announced:\n%s", logs.String())
	}
}

// The keyring is not the bot token: a new token (another bot, or the old
// one revoked) keeps every verified user.
func TestTokenChangeKeepsUsers(t *testing.T) {
	mr := miniredis.RunT(t)
	vars := func(token, api string) map[string]string {
		return map[string]string{"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_URL": api, "LISTEN_ADDR": "127.0.0.1:0",
			"REDIS_URL": "redis://" + mr.Addr(), "SHEBAO_KEYS": testKeys}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fake := telegramtest.New(testToken)
	defer fake.Close()
	logs, stop := startServe(t, vars(testToken, fake.URL))
	listenAddr(t, logs)
	fake.PushText(50, "/verify")
	fake.PushText(50, "350102198501150037")
	fake.PushContact(50, "13900000033", 50)
	for {
		sent, err := fake.WaitSent(ctx, len(fake.Sent())+1)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(sent), "验证成功") {
			break
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	const newToken = "654321:NEW-token"
	fake2 := telegramtest.New(newToken)
	defer fake2.Close()
	logs, stop = startServe(t, vars(newToken, fake2.URL))
	listenAddr(t, logs)
	// Another bot numbers its updates on its own; the fake would start
	// where the first one did, and the dedupe marks of the first bot's
	// updates (24 hours) would swallow them.
	u := telegramtest.TextUpdate(50, "/balance")
	u.ID = 5000
	fake2.Push(u)
	sent, err := fake2.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sent[0].Text, "¥") {
		t.Errorf("after the token changed: %q, want the balance without verifying again", sent[0].Text)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
