package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// memHandoff is an in-memory Handoff; fail makes every call fail, like a
// Redis that is down.
type memHandoff struct {
	mu    sync.Mutex
	held  map[int64]memHeld
	fail  bool
	holds int
	reads int // ReadUpdates calls
}

type memHeld struct {
	at  time.Time
	raw []byte
}

var errHandoffDown = errors.New("handoff down")

func newMemHandoff() *memHandoff { return &memHandoff{held: map[int64]memHeld{}} }

func (m *memHandoff) HoldUpdates(_ context.Context, at time.Time, updates map[int64][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errHandoffDown
	}
	m.holds++
	for id, raw := range updates {
		m.held[id] = memHeld{at: at, raw: slices.Clone(raw)}
	}
	return nil
}

func (m *memHandoff) ReleaseUpdates(_ context.Context, ids []int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errHandoffDown
	}
	for _, id := range ids {
		delete(m.held, id)
	}
	return nil
}

func (m *memHandoff) HeldUpdates(_ context.Context, yield func(id int64, at time.Time, raw []byte)) error {
	m.mu.Lock()
	if m.fail {
		m.mu.Unlock()
		return errHandoffDown
	}
	held := maps.Clone(m.held)
	m.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(held)) {
		yield(id, held[id].at, held[id].raw)
	}
	return nil
}

func (m *memHandoff) ReadUpdates(_ context.Context, ids []int64, yield func(id int64, at time.Time, raw []byte)) error {
	m.mu.Lock()
	if m.fail {
		m.mu.Unlock()
		return errHandoffDown
	}
	m.reads++
	found := map[int64]memHeld{}
	for _, id := range ids {
		if h, ok := m.held[id]; ok {
			found[id] = h
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		if h, ok := found[id]; ok {
			yield(id, h.at, h.raw)
		}
	}
	return nil
}

func (m *memHandoff) ids() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.held))
}

// put holds a text update as an adapter with sealer s would.
func (m *memHandoff) put(t *testing.T, s *sealer, id int64, at time.Time, chatID int64, text string) {
	t.Helper()
	u := telegramtest.TextUpdate(chatID, text)
	u.ID = id
	raw, err := json.Marshal(&u)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.held[id] = memHeld{at: at, raw: s.seal(id, raw)}
	m.mu.Unlock()
}

func (m *memHandoff) stored() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for _, h := range m.held {
		out = append(out, h.raw)
	}
	return out
}

// waitFor polls cond until it holds; the test context bounds the wait.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// pollUntilConfirmed runs polling until sent replies went out and the
// offset passed update last, then stops it.
func pollUntilConfirmed(ctx context.Context, t *testing.T, e *env, sent int, last int64) {
	t.Helper()
	cancel := runPolling(t, e.a)
	if _, err := e.fake.WaitSent(ctx, sent); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the offset to pass the last update", func() bool { return e.fake.Confirmed() > last })
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
}

// blockOn makes the handler wait on text until release is called (or its
// context ends).
func blockOn(e *env, text string) (release func()) {
	gate := make(chan struct{})
	var once sync.Once
	e.h.hook = func(ctx context.Context, m bot.Message) error {
		if m.Text != text {
			return nil
		}
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return func() { once.Do(func() { close(gate) }) }
}

// With a hand-off, a slow update no longer pins the getUpdates offset:
// Telegram may forget it while it is handled, because it is held.
func TestHandoffConfirmsHeldUpdatesBeforeHandling(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h })
	ctx := testCtx(t)
	release := blockOn(e, "slow")
	slow := e.fake.PushText(1, "slow")
	cancel := runPolling(t, e.a)

	later := e.fake.PushText(2, "quick")
	if _, err := e.fake.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the offset to pass the slow update", func() bool { return e.fake.Confirmed() > later })
	if got := h.ids(); !slices.Contains(got, slow) {
		t.Fatalf("held %v while the slow update %d is handled, want it held", got, slow)
	}

	release()
	if _, err := e.fake.WaitSent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	if got := h.ids(); len(got) != 0 {
		t.Errorf("still held after handling: %v", got)
	}
	if n := len(e.fake.Sent()); n != 2 {
		t.Errorf("%d replies, want 2", n)
	}
}

