package wechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shebao/shebao/bot"
)

// DefaultAPIURL is WeChat's API, used when Options.APIURL is empty.
const DefaultAPIURL = "https://api.weixin.qq.com"

// channel names this adapter's held messages and parked chats in the
// Store.
const channel = bot.ChannelWeChat

// Store is what the adapter keeps in the storage all replicas share
// (bot/redisstore implements it).
type Store interface {
	Values
	Inbox
	Outbox
}

// Values are small shared values with a lifetime: the access token and
// the lock of its refresh, a chat's reply window and numbered choices, a
// user's subscription.
type Values interface {
	Value(ctx context.Context, name string) (val string, ok bool, err error)
	// SetValue with onlyNew stores nothing when a value is there and
	// reports whether it stored (a lock).
	SetValue(ctx context.Context, name, val string, ttl time.Duration, onlyNew bool) (bool, error)
	// DeleteValue deletes the value if it is ifVal ("" for any value).
	DeleteValue(ctx context.Context, name, ifVal string) (bool, error)
}

// Inbox holds the messages acknowledged and not yet handled.
type Inbox interface {
	// HoldMessage reports false, storing nothing, when id is held already.
	HoldMessage(ctx context.Context, channel, id string, at time.Time, raw []byte) (bool, error)
	ReleaseMessage(ctx context.Context, channel, id string) error
	HeldMessages(ctx context.Context, channel string, yield func(id string, at time.Time, raw []byte)) error
}

// Outbox queues each chat's replies until they are sent, so that an
// outage of WeChat's API loses none that can still be sent.
type Outbox interface {
	// Queue appends an update's replies and marks the update queued.
	Queue(ctx context.Context, chat string, update int64, parts [][]byte) error
	Queued(ctx context.Context, chat string, update int64) (bool, error)
	// PopPart takes the oldest reply off before it is sent: a send is
	// tried at most once unless UnpopPart puts it back.
	PopPart(ctx context.Context, chat string) (part []byte, rest int, err error)
	UnpopPart(ctx context.Context, chat string, part []byte) error
	DropParts(ctx context.Context, chat string) (int, error)
	// Park, Unpark and Parked keep the chats whose replies wait for the
	// API to come back.
	Park(ctx context.Context, channel, chat string, at time.Time) error
	Unpark(ctx context.Context, channel, chat string) error
	Parked(ctx context.Context, channel string, now time.Time, n int) ([]string, error)
}

// Limit is the per-user rate limit (bot.Limit).
type Limit interface {
	Check(ctx context.Context, users []string, now time.Time) []bot.Verdict
}

// ReminderStopper turns a user's reminders off (bot.Reminders).
type ReminderStopper interface {
	StopReminder(ctx context.Context, chat, user string) error
}

// Metrics receives counts; implementations must be safe for concurrent
// use. Update kinds: text, click, subscribe, unsubscribe, subscription,
// other (a message that is not text), ignored; outcomes: held, handled,
// duplicate, limited, error, aborted, unheld (handled without a hold:
// the store was down). Send outcomes: sent, retry (certainly not sent,
// tried again), maybe (may have been delivered: not tried again),
// window_closed, allowance_spent, refused, gone, parked, template,
// skipped.
type Metrics interface {
	Update(kind, outcome string)
	Send(outcome string, n int)
}

type noMetrics struct{}

func (noMetrics) Update(string, string) {}
func (noMetrics) Send(string, int)      {}

// Options configure an Adapter. AppID, AppSecret, Token, Handler and
// Store are required.
type Options struct {
	AppID, AppSecret string
	// Token is the server token set in the Official Account's console;
	// it signs every request WeChat sends.
	Token string
	// AESKey is the EncodingAESKey (43 characters); set, WeChat's
	// messages must come encrypted (safe mode).
	AESKey string
	// APIURL is WeChat's API base (WECHAT_API_URL); DefaultAPIURL when
	// empty.
	APIURL string
	// RemindTemplate is the id of a subscription-message template
	// (WECHAT_REMIND_TEMPLATE) for reminders outside the reply window;
	// "" sends them only inside it.
	RemindTemplate string

	Handler     bot.Handler
	Store       Store
	Coordinator bot.Coordinator // nil: no cross-replica order or dedupe
	Blocklist   bot.Blocklist   // nil: unsubscribed users are not remembered
	Reminders   ReminderStopper // nil: unsubscribing leaves reminders on
	Limit       Limit           // nil: no per-user limit
	Metrics     Metrics
	Logger      *slog.Logger
	// HTTPClient calls WeChat's API; nil means one with sane timeouts.
	HTTPClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Workers bounds the messages handled at once; 64 when zero.
	Workers int
	// MaxSkew is how far a request's timestamp may be from now; 5
	// minutes when zero. Older requests are replays.
	MaxSkew time.Duration
}

