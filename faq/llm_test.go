package faq

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeLLM plays an OpenAI-compatible server. reply returns the message
// content to send, or a status code other than 200.
type fakeLLM struct {
	t      *testing.T
	mu     sync.Mutex
	bodies []string
	reply  func(w http.ResponseWriter, r *http.Request)
}

func newFakeLLM(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) (*fakeLLM, *httptest.Server) {
	f := &fakeLLM{t: t, reply: reply}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodies = append(f.bodies, string(b))
		f.mu.Unlock()
		f.reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func content(s string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": "x", "object": "chat.completion", "model": "m",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": s}}},
		})
	}
}

func llmFAQ(t *testing.T, srv *httptest.Server, timeout time.Duration) (*FAQ, *bytes.Buffer) {
	var logs bytes.Buffer
	f := testFAQ(t, Options{
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{
			Level: slog.LevelDebug,
			// Timestamps are digit runs; the privacy scan must not see them.
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		})),
		LLM: &LLMConfig{BaseURL: srv.URL + "/v1", APIKey: "k", Model: "m", Timeout: timeout},
	})
	return f, &logs
}

const balanceQ = "医保余额怎么查"

func TestLLMAccepted(t *testing.T) {
	good := `{"answer": "您可以在国家医保服务平台App查询医保余额，查询免费。", "citations": [{"law": "社会保险法", "article": 74}], "quotes": ["免费向社会保险经办机构查询、核对其缴费和享受社会保险待遇记录"]}`
	for name, reply := range map[string]string{
		"plain":  good,
		"fenced": "```json\n" + good + "\n```",
	} {
		fake, srv := newFakeLLM(t, content(reply))
		f, _ := llmFAQ(t, srv, time.Second)
		a, err := f.Answer(context.Background(), Query{Text: balanceQ, Lang: ZH, Day: testDay})
		if err != nil {
			t.Fatal(err)
		}
		if !a.Phrased || a.Text != "您可以在国家医保服务平台App查询医保余额，查询免费。" || a.EntryID != "balance-query" {
			t.Errorf("%s: %+v", name, a)
		}
		if diff := cmp.Diff([]Citation{{LawSIL, 74}}, a.Citations); diff != "" {
			t.Errorf("%s: citations (-want +got):\n%s", name, diff)
		}
		if len(fake.bodies) != 1 || !strings.Contains(fake.bodies[0], "免费向社会保险经办机构查询") {
			t.Errorf("%s: the prompt lacks the cited article text", name)
		}
		if s := f.Stats(); s.LLMCalls != 1 || s.LLMAccepted != 1 {
			t.Errorf("%s: stats %+v", name, s)
		}
	}
}

func TestLLMRejected(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	tests := []struct {
		name   string
		reply  func(w http.ResponseWriter, r *http.Request)
		reason string
	}{
		{"invented article", content(`{"answer": "可以查询。", "citations": [{"law": "社会保险法", "article": 99}], "quotes": []}`), "bad_citation"},
		{"real article not retrieved", content(`{"answer": "可以查询。", "citations": [{"law": "社会保险法", "article": 4}], "quotes": []}`), "bad_citation"},
		{"article named in prose", content(`{"answer": "根据第九十九条，可以查询。", "citations": [], "quotes": []}`), "bad_citation"},
		{"quote not in article", content(`{"answer": "可以查询。", "citations": [{"law": "社会保险法", "article": 74}], "quotes": ["查询余额需要支付手续费"]}`), "bad_quote"},
		{"quote from an uncited article", content(`{"answer": "可以查询。", "citations": [{"law": "社会保险法", "article": 74}], "quotes": ["用人单位和个人可以免费向社会保险经办机构查询、核对个人权益记录"]}`), "bad_quote"},
		{"garbage", content(`Sure! Here is your answer: you can check online.`), "invalid_json"},
		{"two objects", content(`{"answer": "a"} {"answer": "b"}`), "invalid_json"},
		{"empty answer", content(`{"answer": "  ", "citations": []}`), "empty"},
		{"500", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error": {"message": "boom"}}`, http.StatusInternalServerError)
		}, "http"},
		{"hang", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-hang:
			}
		}, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newFakeLLM(t, tt.reply)
			f, logs := llmFAQ(t, srv, 200*time.Millisecond)
			a, err := f.Answer(context.Background(), Query{Text: balanceQ, Lang: ZH, Day: testDay})
			if err != nil {
				t.Fatal(err)
			}
			e, _ := f.Entry("balance-query")
			if a.Phrased || a.Text != e.answerOn(testDay, ZH) || a.Abstained {
				t.Errorf("not the retrieval answer: %+v", a)
			}
			if diff := cmp.Diff(e.citationsOn(testDay), a.Citations); diff != "" {
				t.Errorf("citations (-want +got):\n%s", diff)
			}
			s := f.Stats()
			if s.LLMCalls != 1 || s.LLMAccepted != 0 || s.LLMFallbacks[tt.reason] != 1 {
				t.Errorf("stats %+v, want one %q fallback", s, tt.reason)
			}
			if !strings.Contains(logs.String(), `"level":"WARN"`) || strings.Contains(logs.String(), balanceQ) {
				t.Errorf("log should warn without message text:\n%s", logs)
			}
		})
	}
}