// An update still in hand when the process stops (the drain ran out) was
// already confirmed to Telegram; the next run answers it from the
// hand-off, once.
func TestHandoffRestartAnswersWhatWasHeld(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h; o.DrainTimeout = 20 * time.Millisecond })
	ctx := testCtx(t)
	blockOn(e, "stuck") // never released in the first run
	stuck := e.fake.PushText(1, "stuck")
	e.fake.PushText(2, "fine")
	cancel := runPolling(t, e.a)
	if _, err := e.fake.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the offset to pass the stuck update", func() bool { return e.fake.Confirmed() > stuck })
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	if p := e.fake.Pending(); p != 0 {
		t.Fatalf("Telegram still has %d updates; the test needs them confirmed", p)
	}
	if got := h.ids(); !slices.Equal(got, []int64{stuck}) {
		t.Fatalf("held after the first run: %v, want [%d]", got, stuck)
	}

	e.h.hook = nil
	a2, err := New(e.options)
	if err != nil {
		t.Fatal(err)
	}
	cancel2 := runPolling(t, a2)
	sent, err := e.fake.WaitSent(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := cancel2(); err != nil {
		t.Fatal(err)
	}
	if sent[1].Text != "echo stuck" || sent[1].ChatID != 1 {
		t.Errorf("second run sent %+v, want the answer to the stuck update", sent[1])
	}
	if n := len(e.fake.Sent()); n != 2 {
		t.Errorf("%d replies in all, want 2 (each update answered once)", n)
	}
	if got := h.ids(); len(got) != 0 {
		t.Errorf("still held: %v", got)
	}
}

// A crash between holding a batch and confirming it leaves the updates both
// held and with Telegram: each is answered once.
func TestHandoffHeldAndRedeliveredAnsweredOnce(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h })
	ctx := testCtx(t)
	id := e.fake.PushText(4, "twice?")
	h.put(t, e.a.sealer, id, e.options.Now(), 4, "twice?")
	next := e.fake.PushText(4, "next")
	pollUntilConfirmed(ctx, t, e, 2, next)
	var texts []string
	for _, m := range e.fake.Sent() {
		texts = append(texts, m.Text)
	}
	if !slices.Equal(texts, []string{"echo twice?", "echo next"}) {
		t.Errorf("sent %q, want each update answered once, in order", texts)
	}
}

// Telegram keeps an update for 24 hours; a held update older than that is
// dropped rather than answered a day late.
func TestHandoffDropsDayOldUpdates(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h })
	ctx := testCtx(t)
	h.put(t, e.a.sealer, 5, e.options.Now().Add(-25*time.Hour), 9, "yesterday")
	h.put(t, e.a.sealer, 6, e.options.Now().Add(-time.Hour), 9, "an hour ago")
	cancel := runPolling(t, e.a)
	if _, err := e.fake.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the hand-off to empty", func() bool { return len(h.ids()) == 0 })
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	sent := e.fake.Sent()
	if len(sent) != 1 || sent[0].Text != "echo an hour ago" {
		t.Errorf("sent %+v, want only the answer to the recent update", sent)
	}
}

// While the hand-off fails, polling works as without one: an update is
// confirmed only once it and everything before it was handled.
func TestHandoffDownFallsBackToConfirmAfterHandling(t *testing.T) {
	h := newMemHandoff()
	h.fail = true
	e := newEnv(t, func(o *Options) { o.Handoff = h })
	ctx := testCtx(t)
	release := blockOn(e, "slow")
	slow := e.fake.PushText(1, "slow")
	cancel := runPolling(t, e.a)
	quick := e.fake.PushText(2, "quick")
	if _, err := e.fake.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Confirmed(); got > slow {
		t.Fatalf("confirmed up to %d while update %d is unfinished and not held", got, slow)
	}
	release()
	if _, err := e.fake.WaitSent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Confirmed(); got != quick+1 {
		t.Errorf("confirmed %d after the drain, want %d", got, quick+1)
	}
	if !strings.Contains(e.logs.String(), `"msg":"hold updates`) {
		t.Error("no warning that updates could not be held")
	}
}

// What Redis stores is ciphertext: an ID number typed during /verify never
// reaches its disk in the clear.
func TestHandoffHoldsNoPlainText(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h })
	ctx := testCtx(t)
	const secret = "110105198803120014"
	release := blockOn(e, secret)
	id := e.fake.PushText(3, secret)
	cancel := runPolling(t, e.a)
	waitFor(ctx, t, "the update to be held", func() bool { return slices.Contains(h.ids(), id) })
	for _, raw := range h.stored() {
		if strings.Contains(string(raw), secret) || strings.Contains(string(raw), "update_id") {
			t.Errorf("held in the clear: %q", raw)
		}
	}
	release()
	if _, err := e.fake.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
}

