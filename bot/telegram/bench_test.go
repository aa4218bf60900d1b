package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

func BenchmarkSplitHTML(b *testing.B) {
	text := strings.Repeat("<b>缴费基数</b> 按 &lt;上年度&gt; 社平工资的 60%–300% 确定 &amp; 每年调整。\n", 400)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		splitHTML(text, maxMessageLen)
	}
}

// BenchmarkWebhook measures one update through the webhook handler,
// including the sendMessage round trip to the fake Bot API over loopback.
func BenchmarkWebhook(b *testing.B) {
	fake := telegramtest.New(testToken)
	defer fake.Close()
	a, err := New(Options{Token: testToken, APIURL: fake.URL, WebhookURL: "https://x/", WebhookSecret: "s", Handler: &echoHandler{}, SendLimits: SendLimits{Off: true}})
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(withID(telegramtest.TextUpdate(5, "/start")))
	if err != nil {
		b.Fatal(err)
	}
	h := a.WebhookHandler()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			req.Header.Set("X-Telegram-Bot-Api-Secret-Token", "s")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("status %d", rec.Code)
			}
		}
	})
}

func withID(u models.Update) *models.Update {
	u.ID = 1
	return &u
}

// BenchmarkPollingFlood measures how long polling takes to work through
// 10,000 updates of one user, all but the burst skipped by the rate limit
// (in process), against the fake Bot API on loopback: updates behind a
// flood in Telegram's queue wait at least that long.
func BenchmarkPollingFlood(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		fake := telegramtest.New(testToken)
		var last int64
		for i := range 10_000 {
			last = fake.PushText(7, "flood "+strconv.Itoa(i))
		}
		a, err := New(Options{Token: testToken, APIURL: fake.URL, Handler: &echoHandler{}, Handoff: newMemHandoff(), SendLimits: SendLimits{Off: true},
			Limit: bot.NewLimit(bot.LimitOptions{})})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- a.RunPolling(ctx) }()
		for fake.Confirmed() <= last {
			time.Sleep(time.Millisecond) // polling the fake in a benchmark, not logic
		}
		b.StopTimer()
		cancel()
		<-done
		fake.Close()
		b.StartTimer()
	}
}
