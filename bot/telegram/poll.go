package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

// allowedUpdates are the update kinds the bot answers; Telegram does not
// even queue the others.
var allowedUpdates = []string{models.AllowedUpdateMessage, models.AllowedUpdateCallbackQuery}

// RunPolling receives updates with getUpdates until ctx is cancelled, then
// finishes the updates in hand within DrainTimeout, confirms those that
// were handled and returns nil. An update is confirmed to Telegram (the
// getUpdates offset moves past it) only once it and every update fetched
// before it were handled, so a crash or restart redelivers, never loses.
// It returns an error only when the token is rejected or the Bot API
// cannot be reached at start.
//
// The price of that guarantee: the offset stays at the oldest unfinished
// update, and getUpdates returns at most 100 updates from the offset, so
// while one update is unfinished at most 100 later updates (of any chat)
// can be in hand. A slow update, such as a question whose answer waits up
// to 15 s for the LLM, delays the handling of other chats' updates once
// 100 have arrived behind it. Webhook mode has no such limit: each update
// is its own request.
func (a *Adapter) RunPolling(ctx context.Context) error {
	if err := a.identify(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// getUpdates fails with 409 Conflict while a webhook is set.
	err := a.call(ctx, "deleteWebhook", viaLibrary(func(ctx context.Context) error {
		_, err := a.tg.DeleteWebhook(ctx, &tgbot.DeleteWebhookParams{})
		return err
	}))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("delete webhook before polling", "err", err)
	}

	// Handling outlives ctx by up to DrainTimeout so updates in hand are
	// answered rather than redelivered.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()

	tr := newTracker()
	queues := make([]chan *models.Update, a.opts.Workers)
	var wg sync.WaitGroup
	for i := range queues {
		q := make(chan *models.Update, 64)
		queues[i] = q
		wg.Go(func() {
			for u := range q {
				if a.process(hctx, u) != outcomeAborted {
					tr.finish(u.ID)
				}
			}
		})
	}

	err = a.fetch(ctx, tr, queues)

	drain := time.AfterFunc(a.opts.DrainTimeout, hcancel)
	defer drain.Stop()
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	a.confirm(ctx, tr.offset())
	return err
}

// fetch runs the getUpdates loop and dispatches each update to the worker
// of its chat, so one chat's updates are handled in order.
func (a *Adapter) fetch(ctx context.Context, tr *tracker, queues []chan *models.Update) error {
	backoff := a.firstBackoff
	for ctx.Err() == nil {
		offset, advanced := tr.state()
		updates, err := a.getUpdates(ctx, offset, 100, a.pollTimeout, tr.inHand)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, tgbot.ErrorUnauthorized) || errors.Is(err, tgbot.ErrorNotFound) {
				return fmt.Errorf("poll telegram: %w", err)
			}
			wait := backoff
			backoff = min(2*backoff, a.maxBackoff)
			var tooMany *tgbot.TooManyRequestsError
			if errors.As(err, &tooMany) {
				wait = time.Duration(max(tooMany.RetryAfter, 1)) * time.Second
			}
			a.log.Warn("get updates", "err", err, "retry_in", wait)
			if a.sleep(ctx, wait) != nil {
				return nil
			}
			continue
		}
		backoff = a.firstBackoff

		fresh := 0
		for _, u := range updates {
			if !tr.add(u.ID) {
				continue // still in hand from an earlier fetch
			}
			fresh++
			select {
			case queues[workerFor(chatOf(u), len(queues))] <- u:
			case <-ctx.Done():
				return nil // u stays unfinished, hence unconfirmed
			}
		}
		if len(updates) > 0 && fresh == 0 {
			// An unfinished update pins the offset, so Telegram answers at
			// once with updates already in hand. Ask again when the
			// offset moves, or after a pause to pick up other chats'
			// new updates.
			t := time.NewTimer(a.pinnedInterval)
			select {
			case <-advanced:
				// Under load the offset moves many times a second, and
				// each fetch returns every update still in hand; a short
				// gap between such fetches bounds that waste.
				t.Reset(a.pinnedGap)
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
	return nil
}

// confirm tells Telegram which updates were handled: getUpdates with a
// higher offset drops the updates below it from Telegram's queue.
func (a *Adapter) confirm(ctx context.Context, offset int64) {
	if offset == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.confirmTimeout)
	defer cancel()
	if _, err := a.getUpdates(ctx, offset, 1, 0, nil); err != nil {
		a.log.Warn("confirm handled updates", "err", err)
	}
}