// Updates held under another token (it was changed, or the entry was
// tampered with) are dropped with a warning, never answered.
func TestHandoffDropsWhatItCannotOpen(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h })
	ctx := testCtx(t)
	other, err := newSealer("123:another-token")
	if err != nil {
		t.Fatal(err)
	}
	h.put(t, other, 5, e.options.Now(), 9, "old token")
	h.put(t, e.a.sealer, 6, e.options.Now(), 9, "this token")
	h.mu.Lock()
	forged := h.held[6]
	h.held[7] = forged // a valid ciphertext under another update's ID
	h.mu.Unlock()
	cancel := runPolling(t, e.a)
	if _, err := e.fake.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the hand-off to empty", func() bool { return len(h.ids()) == 0 })
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	if sent := e.fake.Sent(); len(sent) != 1 || sent[0].Text != "echo this token" {
		t.Errorf("sent %+v, want only the update sealed with this token", sent)
	}
	if n := strings.Count(e.logs.String(), "drop held update that cannot be opened"); n != 2 {
		t.Errorf("%d warnings about unopenable updates, want 2", n)
	}
}

// An earlier run could not hold Y (Redis blipped) and was still handling
// it, so Y pinned the offset, when it held Z and crashed. The next run
// recovers Z and must still get Y from Telegram: both answered, once.
func TestHandoffRecoveryKeepsUnheldOlderUpdates(t *testing.T) {
	h := newMemHandoff()
	e := newEnv(t, func(o *Options) { o.Handoff = h })
	ctx := testCtx(t)
	y := e.fake.PushText(1, "Y")
	z := e.fake.PushText(2, "Z")
	h.put(t, e.a.sealer, z, e.options.Now(), 2, "Z")
	pollUntilConfirmed(ctx, t, e, 2, z)
	n := map[string]int{}
	for _, m := range e.fake.Sent() {
		n[m.Text]++
	}
	if n["echo Y"] != 1 || n["echo Z"] != 1 || len(e.fake.Sent()) != 2 {
		t.Errorf("sent %v, want Y (update %d) and Z (update %d) answered once each", n, y, z)
	}
}

// When the hand-off starts working mid-run, the recovery that follows must
// not release what this run has just held and confirmed: the update is
// still being handled.
func TestHandoffLateRecoveryKeepsThisRunsHolds(t *testing.T) {
	h := newMemHandoff()
	h.fail = true
	e := newEnv(t, func(o *Options) { o.Handoff = h })
	ctx := testCtx(t)
	release := blockOn(e, "slow")
	e.fake.PushText(1, "early")
	cancel := runPolling(t, e.a)
	if _, err := e.fake.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.fail = false
	h.mu.Unlock()
	slow := e.fake.PushText(2, "slow")
	waitFor(ctx, t, "the slow update confirmed", func() bool { return e.fake.Confirmed() > slow })
	// Give a wrong release time to happen: the releaser flushes every
	// releaseEvery, so wait for two flushes of an unrelated update.
	other := e.fake.PushText(3, "other")
	if _, err := e.fake.WaitSent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the other update released", func() bool { return !slices.Contains(h.ids(), other) })
	if got := h.ids(); !slices.Contains(got, slow) {
		t.Fatalf("held %v while update %d is confirmed and still being handled: a crash now would lose it", got, slow)
	}
	release()
	if _, err := e.fake.WaitSent(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
}

// recordingHandoff fails the first failures ReleaseUpdates calls and
// records the size of every call.
type recordingHandoff struct {
	memHandoff
	failures int
	calls    []int
	released int
}

func (r *recordingHandoff) ReleaseUpdates(_ context.Context, ids []int64) error {
	r.calls = append(r.calls, len(ids))
	if r.failures > 0 {
		r.failures--
		return errHandoffDown
	}
	r.released += len(ids)
	return nil
}

// A backlog of releases (after an outage) goes out in bounded chunks, and
// what failed is kept and sent again.
func TestReleaserRetriesInChunks(t *testing.T) {
	h := &recordingHandoff{failures: 1}
	r := newReleaser(h, slog.New(slog.DiscardHandler), time.Hour)
	for id := range int64(3000) {
		r.add(id + 1)
	}
	r.flush()
	if h.released != 0 || len(r.pending) != 3000 {
		t.Fatalf("after a failed release: released %d, pending %d; want 0 and 3000", h.released, len(r.pending))
	}
	r.flush()
	if h.released != 3000 || len(r.pending) != 0 {
		t.Errorf("after the retry: released %d, pending %d; want 3000 and 0", h.released, len(r.pending))
	}
	for _, n := range h.calls {
		if n > 4*releaseBatch {
			t.Errorf("one release call carried %d IDs, want at most %d", n, 4*releaseBatch)
		}
	}
}
