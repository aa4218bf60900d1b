package telegram

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram/telegramtest"
)

// twoChats returns two chat IDs; any two chats are handled in parallel.
func twoChats(int) (int64, int64) { return 1001, 1002 }

func runPolling(t *testing.T, a *Adapter) (cancel func() error) {
	t.Helper()
	ctx, stop := context.WithCancel(context.WithoutCancel(testCtx(t)))
	errc := make(chan error, 1)
	go func() { errc <- a.RunPolling(ctx) }()
	var once sync.Once
	var err error
	cancel = func() error {
		once.Do(func() { stop(); err = <-errc })
		return err
	}
	t.Cleanup(func() { _ = cancel() })
	return cancel
}

func TestPollingOrderPerChatParallelAcrossChats(t *testing.T) {
	e := newEnv(t, nil)
	chatA, chatB := twoChats(e.a.opts.Workers)
	ctx := testCtx(t)
	bFirstDone := make(chan struct{})
	var once sync.Once
	e.h.hook = func(ctx context.Context, m bot.Message) error {
		switch m.Text {
		case "A0":
			// Chat A waits for chat B: only parallel handling gets past this.
			select {
			case <-bFirstDone:
			case <-ctx.Done():
				return ctx.Err()
			}
		case "B0":
			once.Do(func() { close(bFirstDone) })
		}
		return nil
	}
	for i := range 5 {
		e.fake.PushText(chatA, fmt.Sprintf("A%d", i))
	}
	for i := range 5 {
		e.fake.PushText(chatB, fmt.Sprintf("B%d", i))
	}
	cancel := runPolling(t, e.a)
	sent, err := e.fake.WaitSent(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := cancel(); err != nil {
		t.Fatalf("RunPolling: %v", err)
	}
	perChat := map[int64][]string{}
	for _, m := range sent {
		perChat[m.ChatID] = append(perChat[m.ChatID], strings.TrimPrefix(m.Text, "echo "))
	}
	for chat, prefix := range map[int64]string{chatA: "A", chatB: "B"} {
		want := []string{prefix + "0", prefix + "1", prefix + "2", prefix + "3", prefix + "4"}
		if got := perChat[chat]; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("chat %s answered in order %v, want %v", prefix, got, want)
		}
	}
}