// Adapter is the WeChat Official Account transport of the engine.
type Adapter struct {
	opts    Options
	log     *slog.Logger
	m       Metrics
	now     func() time.Time
	http    *http.Client
	api     string
	tokens  *tokens
	gate    *gate
	run     atomic.Pointer[runState]
	started chan struct{} // closed when Run first starts
	once    sync.Once
	stopped atomic.Bool // Drain was called or Run ended
	sem     chan struct{}
	working sync.Map // held ids being worked on here

	// Tunables, shortened by tests.
	callTimeout  time.Duration // one API call
	retryFor     time.Duration // how long a turn retries sends before parking them
	parkFor      time.Duration // when a parked chat is tried again
	recoverEvery time.Duration // how often held messages and parked chats are looked at
	recoverAfter time.Duration // a held message this old is taken up by any replica
	menuTTL      time.Duration // how long numbered choices can be picked
	tokenWait    time.Duration // how long a replica waits for another's token refresh
}

type runState struct {
	ctx context.Context
	wg  *sync.WaitGroup
}

// New builds an Adapter. It makes no network calls.
func New(opts Options) (*Adapter, error) {
	var problems []string
	if strings.TrimSpace(opts.AppID) == "" {
		problems = append(problems, "app id is empty")
	}
	if opts.AppSecret == "" {
		problems = append(problems, "app secret is empty")
	}
	if opts.Token == "" {
		problems = append(problems, "token is empty")
	}
	if opts.AESKey != "" {
		if err := CheckAESKey(opts.AESKey); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if opts.Handler == nil {
		problems = append(problems, "handler is nil")
	}
	if opts.Store == nil {
		problems = append(problems, "store is nil")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("wechat options: %s", strings.Join(problems, "; "))
	}
	if opts.APIURL == "" {
		opts.APIURL = DefaultAPIURL
	}
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = 5 * time.Minute
	}
	a := &Adapter{
		opts:         opts,
		log:          opts.Logger,
		m:            opts.Metrics,
		now:          opts.Now,
		http:         opts.HTTPClient,
		api:          strings.TrimRight(opts.APIURL, "/"),
		gate:         newGate(500*time.Millisecond, 10*time.Second),
		sem:          make(chan struct{}, opts.Workers),
		started:      make(chan struct{}),
		callTimeout:  10 * time.Second,
		retryFor:     time.Minute,
		parkFor:      30 * time.Second,
		recoverEvery: 5 * time.Second,
		recoverAfter: 30 * time.Second,
		menuTTL:      24 * time.Hour,
		tokenWait:    10 * time.Second,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.m == nil {
		a.m = noMetrics{}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.http == nil {
		a.http = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        100,
			MaxIdleConnsPerHost: 50,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 5 * time.Second,
		}}
	}
	a.tokens = newTokens(a)
	return a, nil
}

// CheckAESKey reports whether k can be an EncodingAESKey: 43 characters
// of base64 for 32 bytes.
func CheckAESKey(k string) error {
	if _, err := aesKey(k); err != nil {
		return errors.New("AES key: want the 43-character EncodingAESKey from the console")
	}
	return nil
}

// Run handles what the webhook acknowledges until ctx ends, and takes up
// what any replica left: messages held but not handled (a crash after
// the acknowledgement), and replies parked during an outage of the API.
// It returns when ctx is done and the messages in hand are handled.
func (a *Adapter) Run(ctx context.Context) error {
	wg := &sync.WaitGroup{}
	a.run.Store(&runState{ctx: ctx, wg: wg})
	a.once.Do(func() { close(a.started) })
	defer func() {
		a.stopped.Store(true)
		a.run.Store(nil)
		wg.Wait()
	}()
	t := time.NewTicker(a.recoverEvery)
	defer t.Stop()
	for {
		a.recover(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// recover takes up held messages older than recoverAfter that no worker
// of this replica has, and parked chats whose time has come.
func (a *Adapter) recover(ctx context.Context) {
	now := a.now()
	var stale []inbound
	err := a.opts.Store.HeldMessages(ctx, channel, func(id string, at time.Time, raw []byte) {
		if now.Sub(at) < a.recoverAfter {
			return
		}
		if _, busy := a.working.Load(id); busy {
			return
		}
		var in inbound
		if err := json.Unmarshal(raw, &in); err != nil || in.From == "" {
			a.log.Warn("dropping an undecodable held message", "err", err)
			a.opts.Store.ReleaseMessage(ctx, channel, id)
			return
		}
		in.At = at
		stale = append(stale, in)
	})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("read held messages", "err", err)
	}
	for _, in := range stale {
		a.log.Info("taking up a message held but not handled", "chat", in.chat())
		a.spawn(in, true)
	}
	chats, err := a.opts.Store.Parked(ctx, channel, now, 100)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("read parked chats", "err", err)
	}
	for _, chat := range chats {
		if a.gate.isDown() {
			break // the probe decides when the API is back
		}
		a.flush(ctx, chat)
	}
}

// spawn handles in on a worker under Run's context. It reports false when
// no Run is going (the replica is starting or stopping).
func (a *Adapter) spawn(in inbound, held bool) bool {
	rs := a.run.Load()
	if rs == nil {
		return false
	}
	key := in.key()
	if _, busy := a.working.LoadOrStore(key, true); busy {
		return true
	}
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		defer a.working.Delete(key)
		select {
		case a.sem <- struct{}{}:
		case <-rs.ctx.Done():
			return // stays held: the next Run, here or elsewhere, takes it
		}
		defer func() { <-a.sem }()
		a.work(rs.ctx, in, held)
	}()
	return true
}

