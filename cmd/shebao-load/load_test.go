package main

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	ten := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", ms(7), 99, 7 * time.Millisecond},
		{"median of ten", ten, 50, 5 * time.Millisecond},
		{"p90 of ten", ten, 90, 9 * time.Millisecond},
		{"p99 of ten is the max", ten, 99, 10 * time.Millisecond},
		{"p100", ten, 100, 10 * time.Millisecond},
		{"p0 clamps to the min", ten, 0, time.Millisecond},
		{"nearest rank rounds up", ms(1, 2, 3), 50, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentile(p%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestSummarizeSortsAndRounds(t *testing.T) {
	got := summarize([]time.Duration{3 * time.Millisecond, 1500 * time.Microsecond, 10 * time.Millisecond, 2 * time.Millisecond})
	want := latencies{N: 4, P50: 2, P90: 10, P99: 10, Max: 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarize (-want +got):\n%s", diff)
	}
}

// getUpdates calls the fake the way shebao's poller does (JSON body).
func getUpdates(t *testing.T, f *fakeAPI, offset int64, timeout int) []int64 {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"offset": offset, "limit": 100, "timeout": timeout})
	resp, err := http.Post(f.URL+"/bot"+f.opts.Token+"/getUpdates", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("getUpdates: %v", err)
	}
	defer resp.Body.Close()
	var r struct {
		OK     bool `json:"ok"`
		Result []struct {
			ID      int64 `json:"update_id"`
			Message struct {
				Text string `json:"text"`
				Chat struct {
					ID int64 `json:"id"`
				} `json:"chat"`
			} `json:"message"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || !r.OK {
		t.Fatalf("getUpdates: ok=%v err=%v", r.OK, err)
	}
	ids := []int64{}
	for _, u := range r.Result {
		ids = append(ids, u.ID)
	}
	return ids
}

func newTestFake(t *testing.T, onSend func(int64, string, time.Time)) *fakeAPI {
	t.Helper()
	f, err := startFake(fakeOptions{Token: "1:test", FirstUpdateID: 100, MaxConnections: 2, OnSend: onSend})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	return f
}

func TestFakeOffsetConfirmsLikeTelegram(t *testing.T) {
	f := newTestFake(t, nil)
	a := f.push(1, "zh", "一", nil)
	b := f.push(2, "en", "two", nil)
	c := f.push(1, "zh", "三", nil)

	if got, want := getUpdates(t, f, 0, 0), []int64{a, b, c}; !cmp.Equal(got, want) {
		t.Fatalf("first getUpdates = %v, want %v", got, want)
	}
	// Without a higher offset nothing is confirmed: the same updates again.
	if got, want := getUpdates(t, f, 0, 0), []int64{a, b, c}; !cmp.Equal(got, want) {
		t.Fatalf("repeated getUpdates = %v, want %v", got, want)
	}
	// offset=b confirms a only.
	if got, want := getUpdates(t, f, b, 0), []int64{b, c}; !cmp.Equal(got, want) {
		t.Fatalf("getUpdates offset=b = %v, want %v", got, want)
	}
	// A lower offset later cannot bring a confirmed update back.
	if got, want := getUpdates(t, f, 0, 0), []int64{b, c}; !cmp.Equal(got, want) {
		t.Fatalf("getUpdates after confirming a = %v, want %v", got, want)
	}
	if got := getUpdates(t, f, c+1, 0); len(got) != 0 {
		t.Fatalf("getUpdates offset=c+1 = %v, want none", got)
	}
	if n := f.pending(); n != 0 {
		t.Errorf("pending after confirming all = %d, want 0", n)
	}
}

func TestFakeLongPollWakesOnPush(t *testing.T) {
	f := newTestFake(t, nil)
	got := make(chan []int64, 1)
	go func() { got <- getUpdates(t, f, 0, 30) }()
	// The push may come before or after the poll starts waiting; either
	// way the poll must return it long before its 30 s timeout.
	id := f.push(5, "zh", "医保断缴了可以补缴吗", nil)
	select {
	case ids := <-got:
		if !cmp.Equal(ids, []int64{id}) {
			t.Errorf("long poll returned %v, want [%d]", ids, id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not return after a push")
	}
}

func TestFakeSendMessageMultipart(t *testing.T) {
	type sent struct {
		chat int64
		text string
	}
	var mu sync.Mutex
	var got []sent
	f := newTestFake(t, func(chat int64, text string, _ time.Time) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, sent{chat, text})
	})
	// The library's encoding: multipart/form-data.
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("chat_id", "42")
	w.WriteField("text", "<b>依据：</b>第七十四条")
	w.WriteField("parse_mode", "HTML")
	w.Close()
	resp, err := http.Post(f.URL+"/bot1:test/sendMessage", w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sendMessage status %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]sent{{42, "<b>依据：</b>第七十四条"}}, got, cmp.AllowUnexported(sent{})); diff != "" {
		t.Errorf("OnSend calls (-want +got):\n%s", diff)
	}
	if n := f.callCounts()["sendMessage"]; n != 1 {
		t.Errorf("sendMessage count %d, want 1", n)
	}
	resp, err = http.Post(f.URL+"/bot9:wrong/getMe", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", resp.StatusCode)
	}
}

func TestFakeWebhookRetriesAndKeepsChatOrder(t *testing.T) {
	var mu sync.Mutex
	var order []int64
	fails := 2
	done := make(chan struct{})
	hook := http.NewServeMux()
	hook.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Telegram-Bot-Api-Secret-Token") != "s3cret-s3cret-s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var u struct {
			ID int64 `json:"update_id"`
		}
		json.NewDecoder(r.Body).Decode(&u)
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 { // the first update is refused twice, like a restarting bot
			fails--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		order = append(order, u.ID)
		if len(order) == 3 {
			close(done)
		}
	})
	srv := &http.Server{Handler: hook}
	f := newTestFake(t, nil)
	ln, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	f.setWebhook("http://"+ln.Addr().String()+"/hook", "s3cret-s3cret-s3cret")
	a := f.push(7, "zh", "一", nil)
	b := f.push(7, "zh", "二", nil)
	c := f.push(7, "zh", "三", nil)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("webhook deliveries did not finish")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int64{a, b, c}; !cmp.Equal(order, want) {
		t.Errorf("delivery order %v, want %v (one chat's updates in sequence, retried first)", order, want)
	}
}

func TestTrackerAttributesReplies(t *testing.T) {
	exp := expectations([][]string{{"answer A", "buttons A"}, {"answer B"}})
	if exp[0].class == exp[1].class {
		t.Fatal("different answers share a class")
	}
	tr := newTracker(exp)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r1 := tr.register(9, 0, 1, t0)
	tr.deliver(9, "answer A", t0.Add(10*time.Millisecond))
	if tr.pending() != 1 {
		t.Fatal("update answered after one of its two messages")
	}
	tr.deliver(9, "buttons A", t0.Add(20*time.Millisecond))
	select {
	case <-r1.done:
	default:
		t.Fatal("update not done after both messages")
	}
	tr.register(9, 1, 2, t0.Add(30*time.Millisecond))
	tr.deliver(9, "answer A", t0.Add(40*time.Millisecond)) // a redelivered update 1
	tr.deliver(9, "answer B", t0.Add(50*time.Millisecond))
	tr.register(9, 1, 3, t0.Add(60*time.Millisecond))
	tr.deliver(9, "服务暂时不可用", t0.Add(70*time.Millisecond))
	tr.deliver(8, "nobody asked", t0.Add(80*time.Millisecond))

	recs, msgs, stray, _ := tr.snapshot()
	res := &result{}
	analyse(res, recs, t0, t0.Add(time.Second))
	if msgs != 6 || stray != 1 {
		t.Errorf("messages %d stray %d, want 6 and 1", msgs, stray)
	}
	if res.Sent != 3 || res.Lost != 0 || res.AnsweredTwice != 1 || res.OtherReplies != 1 {
		t.Errorf("sent %d lost %d twice %d other %d, want 3 0 1 1", res.Sent, res.Lost, res.AnsweredTwice, res.OtherReplies)
	}
	if !cmp.Equal(res.TwiceIDs, []int64{1}) {
		t.Errorf("answered twice %v, want [1]", res.TwiceIDs)
	}
	if res.FirstReply.P50 != 10 {
		t.Errorf("first-reply p50 %vms, want 10", res.FirstReply.P50)
	}
}

func TestOutOfOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	chats := map[int64][]record{
		1: {{ID: 1, FirstAt: at(10), DoneAt: at(20)}, {ID: 2, FirstAt: at(30), DoneAt: at(30)}}, // in order
		2: {{ID: 4, FirstAt: at(10), DoneAt: at(10)}, {ID: 3, FirstAt: at(20), DoneAt: at(20)}}, // 4 before 3
		3: {{ID: 5, FirstAt: at(10), DoneAt: at(40)}, {ID: 6, FirstAt: at(20), DoneAt: at(20)}}, // 6 inside 5's answer
	}
	if n := outOfOrder(chats); n != 2 {
		t.Errorf("outOfOrder = %d, want 2", n)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP shebao_redis_round_trips_total Round trips
# TYPE shebao_redis_round_trips_total counter
shebao_redis_round_trips_total 1234
shebao_updates_total{kind="text",outcome="handled"} 100
shebao_updates_total{kind="command",outcome="handled"} 20
shebao_updates_total{kind="text",outcome="duplicate"} 3
`
	got, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got.redisTrips != 1234 || got.handled != 120 {
		t.Errorf("parseMetrics = %+v, want trips 1234 handled 120", got)
	}
}

func TestOptionsBounded(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseOptions([]string{"--users", "0", "--duration", "2h", "--mode", "smoke"}, &stderr); err == nil {
		t.Error("out-of-range flags accepted")
	}
	if _, err := parseOptions([]string{"--rounds", "0"}, &stderr); err == nil || !strings.Contains(err.Error(), "--rounds") {
		t.Errorf("--rounds 0: %v, want an error naming --rounds", err)
	}
	o, err := parseOptions([]string{"--scenario", "replicas"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.mode != "webhook" || o.burst != 3 {
		t.Errorf("replicas: mode %q burst %d, want webhook and 3", o.mode, o.burst)
	}
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// shebao sends JSON; the fake reads the fields it needs in one pass,
// exactly, whatever else the body holds.
func TestReadAPIParamsJSON(t *testing.T) {
	body := `{"chat_id":9007199254740993,"text":"依据：\u003cb\u003e第七十四条\u003c/b\u003e \"引号\"","parse_mode":"HTML",` +
		`"link_preview_options":{"is_disabled":true},"reply_markup":{"inline_keyboard":[[{"text":"x","callback_data":"y"}]]},"offset":17}`
	r, _ := http.NewRequest(http.MethodPost, "/bot1:test/sendMessage", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	p, err := readAPIParams(r)
	if err != nil {
		t.Fatal(err)
	}
	want := apiParams{"chat_id": "9007199254740993", "text": `依据：<b>第七十四条</b> "引号"`, "offset": "17"}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{"chat_id":`, `{"text":5}`} {
		r, _ := http.NewRequest(http.MethodPost, "/x", strings.NewReader(bad))
		r.Header.Set("Content-Type", "application/json")
		if _, err := readAPIParams(r); err == nil {
			t.Errorf("body %s accepted", bad)
		}
	}
	r, _ = http.NewRequest(http.MethodPost, "/x", strings.NewReader(""))
	r.Header.Set("Content-Type", "application/json")
	if p, err := readAPIParams(r); err != nil || len(p) != 0 {
		t.Errorf("empty body: %v, %v", p, err)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{0.7}, 0.7},
		{[]float64{0.9, 0.5, 0.7}, 0.7},
		{[]float64{0.8, 0.6, 1.0, 0.5}, 0.7},
	} {
		if got := median(c.in); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
