package faq

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestLLMObserve: every call that reaches the endpoint is reported with
// its kind and whether it answered, so the operator's latency histogram
// sees failures as well as answers.
func TestLLMObserve(t *testing.T) {
	good := `{"answer": "您可以在国家医保服务平台App查询医保余额，查询免费。", "citations": [{"law": "社会保险法", "article": 74}], "quotes": ["免费向社会保险经办机构查询、核对其缴费和享受社会保险待遇记录"]}`
	for _, tt := range []struct {
		name   string
		reply  func(w http.ResponseWriter, r *http.Request)
		failed bool
	}{
		{"answered", content(good), false},
		{"500", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error": {"message": "boom"}}`, http.StatusInternalServerError)
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newFakeLLM(t, tt.reply)
			type seen struct {
				call   string
				d      time.Duration
				failed bool
			}
			var mu sync.Mutex
			var got []seen
			f := testFAQ(t, Options{LLM: &LLMConfig{BaseURL: srv.URL + "/v1", APIKey: "k", Model: "m", Timeout: time.Second,
				Observe: func(call string, d time.Duration, err error) {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, seen{call, d, err != nil})
				}}})
			if _, err := f.Answer(context.Background(), Query{Text: balanceQ, Lang: ZH, Day: testDay}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0].call != "phrase" || got[0].failed != tt.failed || got[0].d <= 0 {
				t.Errorf("observed %+v, want one phrase call, failed=%v", got, tt.failed)
			}
		})
	}
}
