package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateway is an HTTP fake of an operator's SMS gateway: it checks the
// signature like a real one would and answers with the statuses given.
type gateway struct {
	t        *testing.T
	secret   []byte
	mu       sync.Mutex
	statuses []int // answered in turn; 200 when exhausted
	got      []map[string]any
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get("X-Shebao-Timestamp")
	want := "sha256=" + Sign(g.secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Shebao-Signature"))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, m)
	status := 200
	if len(g.statuses) > 0 {
		status, g.statuses = g.statuses[0], g.statuses[1:]
	}
	w.WriteHeader(status)
}

func newWebhook(t *testing.T, g *gateway) *Webhook {
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return &Webhook{URL: srv.URL, Secret: g.secret, Now: func() time.Time { return time.Unix(1764633600, 0) },
		Backoff: func(int) time.Duration { return time.Millisecond }}
}

var msg = Message{Phone: "13900000011", Code: "482913", Lang: "zh", TTL: 5 * time.Minute}

func TestWebhookSendsASignedRequest(t *testing.T) {
	g := &gateway{t: t, secret: []byte("s3cret")}
	if err := newWebhook(t, g).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if len(g.got) != 1 {
		t.Fatalf("%d requests", len(g.got))
	}
	m := g.got[0]
	if m["phone"] != "13900000011" || m["code"] != "482913" || m["ttl_seconds"] != float64(300) ||
		!strings.Contains(m["text"].(string), "482913") || m["id"] == "" {
		t.Errorf("request %v", m)
	}
}

func TestWebhookWithTheWrongSecretIsRejected(t *testing.T) {
	g := &gateway{t: t, secret: []byte("right")}
	w := newWebhook(t, g)
	w.Secret = []byte("wrong")
	err := w.Send(context.Background(), msg)
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v, want ErrRejected", err)
	}
	if strings.Contains(err.Error(), msg.Phone) || strings.Contains(err.Error(), msg.Code) {
		t.Errorf("error carries the phone or the code: %v", err)
	}
}

// 5xx is retried, the same request id each time so a gateway can drop
// duplicates; a 4xx is not retried.
func TestWebhookRetries(t *testing.T) {
	g := &gateway{t: t, secret: []byte("s"), statuses: []int{503, 502}}
	if err := newWebhook(t, g).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if len(g.got) != 3 || g.got[0]["id"] != g.got[2]["id"] {
		t.Errorf("%d requests, ids %v %v", len(g.got), g.got[0]["id"], g.got[len(g.got)-1]["id"])
	}
	g = &gateway{t: t, secret: []byte("s"), statuses: []int{500, 500, 500, 500}}
	if err := newWebhook(t, g).Send(context.Background(), msg); err == nil || errors.Is(err, ErrRejected) || len(g.got) != webhookAttempts {
		t.Errorf("persistent 500: err %v after %d requests", err, len(g.got))
	}
	g = &gateway{t: t, secret: []byte("s"), statuses: []int{400}}
	if err := newWebhook(t, g).Send(context.Background(), msg); !errors.Is(err, ErrRejected) || len(g.got) != 1 {
		t.Errorf("400: err %v after %d requests", err, len(g.got))
	}
}

func TestDemoPrintsAMaskedPhone(t *testing.T) {
	var out bytes.Buffer
	if err := (&Demo{Out: &out}).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "DEMO") || !strings.Contains(s, "482913") || !strings.Contains(s, "139****0011") || strings.Contains(s, "13900000011") {
		t.Errorf("demo output %q", s)
	}
}
