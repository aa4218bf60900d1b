package main

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLLMCallHistogram: the faq's Observe hook lands in
// shebao_llm_call_seconds by call and result.
func TestLLMCallHistogram(t *testing.T) {
	m := newMetrics()
	observe := llmObserver(m)
	if observe == nil {
		t.Fatal("no observer for serve's metrics")
	}
	observe("phrase", 1200*time.Millisecond, nil)
	observe("phrase", 15*time.Second, errors.New("timeout"))
	observe("rerank", 300*time.Millisecond, nil)
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`shebao_llm_call_seconds_count{call="phrase",result="ok"} 1`,
		`shebao_llm_call_seconds_count{call="phrase",result="error"} 1`,
		`shebao_llm_call_seconds_bucket{call="rerank",result="ok",le="0.5"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if llmObserver(nil) != nil {
		t.Error("an observer without metrics")
	}
}