func TestPollingOffsetNeverPassesUnhandledUpdate(t *testing.T) {
	e := newEnv(t, nil)
	chatA, chatB := twoChats(e.a.opts.Workers)
	ctx := testCtx(t)
	releaseA := make(chan struct{})
	e.h.hook = func(ctx context.Context, m bot.Message) error {
		if untg(m.Chat) == chatA {
			select {
			case <-releaseA:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	idA := e.fake.PushText(chatA, "slow")
	e.fake.PushText(chatB, "b1")
	lastB := e.fake.PushText(chatB, "b2")
	cancel := runPolling(t, e.a)

	if _, err := e.fake.WaitSent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Let the poller fetch again after chat B's updates finished.
	n := len(e.fake.Calls("getUpdates"))
	if _, err := e.fake.WaitCalls(ctx, "getUpdates", n+2); err != nil {
		t.Fatal(err)
	}
	for _, c := range e.fake.Calls("getUpdates") {
		if off, _ := strconv.ParseInt(c.Params["offset"], 10, 64); off > idA {
			t.Errorf("getUpdates offset %d passes unhandled update %d", off, idA)
		}
	}
	if got := e.fake.Confirmed(); got > idA {
		t.Errorf("confirmed up to %d while update %d is unhandled", got, idA)
	}
	if sent := e.fake.Sent(); len(sent) != 2 {
		t.Errorf("sent %d, want 2 (chat B only)", len(sent))
	}

	close(releaseA)
	if _, err := e.fake.WaitSent(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Confirmed(); got != lastB+1 {
		t.Errorf("confirmed offset %d after shutdown, want %d", got, lastB+1)
	}
}

func TestPollingDuplicateSkippedButCallbackAnswered(t *testing.T) {
	coord := &fakeCoord{handled: map[int64]bool{}}
	e := newEnv(t, func(o *Options) { o.Coordinator = coord })
	ctx := testCtx(t)
	// Update 500 was handled by another replica (or before a crash that
	// lost the confirmation); Telegram delivers it again.
	coord.handled[500] = true
	dup := telegramtest.CallbackUpdate(3, "menu")
	dup.ID = 500
	e.fake.Push(dup)
	next := e.fake.PushText(3, "after")
	cancel := runPolling(t, e.a)
	sent, err := e.fake.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := cancel(); err != nil {
		t.Fatal(err)
	}
	if len(e.fake.Sent()) != 1 || sent[0].Text != "echo after" {
		t.Errorf("sent %+v, want only the answer to the new update", e.fake.Sent())
	}
	if got := len(e.fake.Calls("answerCallbackQuery")); got != 1 {
		t.Errorf("%d answerCallbackQuery calls, want 1", got)
	}
	if got := e.fake.Confirmed(); got != next+1 {
		t.Errorf("confirmed %d, want %d", got, next+1)
	}
}

// TestPollingShutdownMidStream cancels while updates keep arriving: every
// update is either answered and confirmed, or neither; a restart answers
// the rest; nothing is answered twice.
func TestPollingShutdownMidStream(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Workers = 4 })
	ctx := testCtx(t)

	var mu sync.Mutex
	pushed := map[int64]string{} // update ID → expected answer
	push := func(i int) {
		text := fmt.Sprintf("m%d", i)
		id := e.fake.PushText(int64(1+i%7), text)
		mu.Lock()
		pushed[id] = "echo " + text
		mu.Unlock()
	}
	stop := make(chan struct{})
	pusherDone := make(chan struct{})
	go func() {
		defer close(pusherDone)
		for i := 0; i < 400; i++ {
			select {
			case <-stop:
				return
			default:
			}
			push(i)
		}
	}()

	cancel := runPolling(t, e.a)
	if _, err := e.fake.WaitSent(ctx, 40); err != nil {
		t.Fatal(err)
	}
	if err := cancel(); err != nil {
		t.Fatalf("RunPolling: %v", err)
	}
	close(stop)
	<-pusherDone

	answers := func() map[string]int {
		n := map[string]int{}
		for _, m := range e.fake.Sent() {
			n[m.Text]++
		}
		return n
	}
	confirmed := e.fake.Confirmed()
	got := answers()
	mu.Lock()
	total := len(pushed)
	for id, want := range pushed {
		switch {
		case got[want] > 1:
			t.Errorf("update %d answered %d times", id, got[want])
		case id < confirmed && got[want] == 0:
			t.Errorf("update %d confirmed but never answered (lost)", id)
		case id >= confirmed && got[want] == 1:
			t.Errorf("update %d answered but not confirmed (would be answered twice)", id)
		}
	}
	mu.Unlock()
	t.Logf("first run answered %d of %d", len(e.fake.Sent()), total)

	// Restart: the unconfirmed rest is delivered and answered.
	a2, err := New(e.options)
	if err != nil {
		t.Fatal(err)
	}
	cancel2 := runPolling(t, a2)
	if _, err := e.fake.WaitSent(ctx, total); err != nil {
		t.Fatal(err)
	}
	if err := cancel2(); err != nil {
		t.Fatal(err)
	}
	got = answers()
	mu.Lock()
	defer mu.Unlock()
	for id, want := range pushed {
		if got[want] != 1 {
			t.Errorf("after restart update %d answered %d times, want 1", id, got[want])
		}
	}
	if p := e.fake.Pending(); p != 0 {
		t.Errorf("%d updates still unconfirmed", p)
	}
}

func TestPollingRejectedToken(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Token = "999:wrong" })
	if err := e.a.RunPolling(testCtx(t)); err == nil {
		t.Fatal("RunPolling with a rejected token returned nil")
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker()
	for _, id := range []int64{10, 12, 15} {
		if !tr.add(id) {
			t.Fatalf("add(%d) = false", id)
		}
	}
	if tr.add(12) {
		t.Error("update 12 added twice")
	}
	tr.finish(12)
	tr.finish(15)
	if got := tr.offset(); got != 0 {
		t.Errorf("offset %d while 10 is unfinished, want 0", got)
	}
	tr.finish(10)
	if got := tr.offset(); got != 16 {
		t.Errorf("offset %d, want 16", got)
	}
}

func TestUpdateID(t *testing.T) {
	for raw, want := range map[string]int64{
		`{"update_id":123,"message":{"text":"x"}}`:     123,
		`{"message":{"text":"x"},"update_id":456}`:     456, // another server's field order
		`{ "update_id" : 789 }`:                        789,
		`{"update_id":99999999999999999999999}`:        0, // too long: not an ID
		`{"message":{}}`:                               0,
		`not json`:                                     0,
		`{"update_id":12,"message":{"update_id":"x"}}`: 12,
	} {
		got, ok := updateID(json.RawMessage(raw))
		if want == 0 && ok || want != 0 && (!ok || got != want) {
			t.Errorf("updateID(%s) = %d, %v; want %d", raw, got, ok, want)
		}
	}
}

// Updates are queued by the chat the handler answers in, or two updates of
// one chat could run at once on two workers.
func TestChatOfMatchesConversion(t *testing.T) {
	e := newEnv(t, nil)
	inaccessible := telegramtest.CallbackUpdate(5, "menu")
	inaccessible.CallbackQuery.Message = models.MaybeInaccessibleMessage{
		Type:                models.MaybeInaccessibleMessageTypeInaccessibleMessage,
		InaccessibleMessage: &models.InaccessibleMessage{Chat: models.Chat{ID: -100, Type: models.ChatTypeSupergroup}},
	}
	inline := telegramtest.CallbackUpdate(5, "menu")
	inline.CallbackQuery.Message = models.MaybeInaccessibleMessage{}
	for name, u := range map[string]models.Update{
		"text":                  telegramtest.TextUpdate(5, "hi"),
		"callback":              telegramtest.CallbackUpdate(5, "menu"),
		"callback, old message": inaccessible,
		"callback, inline":      inline,
	} {
		in, ok := e.a.convert(&u)
		if !ok {
			t.Fatalf("%s: not converted", name)
		}
		if got := chatOf(&u); got != in.chatID {
			t.Errorf("%s: worker chosen by chat %d, handler answers chat %d", name, got, in.chatID)
		}
	}
}
