package telegram

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shebao/shebao/bot"
)

// apiSim plays the Bot API's sendMessage in process, so that tests run in
// a synctest bubble on virtual time. fail decides each attempt from the
// time since the start: a status to answer (0: success), and whether the
// message was delivered anyway.
type apiSim struct {
	start time.Time
	fail  func(since time.Duration) (status int, delivered bool)

	mu        sync.Mutex
	attempts  int
	delivered map[string]int // text → times delivered
	inFlight  int
	maxFlight int // most attempts at once while failing
	during    int // attempts while failing
}

func (s *apiSim) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	text := string(body)
	s.mu.Lock()
	s.attempts++
	status, delivered := s.fail(time.Since(s.start))
	if status != 0 {
		s.during++
		s.inFlight++
		s.maxFlight = max(s.maxFlight, s.inFlight)
	}
	if status == 0 || delivered {
		s.delivered[text]++
	}
	s.mu.Unlock()
	time.Sleep(50 * time.Millisecond) // virtual: the round trip
	s.mu.Lock()
	if status != 0 {
		s.inFlight--
	}
	s.mu.Unlock()
	rec := httptest.NewRecorder()
	switch status {
	case 0:
		rec.WriteString(`{"ok":true,"result":{"message_id":1}}`)
	case http.StatusBadGateway:
		rec.WriteHeader(status)
		rec.WriteString("<html>502 Bad Gateway</html>")
	default:
		rec.WriteHeader(status)
		fmt.Fprintf(rec, `{"ok":false,"error_code":%d,"description":"Internal Server Error"}`, status)
	}
	return rec.Result(), nil
}

// simAdapter is an adapter whose Bot API is sim, with production backoffs.
func simAdapter(t *testing.T, sim *apiSim) *Adapter {
	t.Helper()
	sim.start, sim.delivered = time.Now(), map[string]int{}
	a, err := New(Options{Token: testToken, APIURL: "http://bot-api.invalid", Handler: &echoHandler{},
		HTTPClient: &http.Client{Transport: sim}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sendAll sends one message to each of n chats at once and returns the
// errors.
func sendAll(a *Adapter, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = a.Send(context.Background(), tg(int64(i+1)), []bot.Reply{bot.TextReply(fmt.Sprintf("reply %d", i))})
		})
	}
	wg.Wait()
	return errs
}

// A 10 s outage of sendMessage (500, nothing delivered) loses no reply
// and repeats none; while it lasts one probe at a time tries, on a
// backoff, instead of every reply on its own.
func TestSendOutageOf10sLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &apiSim{fail: func(since time.Duration) (int, bool) {
			if since < 10*time.Second {
				return http.StatusInternalServerError, false
			}
			return 0, false
		}}
		a := simAdapter(t, sim)
		start := time.Now()
		for i, err := range sendAll(a, 20) {
			if err != nil {
				t.Errorf("reply %d: %v", i, err)
			}
		}
		for i := range 20 {
			if n := deliveredTimes(sim, i); n != 1 {
				t.Errorf("reply %d delivered %d times, want once", i, n)
			}
		}
		if took := time.Since(start); took > 16*time.Second {
			t.Errorf("the replies went out %s after the outage began; want within the probe backoff of its end", took)
		}
		// Every reply fails once when the outage starts; after that one
		// probe at a time: about a dozen attempts, not 20 per backoff.
		if sim.during > 20+12 {
			t.Errorf("%d attempts during the outage, want the first 20 and one probe per backoff", sim.during)
		}
	})
}

// deliveredTimes is how often the reply to chat i was delivered (the sim
// keys deliveries by request body).
func deliveredTimes(sim *apiSim, i int) int {
	n := 0
	for body, k := range sim.delivered {
		if strings.Contains(body, fmt.Sprintf(`"reply %d"`, i)) {
			n += k
		}
	}
	return n
}

// A proxy that delivers and then answers 502 for 10 s: every reply goes
// out, and the repeats are bounded by the probes, not by replies times
// attempts.
func TestSendDeliveredThen502RepeatsOnlyProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &apiSim{fail: func(since time.Duration) (int, bool) {
			if since < 10*time.Second {
				return http.StatusBadGateway, true
			}
			return 0, false
		}}
		a := simAdapter(t, sim)
		// The first 5 replies are in flight when the proxy starts to
		// fail; 15 more arrive while it does.
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range 20 {
			wg.Go(func() {
				if i >= 5 {
					time.Sleep(time.Duration(i) * 400 * time.Millisecond)
				}
				errs[i] = a.Send(context.Background(), tg(int64(i+1)), []bot.Reply{bot.TextReply(fmt.Sprintf("reply %d", i))})
			})
		}
		wg.Wait()
		extra := 0
		for i := range 20 {
			n := deliveredTimes(sim, i)
			if n == 0 {
				t.Errorf("reply %d never delivered (err %v)", i, errs[i])
			}
			extra += max(n-1, 0)
		}
		// Each of the 5 in flight may be repeated once; then only the
		// probe's message, once per probe (about 6 in 10 s).
		if extra > 5+8 {
			t.Errorf("%d repeated deliveries, want at most the first 5 and one per probe", extra)
		}
		t.Logf("%d repeated deliveries, %d attempts while failing", extra, sim.during)
	})
}

// After about a minute of failures the reply is given up on, with an
// error that says it may have been delivered.
func TestSendGivesUpAfterAboutAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &apiSim{fail: func(time.Duration) (int, bool) { return http.StatusInternalServerError, false }}
		a := simAdapter(t, sim)
		start := time.Now()
		err := a.Send(context.Background(), tg(1), []bot.Reply{bot.TextReply("hi")})
		took := time.Since(start)
		if err == nil {
			t.Fatal("Send succeeded against an API that always fails")
		}
		if took < 55*time.Second || took > 70*time.Second {
			t.Errorf("gave up after %s, want about a minute", took)
		}
		if Temporary(err) {
			t.Errorf("Temporary(%v) after 5xx answers: a retry could repeat it", err)
		}
		if sim.attempts > 20 {
			t.Errorf("%d attempts in a minute, want a backoff", sim.attempts)
		}
	})
}

// A refusal is final at once: 400 and 403 are not retried.
func TestSendRefusalsAreNotRetried(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusForbidden} {
		synctest.Test(t, func(t *testing.T) {
			sim := &apiSim{fail: func(time.Duration) (int, bool) { return code, false }}
			a := simAdapter(t, sim)
			err := a.Send(context.Background(), tg(1), []bot.Reply{bot.TextReply("hi")})
			if err == nil || sim.attempts != 1 {
				t.Errorf("%d: err %v after %d attempts, want one attempt and an error", code, err, sim.attempts)
			}
			if code == http.StatusForbidden && !errors.Is(err, ErrBlocked) {
				t.Errorf("403: %v, want ErrBlocked", err)
			}
		})
	}
}
