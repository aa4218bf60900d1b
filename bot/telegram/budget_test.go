package telegram

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/redisstore"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// fastLimits are Telegram's limits with a faster global rate, so that the
// tests over the fake Bot API take a second or two; 10% under what the
// fake enforces (telegramLimits), as an operator leaves headroom with
// TELEGRAM_SEND_RATE: on a shared 2-core machine at a load of 13 a send
// woken late bunches with the next by more than 100 ms (the harness's
// budget scenario measured 7 429s in 826 sends at the full rate, none at
// 90%).
var fastLimits = SendLimits{Rate: 45}

var telegramLimits = telegramtest.Limits{Global: 50, ChatBurst: 3, ChatEvery: time.Second, GroupPerMinute: 20, Slack: 50 * time.Millisecond}

// sendParts sends a reply of parts messages to each of chats chats, at
// once, replica i%len(replicas) sending to chat i.
func sendParts(ctx context.Context, t *testing.T, replicas []*Adapter, chats, parts int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range chats {
		a := replicas[i%len(replicas)]
		wg.Go(func() {
			replies := make([]bot.Reply, parts)
			for j := range replies {
				replies[j] = bot.TextReply(fmt.Sprintf("chat %d part %d", i, j+1))
			}
			if err := a.send(ctx, int64(1000+i), 0, replies); err != nil {
				t.Errorf("chat %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

func budgetAdapter(t *testing.T, fake *telegramtest.Server, b SendBudget, m BudgetMetrics, log *slog.Logger) *Adapter {
	t.Helper()
	a, err := New(Options{Token: testToken, APIURL: fake.URL, Handler: &echoHandler{},
		Budget: b, SendLimits: fastLimits, BudgetMetrics: m, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Two replicas sharing one budget in Redis keep together to Telegram's
// limits: the fake Bot API, which answers 429 over them, answers none,
// and every part of every multi-part answer arrives. Each replica pacing
// alone would send twice the rate: the fake catches that.
func TestBudgetTwoReplicasNoTooMany(t *testing.T) {
	store, err := redisstore.OpenEmbedded(testCtx(t), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fake := telegramtest.New(testToken)
	defer fake.Close()
	fake.Enforce(telegramLimits)
	replicas := []*Adapter{budgetAdapter(t, fake, store, nil, nil), budgetAdapter(t, fake, store, nil, nil)}
	sendParts(testCtx(t), t, replicas, 25, 4)
	st := fake.SendStats()
	// TestBudgetTwoReplicasVirtual has the exact figures, at the full
	// rate.
	if st.TooMany != 0 || st.Sent != 100 {
		t.Errorf("shared budget: %+v; want 100 sent and no 429", st)
	}

	alone := telegramtest.New(testToken)
	defer alone.Close()
	alone.Enforce(telegramLimits)
	replicas = []*Adapter{budgetAdapter(t, alone, nil, nil, nil), budgetAdapter(t, alone, nil, nil, nil)}
	sendParts(testCtx(t), t, replicas, 150, 1)
	if st := alone.SendStats(); st.TooMany < 10 {
		t.Errorf("replicas pacing alone: %+v; want 429s (the fake must see twice the rate)", st)
	}
}

// meterSim plays sendMessage in process, on virtual time, and meters the
// sends exactly as the fake does (no slack: virtual time has no jitter).
type meterSim struct{ m *telegramtest.Meter }

func (s meterSim) RoundTrip(r *http.Request) (*http.Response, error) {
	var p struct {
		ChatID int64 `json:"chat_id"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	time.Sleep(20 * time.Millisecond) // virtual: the way there
	rec := httptest.NewRecorder()
	if ra := s.m.Admit(p.ChatID, time.Now()); ra > 0 {
		fmt.Fprintf(rec, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after %d","parameters":{"retry_after":%d}}`, ra, ra)
	} else {
		rec.WriteString(`{"ok":true,"result":{"message_id":1}}`)
	}
	return rec.Result(), nil
}

// The same two replicas on virtual time: exactly within Telegram's
// limits, at 30 a second, 200 chats getting a three-part answer and a
// fourth message.
func TestBudgetTwoReplicasVirtual(t *testing.T) {
	store, err := redisstore.OpenEmbedded(testCtx(t), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	synctest.Test(t, func(t *testing.T) {
		sim := meterSim{telegramtest.NewMeter(telegramtest.Limits{Global: 30, ChatBurst: 3, ChatEvery: time.Second})}
		var replicas []*Adapter
		for range 2 {
			a, err := New(Options{Token: testToken, APIURL: "http://bot-api.invalid", Handler: &echoHandler{},
				HTTPClient: &http.Client{Transport: sim}, Budget: store,
				SendLimits: SendLimits{CallerClock: true}}) // virtual time: the server's clock is real
			if err != nil {
				t.Fatal(err)
			}
			replicas = append(replicas, a)
		}
		start := time.Now()
		sendParts(t.Context(), t, replicas, 200, 4)
		st := sim.m.Stats()
		if st.TooMany != 0 || st.Sent != 800 || st.MaxGlobal > 30 || st.MaxChat > 3 {
			t.Errorf("%+v; want 800 sent, no 429, at most 30 a second and 3 to a chat", st)
		}
		if took := time.Since(start); took > 800*time.Second/30+time.Second {
			t.Errorf("800 sends took %s, want about %s: the budget wasted slots", took, 800*time.Second/30)
		}
	})
}

type downBudget struct{}

func (downBudget) TakeSend(context.Context, string, bot.SendClass, time.Time, bot.SendPolicy) (time.Duration, bool, error) {
	return 0, false, fmt.Errorf("send budget: %w", bot.ErrUnavailable)
}

type budgetCounts struct {
	mu        sync.Mutex
	waits     map[string]int
	fallbacks int
}

func (c *budgetCounts) BudgetWait(class string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waits == nil {
		c.waits = map[string]int{}
	}
	c.waits[class]++
}

func (c *budgetCounts) BudgetFallback() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fallbacks++
}

// Without Redis the replica paces itself at the configured rate: every
// answer goes out, none meets a 429, the fallback is counted per send and
// logged once. On virtual time, so the meter is exact.
func TestBudgetFallsBackToLocal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := meterSim{telegramtest.NewMeter(telegramtest.Limits{Global: 30, ChatBurst: 3, ChatEvery: time.Second})}
		var logs bytes.Buffer
		m := &budgetCounts{}
		a, err := New(Options{Token: testToken, APIURL: "http://bot-api.invalid", Handler: &echoHandler{},
			HTTPClient: &http.Client{Transport: sim}, Budget: downBudget{}, BudgetMetrics: m,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		sendParts(t.Context(), t, []*Adapter{a}, 60, 2)
		if st := sim.m.Stats(); st.TooMany != 0 || st.Sent != 120 || st.MaxGlobal > 30 {
			t.Errorf("local budget: %+v; want 120 sent, no 429, at most 30 a second", st)
		}
		if m.fallbacks != 120 || m.waits["interactive"] != 120 {
			t.Errorf("metrics: %d fallbacks, waits %v; want 120 of each, interactive", m.fallbacks, m.waits)
		}
		if n := strings.Count(logs.String(), `"send budget unavailable`); n != 1 {
			t.Errorf("%d warnings about the budget, want 1:\n%s", n, logs.String())
		}
	})
}

// sendTimes plays sendMessage in process and records, on virtual time,
// when each chat was sent to.
type sendTimes struct {
	mu    sync.Mutex
	start time.Time
	at    map[int64][]time.Duration
}

func (s *sendTimes) RoundTrip(r *http.Request) (*http.Response, error) {
	var p struct {
		ChatID int64 `json:"chat_id"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.at[p.ChatID] = append(s.at[p.ChatID], time.Since(s.start))
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // virtual: the round trip
	rec := httptest.NewRecorder()
	rec.WriteString(`{"ok":true,"result":{"message_id":1}}`)
	return rec.Result(), nil
}

func timedAdapter(t *testing.T, b SendBudget) (*Adapter, *sendTimes) {
	t.Helper()
	st := &sendTimes{start: time.Now(), at: map[int64][]time.Duration{}}
	a, err := New(Options{Token: testToken, APIURL: "http://bot-api.invalid", Handler: &echoHandler{},
		HTTPClient: &http.Client{Transport: st}, Budget: b})
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

// A private chat gets a three-part answer at once, then one message a
// second; a group no more than 20 in a minute. The local budget here; the
// shared one computes the same (redisstore's tests).
func TestBudgetPerChat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, st := timedAdapter(t, nil)
		replies := func(n int) []bot.Reply {
			rs := make([]bot.Reply, n)
			for i := range rs {
				rs[i] = bot.TextReply(fmt.Sprintf("part %d", i+1))
			}
			return rs
		}
		if err := a.send(t.Context(), 7, 0, replies(5)); err != nil {
			t.Fatal(err)
		}
		at := st.at[7]
		if len(at) != 5 || at[2] > 100*time.Millisecond || at[3] < time.Second || at[4] < 2*time.Second {
			t.Errorf("five parts sent at %v; want three at once, then one a second", at)
		}
		if err := a.send(t.Context(), -100123, 0, replies(25)); err != nil {
			t.Fatal(err)
		}
		at = st.at[-100123]
		first := 0
		for _, d := range at {
			if d-at[0] < time.Minute {
				first++
			}
		}
		if len(at) != 25 || first > 20 {
			t.Errorf("a group got %d of %d messages in its first minute, want at most 20 and all in the end", first, len(at))
		}
	})
}

// Answers go before reminders on the local budget too: a reminder asked
// for while answers are queued waits until they are out.
func TestLocalBudgetBulkYields(t *testing.T) {
	var l localBudget
	l.chats = map[string]time.Time{}
	p := (SendLimits{}).withDefaults().policy(1)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i := range 30 {
		if _, taken := l.take(tg(int64(i)), bot.Interactive, now, p); !taken {
			t.Fatalf("answer %d not taken", i)
		}
	}
	wait, taken := l.take(tg(99), bot.Bulk, now, p)
	if taken || wait != 30*p.Every {
		t.Errorf("reminder behind 30 answers: wait %s, taken %v; want refused for the 30 slots, %s", wait, taken, 30*p.Every)
	}
	if _, taken := l.take(tg(99), bot.Bulk, now.Add(wait), p); !taken {
		t.Error("reminder once the answers are out: not taken")
	}
	if wait, taken := l.take(tg(100), bot.Interactive, now.Add(wait), p); !taken || wait != p.Every {
		t.Errorf("answer right after the reminder: wait %s, taken %v; want one slot, %s", wait, taken, p.Every)
	}
}

// A reminder (Send) asked for while answers are queued goes out after
// them, and after the answers asked for while it waited: with answers
// queued it never takes a slot.
func TestBudgetRemindersAfterAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, st := timedAdapter(t, nil)
		var wg sync.WaitGroup
		answer := func(from, n int) {
			for i := range n {
				wg.Go(func() {
					if err := a.send(t.Context(), int64(from+i), 0, []bot.Reply{bot.TextReply("answer")}); err != nil {
						t.Error(err)
					}
				})
			}
		}
		answer(100, 30) // a second's worth
		synctest.Wait()
		wg.Go(func() {
			if err := a.Send(t.Context(), tg(7), []bot.Reply{bot.TextReply("reminder")}); err != nil {
				t.Error(err)
			}
		})
		time.Sleep(500 * time.Millisecond)
		answer(200, 10)
		wg.Wait()
		reminder := st.at[7][0]
		for _, from := range []int{100, 200} {
			for chat, at := range st.at {
				if chat >= int64(from) && chat < int64(from+30) && at[0] > reminder {
					t.Errorf("answer to %d sent at %s, after the reminder at %s", chat, at[0], reminder)
				}
			}
		}
		if len(st.at) != 41 {
			t.Errorf("%d chats sent to, want 41", len(st.at))
		}
	})
}