func TestLLMNeverSeesPersonalNumbers(t *testing.T) {
	fake, srv := newFakeLLM(t, content(`{"answer": "可以查。", "citations": [], "quotes": []}`))
	f, _ := llmFAQ(t, srv, time.Second)
	for _, q := range []string{
		"我身份证号11010519491231002X，医保余额怎么查",
		"手机13912345678，医保余额怎么查",
		"手机 139 1234 5678 医保余额怎么查",
		"身份证１１０１０５１９４９１２３１００２Ｘ医保余额怎么查",
		"My ID is 110105194912310026, how do I check my medical insurance balance?",
	} {
		a, err := f.Answer(context.Background(), Query{Text: q, Lang: DetectLang(q), Day: testDay})
		if err != nil || a.EntryID != "balance-query" {
			t.Fatalf("%q: %+v, %v", q, a, err)
		}
	}
	if len(fake.bodies) != 5 {
		t.Fatalf("%d requests", len(fake.bodies))
	}
	digits := regexp.MustCompile(`[0-9]{6,}|1391234|1234 5678|１１０１`)
	for _, b := range fake.bodies {
		if m := digits.FindString(b); m != "" {
			t.Errorf("request carries %q", m)
		}
		if !strings.Contains(b, "[redacted]") {
			t.Errorf("request lacks the redaction mark")
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"11010519491231002X":           "[redacted]",
		"电话13912345678":                "电话[redacted]",
		"139-1234-5678 ok":             "[redacted] ok",
		"交了15年，12393能查吗":               "交了15年，12393能查吗",
		"2024年1月":                      "2024年1月",
		"账号 6222021234567890":          "账号 [redacted]",
		"卡号 6222 0212 3456 7890 怎么办":   "卡号 [redacted] 怎么办",
		"my phone 139.0000.0011":       "my phone [redacted]",
		"手机 139  0000  0011 可以吗":       "手机 [redacted] 可以吗",
		"call +86 139-0000-0011":       "call [redacted]",
		"身份证 110105 19491231 002X":     "身份证 [redacted]",
		"邮箱 zhang.san@example.com 收不到": "邮箱 [redacted] 收不到",
		"mail me: li＠qq.com":           "mail me: [redacted]",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// Article requests and refusals never reach the LLM.
func TestLLMOnlyForEntries(t *testing.T) {
	fake, srv := newFakeLLM(t, content(`{"answer": "x"}`))
	f, _ := llmFAQ(t, srv, time.Second)
	for _, q := range []string{"第74条", "明天会下雨吗", "第120条"} {
		if _, err := f.Answer(context.Background(), Query{Text: q, Lang: ZH, Day: testDay}); err != nil {
			t.Fatal(err)
		}
	}
	if len(fake.bodies) != 0 {
		t.Errorf("%d LLM calls", len(fake.bodies))
	}
}

// Even at Debug level, the log carries no question text and no number that
// could be an ID or a phone.
func TestLogsCarryNoPersonalData(t *testing.T) {
	_, srv := newFakeLLM(t, content(`not json`))
	f, logs := llmFAQ(t, srv, time.Second)
	qs := []string{"我身份证号11010519491231002X，医保余额怎么查", "手机13912345678，明天会下雨吗", "第120条", "My phone is 13912345678, is there a late fee?"}
	for _, q := range qs {
		if _, err := f.Answer(context.Background(), Query{Text: q, Lang: DetectLang(q), Day: testDay}); err != nil {
			t.Fatal(err)
		}
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged; the test proves nothing")
	}
	if m := regexp.MustCompile(`[0-9]{6,}`).FindString(logs.String()); m != "" {
		t.Errorf("log carries %q:\n%s", m, logs)
	}
	for _, q := range qs {
		if strings.Contains(logs.String(), q[:9]) {
			t.Errorf("log carries question text %q", q[:9])
		}
	}
}

// A hung endpoint costs a few timeouts, then calls pause: the questions
// after it get the retrieval answer at once and no request is made.
func TestLLMBreakerOpensOnAHungEndpoint(t *testing.T) {
	release := make(chan struct{})
	fake, srv := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	f, _ := llmFAQ(t, srv, 50*time.Millisecond)
	for range breakerTrips + 3 {
		a, err := f.Answer(context.Background(), Query{Text: balanceQ, Lang: ZH, Day: testDay})
		if err != nil || a.Phrased || a.EntryID == "" {
			t.Fatalf("answer %+v, %v", a, err)
		}
	}
	s := f.Stats()
	if s.LLMFallbacks["timeout"] != breakerTrips || s.LLMFallbacks["breaker_open"] != 3 {
		t.Errorf("fallbacks %v; want %d timeouts then breaker_open", s.LLMFallbacks, breakerTrips)
	}
	fake.mu.Lock()
	n := len(fake.bodies)
	fake.mu.Unlock()
	if n != breakerTrips {
		t.Errorf("%d requests reached the endpoint, want %d", n, breakerTrips)
	}
}

// One user's questions take one LLM slot at a time; while it is taken,
// their next question gets the retrieval answer at once, and other users
// still get phrased answers.
func TestLLMOneCallPerUser(t *testing.T) {
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	good := content(`{"answer": "您可以在国家医保服务平台App查询医保余额，查询免费。", "citations": [], "quotes": []}`)
	_, srv := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		good(w, r)
	})
	f, _ := llmFAQ(t, srv, 5*time.Second)
	first := make(chan Answer)
	go func() {
		a, _ := f.Answer(context.Background(), Query{Text: balanceQ, Lang: ZH, Day: testDay, User: "tg:1"})
		first <- a
	}()
	<-started
	a, err := f.Answer(context.Background(), Query{Text: balanceQ, Lang: ZH, Day: testDay, User: "tg:1"})
	if err != nil || a.Phrased {
		t.Errorf("second question of the same user: %+v, %v", a, err)
	}
	if s := f.Stats(); s.LLMFallbacks["busy"] != 1 {
		t.Errorf("fallbacks %v, want one busy", s.LLMFallbacks)
	}
	other := make(chan Answer)
	go func() {
		a, _ := f.Answer(context.Background(), Query{Text: balanceQ, Lang: ZH, Day: testDay, User: "tg:2"})
		other <- a
	}()
	<-started
	close(release)
	if a := <-first; !a.Phrased {
		t.Errorf("first user's answer not phrased: %+v", a)
	}
	if a := <-other; !a.Phrased {
		t.Errorf("other user's answer not phrased: %+v", a)
	}
}

// When retrieval is unsure, the LLM may choose among the best three
// entries; a choice outside them, or a failure, keeps retrieval's.
func TestLLMRerank(t *testing.T) {
	base := realFAQ(t)
	// Find a question retrieval answers without being sure.
	var q string
	var plain match
	for _, it := range tuneItems(t) {
		m := base.understand(context.Background(), clean(it.Q), it.Lang)
		if m.ok && m.score < clsSure && m.also < 0 {
			q, plain = it.Q, m
			break
		}
	}
	if q == "" {
		t.Fatal("no unsure question in the tuning sets")
	}
	for _, tt := range []struct {
		name, reply string
		moved       bool
	}{{"picks the second", "2", true}, {"out of range", "7", false}, {"none", "0", false}, {"prose", "I think the first one.", false}} {
		t.Run(tt.name, func(t *testing.T) {
			var reranks int
			_, srv := newFakeLLM(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				_ = body
				reranks++
				content(tt.reply)(w, r)
			})
			f, err := New(Options{LLM: &LLMConfig{BaseURL: srv.URL + "/v1", APIKey: "k", Model: "m", Timeout: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			m := f.understand(context.Background(), clean(q), DetectLang(q))
			if s := f.Stats(); s.RerankCalls != 1 {
				t.Fatalf("rerank calls %d", s.RerankCalls)
			}
			if moved := m.doc != plain.doc; moved != tt.moved || !m.ok {
				t.Errorf("reply %q: entry %s (retrieval said %s), ok %v", tt.reply, m.id(f), plain.id(f), m.ok)
			}
		})
	}
}
