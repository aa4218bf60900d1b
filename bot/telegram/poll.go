package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot"
)

// allowedUpdates are the update kinds the bot answers; Telegram does not
// even queue the others.
// my_chat_member tells at once that a user blocked the bot (rather than at
// the next reminder's 403) and that it was added to a group.
var allowedUpdates = []string{models.AllowedUpdateMessage, models.AllowedUpdateCallbackQuery, models.AllowedUpdateMyChatMember}

// RunPolling receives updates with getUpdates until ctx is cancelled, then
// finishes the updates in hand within DrainTimeout, confirms those that
// are safe to forget and returns nil. An update is confirmed to Telegram
// (the getUpdates offset moves past it) only once it is handled or held by
// Options.Handoff, and every update fetched before it is too, so a crash
// or restart redelivers or recovers it, never loses it. It returns an
// error only when the token is rejected or the Bot API cannot be reached
// at start.
//
// Without a Handoff (or while it fails, e.g. Redis is down) the offset
// stays at the oldest unfinished update. getUpdates returns at most 100
// updates from the offset, so while one update is unfinished at most 100
// later updates (of any chat) can be in hand: a slow update, such as a
// question whose answer waits up to 15 s for the LLM, then delays other
// chats. Every fetch also returns all the updates still in hand, which
// under load cost more CPU than handling them. With a working Handoff each
// batch is held in one round trip and confirmed by the next fetch, so
// neither limit applies. Webhook mode has neither: each update is its own
// request.
func (a *Adapter) RunPolling(ctx context.Context) error {
	if err := a.identify(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// getUpdates fails with 409 Conflict while a webhook is set.
	info, err := a.webhookInfo(ctx)
	if err == nil {
		a.logWebhookInfo(info, "")
	}
	if err != nil || info.URL != "" {
		if err == nil {
			a.log.Warn("a webhook is set (by a deployment in webhook mode?); deleting it to poll")
		}
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
	}

	// Handling outlives ctx by up to DrainTimeout so updates in hand are
	// answered rather than redelivered.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()

	p := &poller{a: a, tr: newTracker(), s: newSched()}
	a.lastSched.Store(p.s)
	if a.opts.Handoff != nil {
		p.rel = newReleaser(a.opts.Handoff, a.log, a.releaseEvery)
		go p.rel.run()
	}
	var wg sync.WaitGroup
	for range a.opts.Workers {
		wg.Go(func() { p.work(hctx) })
	}

	err = p.fetch(ctx)

	drain := time.AfterFunc(a.opts.DrainTimeout, hcancel)
	defer drain.Stop()
	p.s.close()
	wg.Wait()
	if p.rel != nil {
		p.rel.stop()
	}
	a.confirm(ctx, p.tr.offset())
	return err
}

// poller is the state of one RunPolling.
type poller struct {
	a         *Adapter
	tr        *tracker
	s         *sched
	rel       *releaser // nil without a Handoff
	recovered bool      // held updates of an earlier run were dispatched
	// redelivered holds the updates recovered at start that Telegram may
	// deliver again (they were held but not yet confirmed when the
	// earlier run ended); such a copy is skipped, and counted as finished
	// in fetch order. Cleared once fetches pass the highest.
	redelivered map[int64]bool
	maxRedeliv  int64
	holding     bool // the last HoldUpdates worked (to log changes, not every failure)
}

// job is an update for a worker. held: it is in the Handoff, so once
// handled it is released there; otherwise the tracker lets the offset pass
// it.
type job struct {
	in   incoming
	held bool
}

// work is one worker: it handles the updates sched gives it, a chat at a
// time, until sched is closed and drained.
func (p *poller) work(ctx context.Context) {
	for {
		chat, take, ok := p.s.next()
		if !ok {
			return
		}
		if take[0].j == nil {
			p.readBack(ctx, chat, take)
			p.s.done(chat)
			continue
		}
		j := take[0].j
		out := p.a.processMessage(ctx, j.in, nil)
		p.a.count(j.in.kind, out)
		if out != outcomeAborted { // else it stays held, or unconfirmed
			p.finish(j.in.updateID, j.held)
		}
		p.s.done(chat)
	}
}

// finish lets an update go: released from the Handoff, or passed by the
// offset.
func (p *poller) finish(id int64, held bool) {
	if held {
		p.rel.add(id)
	} else {
		p.tr.finish(id)
	}
}

// readBack reads spilled updates of chat from the Handoff and puts them
// back at the head of the chat's queue. While the Handoff fails they stay
// spilled, and the chat waits; an update that is no longer held, or
// cannot be opened, is dropped with a warning.
func (p *poller) readBack(ctx context.Context, chat int64, take []entry) {
	a := p.a
	ids := make([]int64, len(take))
	for i, e := range take {
		ids[i] = e.id
	}
	found := make(map[int64]incoming, len(take))
	dropped := make(map[int64]bool)
	err := a.opts.Handoff.ReadUpdates(ctx, ids, func(id int64, at time.Time, raw []byte) {
		u, err := a.openHeld(id, raw)
		if err != nil {
			a.log.Warn("drop held update that cannot be opened", "update_id", id)
			dropped[id] = true
			return
		}
		in, ok := a.convert(u)
		if !ok {
			a.count(in.kind, outcomeIgnored)
			dropped[id] = true
			return
		}
		in.msg.Time = at
		found[id] = in
	})
	if err != nil {
		a.log.Warn("read back held updates; the chat waits", "n", len(ids), "err", err)
		p.s.putFront(chat, take)
		_ = a.sleep(ctx, a.firstBackoff) // a pause before the chat's next try; ctx only ends it early
		return
	}
	back := make([]entry, 0, len(take))
	for _, e := range take {
		in, ok := found[e.id]
		if !ok {
			if !dropped[e.id] {
				a.log.Warn("held update vanished before it was handled", "update_id", e.id)
			}
			p.rel.add(e.id)
			continue
		}
		in.msg.Limited = e.notice
		back = append(back, entry{j: &job{in: in, held: true}, id: e.id, notice: e.notice})
	}
	p.s.putFront(chat, back)
}

// fetch runs the getUpdates loop: each batch is converted, checked against
// the per-user rate limit, held, and queued by chat.
func (p *poller) fetch(ctx context.Context) error {
	a, tr := p.a, p.tr
	p.holding = true
	if a.opts.Handoff != nil && !p.recover(ctx) && ctx.Err() != nil {
		return nil
	}
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

		fresh := updates[:0]
		for _, u := range updates {
			id := u.u.ID
			if !tr.add(id) {
				continue
			}
			if p.redelivered[id] {
				// Recovered from the hand-off and dispatched already.
				tr.finish(id)
				continue
			}
			fresh = append(fresh, u)
		}
		if len(updates) > 0 && updates[len(updates)-1].u.ID >= p.maxRedeliv {
			p.redelivered = nil
		}
		if !p.take(ctx, fresh) {
			return nil // not queued: held or unfinished, hence unconfirmed
		}
		if len(updates) > 0 && len(fresh) == 0 {
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

// take handles one batch of fresh updates: it asks the rate limit about
// those the bot would answer, holds them, lets the others go, and queues
// the rest by chat. It never waits on a chat; it
// returns false only when ctx ended while the queues were full.
func (p *poller) take(ctx context.Context, fresh []fetched) bool {
	a := p.a
	type item struct {
		in incoming
		ok bool
		v  bot.Verdict
	}
	items := make([]item, len(fresh))
	var users []string
	var asked []int
	for i, f := range fresh {
		if f.quiet {
			items[i] = item{in: incoming{updateID: f.u.ID, kind: "unread"}, ok: true, v: bot.Skip}
			continue
		}
		in, ok := a.convert(f.u)
		items[i] = item{in: in, ok: ok}
		if ok && a.opts.Limit != nil {
			users = append(users, limitKey(in.msg))
			asked = append(asked, i)
		}
	}
	// The limit is asked while the batch is held, so the two round trips
	// overlap; what the limit then skips is released again at once.
	var verdicts []bot.Verdict
	var asking sync.WaitGroup
	if len(users) > 0 {
		asking.Go(func() { verdicts = a.opts.Limit.Check(ctx, users, a.now()) })
	}
	keep := make([]fetched, 0, len(fresh))
	for i, it := range items {
		if it.ok && !fresh[i].quiet {
			keep = append(keep, fresh[i])
		}
	}
	held := p.hold(ctx, keep)
	asking.Wait()
	for k, v := range verdicts {
		items[asked[k]].v = v
	}
	if held && !p.recovered {
		// The Handoff works again: pick up what an earlier run left.
		p.recover(ctx)
	}
	for i, it := range items {
		id := it.in.updateID
		switch {
		case fresh[i].u.MyChatMember != nil:
			a.count("member", a.chatMember(ctx, fresh[i].u.MyChatMember))
			p.tr.finish(id)
		case !it.ok:
			a.count(it.in.kind, outcomeIgnored)
			p.tr.finish(id)
		case it.v == bot.Skip:
			a.count(it.in.kind, outcomeLimited)
			if held && !fresh[i].quiet {
				p.rel.add(id) // held with its batch
			} else {
				p.tr.finish(id)
			}
		default:
			it.in.msg.Limited = it.v == bot.Notify
			if !p.queue(ctx, job{in: it.in, held: held}) {
				return false
			}
		}
	}
	return true
}

// queue gives j to sched; false when ctx ended while waiting for room.
func (p *poller) queue(ctx context.Context, j job) bool {
	switch p.s.add(ctx, j.in.chatID, j) {
	case overflowed:
		p.a.log.Warn("chat has too many updates waiting; dropping one", "update_id", j.in.updateID, "waiting", maxPerChat)
		p.a.count(j.in.kind, outcomeOverflow)
		p.finish(j.in.updateID, j.held)
	case cancelled:
		return false
	}
	return true
}

// limitKey is the identity the rate limit counts a message against: its
// sender, or the chat for a message without one.
func limitKey(m bot.Message) string {
	if m.User != "" {
		return m.User
	}
	return "tg:chat" + bot.Local(m.Chat)
}

// hold puts freshly fetched updates into the Handoff; true when they are
// held there (the tracker then lets the offset pass them at once).
func (p *poller) hold(ctx context.Context, fresh []fetched) bool {
	h := p.a.opts.Handoff
	if h == nil || len(fresh) == 0 {
		return false
	}
	raw := make(map[int64][]byte, len(fresh))
	for _, u := range fresh {
		raw[u.u.ID] = p.a.sealer.seal(u.u.ID, u.raw)
	}
	err := h.HoldUpdates(ctx, p.a.now(), raw)
	switch {
	case err != nil && p.holding:
		p.a.log.Warn("hold updates; confirming them only once handled", "err", err)
	case err == nil && !p.holding:
		p.a.log.Info("holding updates again")
	}
	p.holding = err == nil
	if err != nil {
		return false
	}
	for _, u := range fresh {
		p.tr.finish(u.u.ID)
	}
	return true
}

// heldMaxAge mirrors Telegram, which keeps an unconfirmed update for 24 h:
// a held update older than that is dropped, not answered a day late.
const heldMaxAge = 24 * time.Hour

// recover dispatches the updates an earlier run left held (it crashed or
// its drain ran out) before any new update, and reports whether the
// Handoff could be read; if not, fetch tries again after the next HoldUpdates
// that works.
func (p *poller) recover(ctx context.Context) bool {
	a := p.a
	// Held updates at or after the first one fetched in this run are in
	// hand already: either this run held them, or an earlier run did and
	// Telegram delivered them again because they were not confirmed.
	// Their workers release them (or, unless this run held them, the
	// next start finds them answered).
	first := p.tr.first()
	var jobs []job
	var drop []int64
	err := a.opts.Handoff.HeldUpdates(ctx, func(id int64, at time.Time, raw []byte) {
		if first != 0 && id >= first {
			return
		}
		if a.now().Sub(at) > heldMaxAge {
			drop = append(drop, id)
			return
		}
		u, err := a.openHeld(id, raw)
		if err != nil {
			// A changed token, or an entry not written by this code.
			a.log.Warn("drop held update that cannot be opened", "update_id", id)
			drop = append(drop, id)
			return
		}
		in, ok := a.convert(u)
		if !ok {
			a.count(in.kind, outcomeIgnored)
			drop = append(drop, id)
			return
		}
		in.msg.Time = at
		jobs = append(jobs, job{in: in, held: true})
	})
	if err != nil {
		a.log.Warn("read held updates; trying again later", "err", err)
		return false
	}
	p.recovered = true
	if len(jobs)+len(drop) > 0 {
		a.log.Info("recovered held updates", "to_handle", len(jobs), "dropped", len(drop))
	}
	for _, id := range drop {
		p.rel.add(id)
	}
	if first == 0 && len(jobs) > 0 {
		// Telegram may still have some of them. The offset is not moved
		// past them here: an older update that was neither held nor
		// handled may sit below them in Telegram's queue.
		p.redelivered = make(map[int64]bool, len(jobs))
		for _, j := range jobs {
			p.redelivered[j.in.updateID] = true
		}
		p.maxRedeliv = jobs[len(jobs)-1].in.updateID
	}
	for _, j := range jobs {
		if !p.queue(ctx, j) {
			break // still held: the next run recovers them
		}
	}
	return true
}

// openHeld decrypts and decodes a held update.
func (a *Adapter) openHeld(id int64, raw []byte) (*models.Update, error) {
	opened, err := a.sealer.open(id, raw)
	if err != nil {
		return nil, err
	}
	u := new(models.Update)
	if err := json.Unmarshal(opened, u); err != nil {
		return nil, err
	}
	if u.ID != id {
		return nil, errors.New("held update under another ID")
	}
	return u, nil
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

// tracker remembers the fetched updates in fetch order and which of them
// are finished; the offset to confirm is one past the longest finished
// prefix. Update IDs have gaps, so "contiguous" means in fetch order.
type tracker struct {
	mu       sync.Mutex
	order    []int64
	done     map[int64]bool
	base     int64 // next getUpdates offset; 0 until something is finished
	maxSeen  int64
	firstID  int64
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
	if t.firstID == 0 {
		t.firstID = id
	}
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

// first is the first update fetched in this run, 0 before any.
func (t *tracker) first() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.firstID
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
// fetched is an update from getUpdates with its JSON as Telegram sent it
// (what the Handoff holds).
type fetched struct {
	u     *models.Update
	raw   json.RawMessage
	quiet bool // its sender is refused by the rate limit; not decoded
}

// Updates for which skip returns true are returned with their ID only.
func (a *Adapter) getUpdates(ctx context.Context, offset int64, limit int, wait time.Duration, skip func(id int64) bool) ([]fetched, error) {
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
	updates := make([]fetched, 0, len(raws))
	for _, raw := range raws {
		id, ok := updateID(raw)
		if !ok {
			continue
		}
		if skip != nil && skip(id) {
			// Still in hand: while an unfinished update pins the offset,
			// every fetch returns it again, and decoding it each time
			// cost a fifth of the CPU under load.
			updates = append(updates, fetched{u: &models.Update{ID: id}})
			continue
		}
		if a.quiet(raw) {
			// A flood: most of a getUpdates batch can be one user's.
			updates = append(updates, fetched{u: &models.Update{ID: id}, quiet: true})
			continue
		}
		u := new(models.Update)
		if err := json.Unmarshal(raw, u); err != nil {
			// Keep only the ID: the update is then ignored and confirmed
			// instead of failing every later getUpdates.
			a.log.Warn("undecodable update", "err", err)
			u = &models.Update{ID: id}
		}
		updates = append(updates, fetched{u: u, raw: raw})
	}
	return updates, nil
}

// quiet reports whether the sender of a raw update is refused by the rate
// limit right now (see Limit.Quiet).
func (a *Adapter) quiet(raw []byte) bool {
	if a.opts.Limit == nil {
		return false
	}
	id, ok := senderID(raw)
	return ok && a.opts.Limit.Quiet("tg:"+strconv.FormatInt(id, 10), a.now())
}

// senderID finds who sent a raw update without decoding it: the user of
// its only `"from":{"id":`. That is the sender of a message or a button
// press; an update with more than one (a reply, a forward) is not
// guessed at. Inside a JSON string the quotes would be escaped, so text
// cannot fake it.
func senderID(raw []byte) (int64, bool) {
	pat := []byte(`"from":{"id":`)
	i := bytes.Index(raw, pat)
	if i < 0 || bytes.Index(raw[i+len(pat):], pat) >= 0 {
		return 0, false
	}
	var n int64
	digits := 0
	for _, c := range raw[i+len(pat):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	if digits == 0 || digits > 18 {
		return 0, false
	}
	return n, true
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
