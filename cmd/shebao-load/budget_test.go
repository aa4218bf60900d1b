package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// In the budget scenario the fake answers 429 with a retry_after once a
// second holds 30 sends, or a chat more than its burst.
func TestBudgetFakeRefusesOverTelegramsLimits(t *testing.T) {
	m := telegramtest.NewMeter(budgetLimits(0))
	f, err := startFake(fakeOptions{Token: "1:t", Intercept: meterSends(m)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	send := func(chat int) (int, string) {
		resp, err := http.Post(f.URL+"/bot1:t/sendMessage", "application/json",
			strings.NewReader(fmt.Sprintf(`{"chat_id":%d,"text":"x"}`, chat)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := range 3 {
		if code, body := send(1); code != 200 {
			t.Fatalf("part %d to one chat: %d %s, want 200 (the burst)", i+1, code, body)
		}
	}
	if code, body := send(1); code != 429 || !strings.Contains(body, `"retry_after":1`) {
		t.Errorf("fourth to one chat at once: %d %s, want 429 retry after 1", code, body)
	}
	for i := range 27 {
		if code, _ := send(100 + i); code != 200 {
			t.Fatalf("send %d of the second: %d", i+4, code)
		}
	}
	if code, _ := send(999); code != 429 {
		t.Errorf("31st send in a second: %d, want 429", code)
	}
	if st := m.Stats(); st.Sent != 30 || st.TooMany != 2 || st.MaxGlobal != 30 || st.MaxChat != 3 {
		t.Errorf("stats %+v, want 30 sent, 2 refused, 30 in a second, 3 to a chat", st)
	}
}

// The send budget is on only in the budget scenario: the others measure
// the bot's own throughput against a fake without limits.
func TestSendRateOffButInBudget(t *testing.T) {
	for _, sc := range []string{"load", "replicas", "flood", "budget"} {
		h := &harness{opt: options{scenario: sc}}
		off := slices.Contains(h.limitEnv(), "TELEGRAM_SEND_RATE=0")
		if off != (sc != "budget") {
			t.Errorf("%s: TELEGRAM_SEND_RATE=0 is %v", sc, off)
		}
	}
}