// inbound is a message or event reduced to what the adapter needs; it is
// what the Inbox holds.
type inbound struct {
	From     string    `json:"from"`
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	Event    string    `json:"event,omitempty"`
	Key      string    `json:"key,omitempty"`
	MsgID    int64     `json:"msg_id,omitempty"`
	Created  int64     `json:"created"`
	Accepted []string  `json:"accepted,omitempty"` // templates subscribed to
	Rejected []string  `json:"rejected,omitempty"` // templates refused
	At       time.Time `json:"-"`                  // when it was received
	limited  bool      // the rate limit refused it: the engine says so once
}

func (in inbound) chat() string { return bot.ID(bot.ChannelWeChat, in.From) }

// update is the update id the Coordinator orders and dedupes by: the
// creation second first, so a chat's messages and events keep the order
// WeChat gives them, then low bits that tell apart two of one second:
// the MsgId's for a message; for an event, which has none, a hash of the
// event and its key. WeChat's retries of an event repeat its sender and
// CreateTime (its rule for deduping them), and its event and key, so they
// keep one id, while a follow and a menu click in the same second differ.
func (in inbound) update() int64 {
	var low int64
	if in.MsgID != 0 {
		low = in.MsgID & (1<<62 - 1)
	} else {
		h := fnv.New64a()
		h.Write([]byte(in.Event + "\x00" + in.Key))
		low = int64(h.Sum64() & (1<<62 - 1))
	}
	return in.Created<<20 | (1 + low%(1<<20-1))
}

func (in inbound) key() string { return in.From + "/" + strconv.FormatInt(in.update(), 10) }

// kind names the message for Metrics.
func (in inbound) kind() string {
	switch {
	case in.Type == "text":
		return "text"
	case in.Type != "event":
		return "other"
	case in.Event == "CLICK":
		return "click"
	case in.Event == "subscribe", in.Event == "SCAN":
		return "subscribe"
	case in.Event == "unsubscribe":
		return "unsubscribe"
	case in.Event == "subscribe_msg_popup_event", in.Event == "subscribe_msg_change_event":
		return "subscription"
	}
	return "ignored"
}

// work handles one message across replicas: its turn in the chat's order
// (Coordinator), the rate limit, the engine, the replies queued and sent.
// Held messages are released once handled.
func (a *Adapter) work(ctx context.Context, in inbound, held bool) {
	out := a.workOutcome(ctx, in)
	if held && out != "aborted" {
		if err := a.opts.Store.ReleaseMessage(context.WithoutCancel(ctx), channel, in.key()); err != nil {
			a.log.Warn("release handled message", "err", err)
		}
	}
	a.m.Update(in.kind(), out)
}

func (a *Adapter) workOutcome(ctx context.Context, in inbound) string {
	chat := in.chat()
	id := in.update()
	var done func(bool)
	if c := a.opts.Coordinator; c != nil {
		d, dup, err := c.Begin(ctx, chat, id)
		switch {
		case ctx.Err() != nil:
			return "aborted"
		case err != nil:
			a.log.Warn("coordinator unavailable; handling without dedupe", "chat", chat, "err", err)
		case dup:
			return "duplicate"
		default:
			done = d
		}
	}
	finish := func(handled bool) {
		if done != nil {
			done(handled)
		}
	}
	if a.opts.Limit != nil && in.kind() != "unsubscribe" && in.kind() != "subscription" && in.kind() != "ignored" {
		switch a.opts.Limit.Check(ctx, []string{chat}, a.now())[0] {
		case bot.Skip:
			finish(false)
			return "limited"
		case bot.Notify:
			in.limited = true
		}
	}
	out := a.turn(ctx, in, id)
	finish(out != "aborted")
	return out
}
