package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/sms"
)

func TestSMSConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	log := slog.New(slog.DiscardHandler)
	var out bytes.Buffer

	c, err := loadConfig(env(nil), false)
	if err != nil || c.SMSHourlyCap != bot.DefaultSMSHourlyCap {
		t.Fatalf("unset: cap %d, %v", c.SMSHourlyCap, err)
	}
	if _, ok := codeSender(c, log, &out).(*sms.Demo); !ok {
		t.Error("demo records: want the demo printer")
	}
	if s := codeSender(c, log, nil); s != nil {
		t.Errorf("demo records, nowhere to print: %T, want none", s)
	}
	c.RecordsDB = "/srv/records.db"
	if s := codeSender(c, log, &out); s != nil {
		t.Errorf("real records without SMS_WEBHOOK_URL: %T, want none (never the demo printer)", s)
	}

	secret := strings.Repeat("s", 32)
	if _, err := loadConfig(env(map[string]string{"SMS_WEBHOOK_URL": "http://127.0.0.1:9000/sms", "SMS_WEBHOOK_SECRET": secret}), false); err != nil {
		t.Errorf("http on loopback: %v", err)
	}
	c, err = loadConfig(env(map[string]string{"SMS_WEBHOOK_URL": "https://sms.example.cn/send", "SMS_WEBHOOK_SECRET": secret, "SMS_HOURLY_CAP": "50"}), false)
	if err != nil || c.SMSHourlyCap != 50 {
		t.Fatalf("webhook: %+v, %v", c, err)
	}
	c.RecordsDB = "/srv/records.db"
	q, ok := codeSender(c, log, &out).(*sms.Queue)
	if !ok {
		t.Fatalf("webhook sender: %T, want a queue in front of it", codeSender(c, log, &out))
	}
	if w, ok := q.Next.(*sms.Webhook); !ok || w.URL != "https://sms.example.cn/send" || string(w.Secret) != secret {
		t.Errorf("webhook sender: %#v", q.Next)
	}

	for _, bad := range []map[string]string{
		{"SMS_WEBHOOK_URL": "https://sms.example.cn/send"},
		{"SMS_WEBHOOK_URL": "https://sms.example.cn/send", "SMS_WEBHOOK_SECRET": "short"},
		{"SMS_WEBHOOK_URL": "ftp://x", "SMS_WEBHOOK_SECRET": secret},
		{"SMS_WEBHOOK_URL": "http://sms.example.cn/send", "SMS_WEBHOOK_SECRET": secret}, // phones in the clear
		{"SMS_WEBHOOK_SECRET": secret},
		{"SMS_HOURLY_CAP": "0"},
	} {
		if _, err := loadConfig(env(bad), false); err == nil || !strings.Contains(err.Error(), "SMS_") {
			t.Errorf("%v: %v, want an SMS_ error", bad, err)
		}
	}
}
