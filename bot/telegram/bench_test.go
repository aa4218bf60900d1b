package telegram

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-telegram/bot/models"

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
	a, err := New(Options{Token: testToken, APIURL: fake.URL, WebhookURL: "https://x/", WebhookSecret: "s", Handler: &echoHandler{}})
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