func workerFor(chatID int64, n int) int {
	h := uint64(chatID) * 0x9E3779B97F4A7C15 // Fibonacci hashing spreads sequential IDs
	return int((h >> 32) % uint64(n))
}

// tracker remembers the fetched updates in fetch order and which of them
// are finished; the offset to confirm is one past the longest finished
// prefix. Update IDs have gaps, so "contiguous" means in fetch order.
type tracker struct {
	mu       sync.Mutex
	order    []int64
	done     map[int64]bool
	base     int64 // next getUpdates offset; 0 until something is finished
	maxSeen  int64
	advanced chan struct{} // closed when base moves
}

func newTracker() *tracker {
	return &tracker{done: make(map[int64]bool), advanced: make(chan struct{})}
}

// add registers a fetched update; false when it is already known.
func (t *tracker) add(id int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id <= t.maxSeen {
		return false
	}
	t.maxSeen = id
	t.order = append(t.order, id)
	return true
}

// inHand reports whether id was fetched before (it is being handled or
// was already).
func (t *tracker) inHand(id int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return id <= t.maxSeen
}

func (t *tracker) finish(id int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done[id] = true
	moved := false
	for len(t.order) > 0 && t.done[t.order[0]] {
		delete(t.done, t.order[0])
		t.base = t.order[0] + 1
		t.order = t.order[1:]
		moved = true
	}
	if moved {
		close(t.advanced)
		t.advanced = make(chan struct{})
	}
}

func (t *tracker) state() (offset int64, advanced <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.base, t.advanced
}

func (t *tracker) offset() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.base
}

type getUpdatesParams struct {
	Offset         int64    `json:"offset,omitempty"`
	Limit          int      `json:"limit,omitempty"`
	Timeout        int      `json:"timeout"`
	AllowedUpdates []string `json:"allowed_updates"`
}

type apiResponse struct {
	OK          bool   `json:"ok"`
	Result      any    `json:"result"` // a pointer to decode into
	ErrorCode   int    `json:"error_code"`
	Description string `json:"description"`
	Parameters  struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// getUpdates is called directly because the library's loop is unexported
// and confirms updates before they are handled.
//
// Updates for which skip returns true are returned with their ID only.
func (a *Adapter) getUpdates(ctx context.Context, offset int64, limit int, wait time.Duration, skip func(id int64) bool) ([]*models.Update, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+a.callTimeout)
	defer cancel()
	var raws []json.RawMessage
	status, err := a.postJSON(ctx, "getUpdates", getUpdatesParams{
		Offset: offset, Limit: limit, Timeout: int(wait / time.Second), AllowedUpdates: allowedUpdates,
	}, &raws)
	if err != nil {
		a.apiError("getUpdates", status, err)
		return nil, err
	}
	updates := make([]*models.Update, 0, len(raws))
	for _, raw := range raws {
		id, ok := updateID(raw)
		if !ok {
			continue
		}
		if skip != nil && skip(id) {
			// Still in hand: while an unfinished update pins the offset,
			// every fetch returns it again, and decoding it each time
			// cost a fifth of the CPU under load.
			updates = append(updates, &models.Update{ID: id})
			continue
		}
		u := new(models.Update)
		if err := json.Unmarshal(raw, u); err != nil {
			// Keep only the ID: the update is then ignored and confirmed
			// instead of failing every later getUpdates.
			a.log.Warn("undecodable update", "err", err)
			u = &models.Update{ID: id}
		}
		updates = append(updates, u)
	}
	return updates, nil
}

// updateID reads an update's update_id. Telegram writes it first, so the
// common case needs no full parse.
func updateID(raw json.RawMessage) (int64, bool) {
	const head = `{"update_id":`
	if bytes.HasPrefix(raw, []byte(head)) {
		var n int64
		digits := 0
		for _, c := range raw[len(head):] {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int64(c-'0')
			digits++
		}
		if digits > 0 && digits < 19 {
			return n, true
		}
	}
	var v struct {
		ID int64 `json:"update_id"`
	}
	if json.Unmarshal(raw, &v) != nil || v.ID == 0 {
		return 0, false
	}
	return v.ID, true
}
