// Package redisstore keeps all mutable bot state in Redis: dialog state,
// verified links, language choices, verification throttles, reminder
// settings and marks, update dedupe, per-chat serialisation across
// replicas, and the blocklist. It implements bot.Sessions, bot.Attempts,
// bot.Reminders, telegram.Coordinator and telegram.Blocklist, and is the
// only importer of github.com/redis/go-redis. OpenEmbedded runs an
// in-process server (github.com/alicebob/miniredis) for single-process use:
// miniredis's only use outside tests.
//
// It talks to one Redis or a Redis Cluster through redis.UniversalClient.
// Every key carries a hash tag ({u:ID} for per-user state, {c:ID} for
// per-chat coordination, {t:TAG} for a throttle, {p:TAG} for a person's
// marks) so that the keys one call touches together live in one slot and
// multi-key commands, MULTI and Lua scripts work on a cluster.
//
// No ID number or phone is readable at rest (keyring, SHEBAO_KEYS): names
// derived from one are keyed tags, and values holding one are sealed
// (AES-GCM) and bound to the name they are stored under. Open converts a
// store written by the previous release once, and Maintain re-seals it in
// the background after the current key changes (schema.go).
//
// Every Redis call runs under Options.OpTimeout. Errors that mean "Redis is
// not reachable in time" wrap bot.ErrUnavailable, so the engine can answer
// without state instead of stalling.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
)

// Options configure a Store. Zero fields take the defaults documented on
// each field.
type Options struct {
	// URL is a redis:// or rediss:// URL (REDIS_URL; its forms are listed
	// at newClient). With master_name= it names Sentinels and is parsed
	// with redis.ParseFailoverURL. With Cluster set, or with addr= query
	// parameters naming further seed nodes, it is parsed with
	// redis.ParseClusterURL and a cluster client is used. Otherwise it is
	// one server (redis.ParseURL). Timeouts given in the URL override the
	// small defaults.
	URL     string
	Cluster bool
	// Client is used instead of URL when set (tests). The Store does not
	// change its options; Close closes it.
	Client redis.UniversalClient
	// Keys seals values and tags names (SHEBAO_KEYS). Open requires it;
	// OpenEmbedded makes one for the process when it is nil.
	Keys *keyring.Ring
	// KeyPrefix starts every key; default "shebao". Tests use a distinct
	// prefix each so they can share one server.
	KeyPrefix string
	// OpTimeout bounds every Redis call; default 300ms. A dead Redis must
	// not stall a handler for seconds.
	OpTimeout time.Duration
	// DialogTTL is how long a dialog survives without being saved; default
	// 30 minutes.
	DialogTTL time.Duration
	// DedupeTTL is how long an answered update id is remembered; default
	// 24 hours (Telegram stops redelivering long before).
	DedupeTTL time.Duration
	// LockLease is how long a claimed update keeps its chat, and a waiting
	// update its place in the queue, when the replica holding it dies;
	// default 5 seconds. A claim is renewed while its update is handled,
	// so a handler may take longer than the lease.
	LockLease time.Duration
	// BreakerCooldown is how long calls fail at once after one failed for
	// want of Redis (see hook); default 500 ms, negative disables.
	BreakerCooldown time.Duration
	// MaxHold bounds the renewals: a handler stuck for longer loses its
	// chat, so one bug cannot block a chat for good; default 2 minutes.
	MaxHold time.Duration
	// Logger receives warnings about undecodable values and failed
	// releases; nil discards.
	Logger *slog.Logger
	// MigrationWait bounds how long Open waits for another replica that is
	// converting the store; default 10 minutes.
	MigrationWait time.Duration
	// MaintainEvery is how often Maintain looks for a rotation to run;
	// default 5 minutes. MaintainPause is its pause between batches, so a
	// rotation never hogs Redis; default 20 ms.
	MaintainEvery time.Duration
	MaintainPause time.Duration
	// RotateAfter is how long a new current key must have been in use
	// before Maintain moves everything onto it: replicas still on the old
	// keyring seal under the old key until they restart, so a rolling
	// restart has this long to finish; default 15 minutes, negative for
	// none.
	RotateAfter time.Duration

	scanCount int // keys per batch of a key pass; default 500 (tests: fewer)
}

const (
	defaultPrefix    = "shebao"
	defaultOpTimeout = 300 * time.Millisecond
	defaultDialogTTL = 30 * time.Minute
	defaultDedupeTTL = 24 * time.Hour
	defaultLockLease = 5 * time.Second
	defaultMaxHold   = 2 * time.Minute
)

func (o *Options) setDefaults() {
	if o.KeyPrefix == "" {
		o.KeyPrefix = defaultPrefix
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = defaultOpTimeout
	}
	if o.DialogTTL <= 0 {
		o.DialogTTL = defaultDialogTTL
	}
	if o.DedupeTTL <= 0 {
		o.DedupeTTL = defaultDedupeTTL
	}
	if o.BreakerCooldown == 0 {
		o.BreakerCooldown = 500 * time.Millisecond
	}
	if o.MaxHold <= 0 {
		o.MaxHold = defaultMaxHold
	}
	if o.LockLease <= 0 {
		o.LockLease = defaultLockLease
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MigrationWait <= 0 {
		o.MigrationWait = 10 * time.Minute
	}
	if o.MaintainEvery <= 0 {
		o.MaintainEvery = 5 * time.Minute
	}
	if o.MaintainPause == 0 {
		o.MaintainPause = 20 * time.Millisecond
	}
	if o.RotateAfter == 0 {
		o.RotateAfter = 15 * time.Minute
	}
	if o.scanCount <= 0 {
		o.scanCount = 500
	}
}

// Store is the Redis implementation of the engine's and the adapter's store
// interfaces. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	opt    Options
	log    *slog.Logger
	trips  atomic.Int64
	errs   atomic.Int64
	closer func() // stops the embedded server, if any
	// prefetched holds, per claimed private chat, the session state read
	// in the claim's round trip: chat id -> []any from MGET.
	prefetched sync.Map
	batch      coalescer // the per-update claims and releases

	keys *keyring.Ring // seals values and tags names
	// legacyUntil is when the last throttle keys of the previous release
	// have expired (unix ms); until then throttles look for them too.
	legacyUntil atomic.Int64
	// rotating: values and marks may still be under an older key of the
	// ring (a rotation has not finished), so marks are looked for there.
	rotating atomic.Bool
	// now, when set (tests), is the clock of the dedupe marks' times.
	now func() time.Time
}

// clock is the time the dedupe marks are scored with.
func (s *Store) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// Open connects to Redis, checks that it answers, loads the Lua scripts and
// brings the store to this release's format (schema.go): a store the
// previous release wrote is converted first, by one replica while the
// others wait. A Redis that cannot be reached yields an error wrapping
// bot.ErrUnavailable.
func Open(ctx context.Context, opt Options) (*Store, error) {
	opt.setDefaults()
	if strings.ContainsAny(opt.KeyPrefix, "{}") {
		// The prefix would become the hash tag of every key and put all
		// state in one cluster slot.
		return nil, fmt.Errorf("open redis store: key prefix %q must not contain braces", opt.KeyPrefix)
	}
	if opt.Keys == nil {
		return nil, errors.New("open redis store: no keyring (SHEBAO_KEYS)")
	}
	routeClientLog.Do(func() { redis.SetLogger(clientLog{opt.Logger}) })
	rdb := opt.Client
	if rdb == nil {
		var err error
		rdb, err = newClient(opt)
		if err != nil {
			return nil, err
		}
	}
	s := &Store{rdb: rdb, opt: opt, log: opt.Logger, keys: opt.Keys}
	s.addHooks()
	if err := s.prepare(ctx); err != nil {
		rdb.Close()
		return nil, err
	}
	if err := s.ensureSchema(ctx); err != nil {
		rdb.Close()
		return nil, err
	}
	return s, nil
}

// OpenEmbedded starts an in-process Redis-compatible server (miniredis) and
// opens a Store on it; Close stops the server. State lives only as long as
// the process: this is for the terminal chat and single-replica defaults.
// opt.URL and opt.Client are ignored.
func OpenEmbedded(ctx context.Context, opt Options) (*Store, error) {
	mr, err := miniredis.Run()
	if err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	opt.URL, opt.Client, opt.Cluster = "redis://"+mr.Addr(), nil, false
	if opt.Keys == nil {
		opt.Keys = keyring.Generate()
	}
	s, err := Open(ctx, opt)
	if err != nil {
		mr.Close()
		return nil, err
	}
	s.closer = mr.Close
	return s, nil
}

// The forms of REDIS_URL (Options.URL):
//
//	redis://[user:password@]host:port[/db][?option=…]     one server
//	redis://[user:password@]host:port?addr=host:port&…    a Redis Cluster: seed nodes
//	redis://[user:password@]host:port[/db]?master_name=M[&addr=host:port…][&password=P]
//	                                                       Sentinel: host:port and each addr
//	                                                       are sentinels; M is the monitored primary
//
// rediss:// instead of redis:// for TLS. Options are go-redis's
// (dial_timeout, read_timeout, pool_size, …); an unknown one is an error.
// For Sentinel the user and password in the URL are the sentinels' and
// password= (and username=) the primary's, as in redis.ParseFailoverURL.
func newClient(opt Options) (redis.UniversalClient, error) {
	u, err := url.Parse(opt.URL)
	if err != nil {
		// The URL may hold a password: never echo it.
		return nil, errors.New("parse redis url: malformed URL")
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		if opt.Cluster {
			return nil, errors.New("parse redis url: master_name (Sentinel) and a cluster exclude each other")
		}
		fo, err := redis.ParseFailoverURL(opt.URL)
		if err != nil {
			return nil, fmt.Errorf("parse redis sentinel url: %w", redactURLError(err))
		}
		if fo.MasterName == "" {
			return nil, errors.New("parse redis sentinel url: empty master_name")
		}
		t := timeouts{&fo.DialTimeout, &fo.ReadTimeout, &fo.WriteTimeout, &fo.PoolTimeout,
			&fo.MaxRetries, &fo.DialerRetries, &fo.DialerRetryTimeout}
		t.setDefaults(opt.OpTimeout)
		fo.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(fo), nil
	case opt.Cluster || q.Has("addr"):
		co, err := redis.ParseClusterURL(opt.URL)
		if err != nil {
			return nil, fmt.Errorf("parse redis cluster url: %w", redactURLError(err))
		}
		t := timeouts{&co.DialTimeout, &co.ReadTimeout, &co.WriteTimeout, &co.PoolTimeout,
			&co.MaxRetries, &co.DialerRetries, &co.DialerRetryTimeout}
		t.setDefaults(opt.OpTimeout)
		co.ContextTimeoutEnabled = true
		return redis.NewClusterClient(co), nil
	}
	o, err := redis.ParseURL(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", redactURLError(err))
	}
	t := timeouts{&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout,
		&o.MaxRetries, &o.DialerRetries, &o.DialerRetryTimeout}
	t.setDefaults(opt.OpTimeout)
	// Without this go-redis sets socket deadlines from ReadTimeout alone
	// and ignores the per-call context deadline.
	o.ContextTimeoutEnabled = true
	return redis.NewClient(o), nil
}

// timeouts points at the fields that the three kinds of go-redis options
// share, so that each gets the same small defaults where the URL set none.
type timeouts struct {
	dial, read, write, pool *time.Duration
	maxRetries, dialRetries *int
	dialRetryWait           *time.Duration
}

func (t timeouts) setDefaults(op time.Duration) {
	*t.dial = orDefault(*t.dial, 2*op)
	*t.read = orDefault(*t.read, op)
	*t.write = orDefault(*t.write, op)
	*t.pool = orDefault(*t.pool, op)
	if *t.maxRetries == 0 {
		*t.maxRetries = 1
	}
	// go-redis dials 5 times 100ms apart by default: a stall of half a
	// second for a Redis that is down.
	if *t.dialRetries == 0 {
		*t.dialRetries = 2
		*t.dialRetryWait = 10 * time.Millisecond
	}
}

// redactURLError keeps go-redis parse errors, which name the offending
// parameter but may also quote the URL, from leaking a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New("malformed URL")
	}
	return err
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// prepare pings and preloads the scripts so that the first Begin, Fail and
// done are one round trip each like all later ones. Each exchange has its
// own OpTimeout: on a cluster the first one also loads the slot map, and
// a script load goes to every primary.
func (s *Store) prepare(ctx context.Context) error {
	octx, cancel := s.op(ctx)
	err := s.rdb.Ping(octx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("ping redis: %w", s.classify(err))
	}
	for _, sc := range []*redis.Script{throttleScript, beginScript, doneScript} {
		octx, cancel := s.op(ctx)
		err := sc.Load(octx, s.rdb).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("load redis script: %w", s.classify(err))
		}
	}
	return nil
}

// Close closes the client and, for an embedded store, stops the server.
func (s *Store) Close() error {
	err := s.rdb.Close()
	if s.closer != nil {
		s.closer()
	}
	if err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// Ping reports whether Redis answers within OpTimeout, for /healthz.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", s.classify(err))
	}
	return nil
}

// RoundTrips returns how many commands and pipelines the Store has sent to
// Redis since Open (a pipeline or MULTI block counts once; a script retried
// after NOSCRIPT counts twice). On a cluster a pipeline spanning several
// nodes is one count but one exchange per node.
func (s *Store) RoundTrips() int64 { return s.trips.Load() }

// Errors counts failed Redis calls (not the caller's own cancellations),
// for metrics.
func (s *Store) Errors() int64 { return s.errs.Load() }

// op bounds one Redis exchange.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opt.OpTimeout)
}

// classify maps a go-redis error to what the caller can act on: the caller's
// own cancellation stays itself; anything that means Redis did not answer in
// time, or answered "not now", wraps bot.ErrUnavailable; the rest (a bug,
// such as a script error) is returned as is. redis.Nil never gets here.
func (s *Store) classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	s.errs.Add(1)
	if isUnavailable(err) || errors.Is(err, errBreakerOpen) || isOutOfMemory(err) {
		return fmt.Errorf("%w: %w", bot.ErrUnavailable, err)
	}
	return err
}

// isOutOfMemory reports whether Redis refused a write at its maxmemory
// (policy noeviction, or nothing left to evict). The engine then answers
// without state as when Redis is down; but Redis is there and still
// serves reads, so the breaker stays closed (isUnavailable is false).
func isOutOfMemory(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "OOM ")
}

func isUnavailable(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.As(err, &ne),
		errors.Is(err, net.ErrClosed):
		return true
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY "} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	// I/O errors such as io.EOF or "connection reset" from a server that
	// went away mid-reply.
	return true
}

// Key layout. The part in braces is the hash tag: keys sharing it share a
// slot. <tag> is a keyed tag (keyring.Ring.Name) of an ID number or a
// throttle key, never the thing itself; "sealed" values are encrypted and
// bound to their key's name.
//
//	<p>:{u:<user>}:<chat>:lang      language choice ("zh", "en"), no expiry
//	<p>:{u:<user>}:<chat>:dialog    sealed dialog JSON, DialogTTL, refreshed on save
//	<p>:{u:<user>}:<chat>:link      sealed link JSON, expires at Link.Until
//	<p>:{u:<user>}:<chat>:remind    sealed reminder setting (reminders.go)
//	<p>:{t:<tag>}:a                 a throttle's attempts (zset), Window (attempts.go)
//	<p>:{t:<tag>}:hold              a lockout carried over from the previous release
//	<p>:{p:<tag>}:m:<mark>          a reminder mark about one person (reminders.go)
//	<p>:{p:<tag>}:idx               the names of that person's marks
//	<p>:{p:<tag>}:chosen            sealed chat the person last turned reminders on in (reminders.go)
//	<p>:{m:<mark>}                  a mark about no one (a slot done for the day)
//	<p>:{remind}:slot:<slot>        who opted in to a slot: "<user>:<chat>" (Telegram), "<user>|<chat>"
//	<p>:{c:<chat>}:done             updates answered (zset: update id scored by its expiry), DedupeTTL (coord.go)
//	<p>:{c:<chat>}:done:<update>    the previous release's mark of one answered update, still honoured
//	<p>:{send:<ch>}:all, :bulk, :c:<chat>  the shared send budget (budget.go)
//	<p>:{meta}:telegram-webhook     fingerprint of the registered webhook (webhook.go)
//	<p>:{c:<chat>}:q                queue of waiting updates (zset)
//	<p>:{c:<chat>}:alive:<member>   liveness of a queue entry, LockLease
//	<p>:{c:<chat>}:lock             token of the replica handling the chat
//	<p>:{c:<chat>}:blocked          the user blocked the bot
//	<p>:{held}:updates              updates fetched, not yet handled (sealed; handoff.go)
//	<p>:{meta}:schema, :lease       the store's format and keys (schema.go)
//
// The per-user keys are tagged by user, not chat, because the engine loads a
// (chat, user) pair together and in private chats the two ids are equal.
// <user> and <chat> are identities as keyID writes them: a Telegram one as
// its bare number, as before identities were strings, so the keys a
// previous release wrote are read as they are; any other channel's whole
// ("web:3f9c…", "wx:oAbC…").
//
// Every name derived from personal data is made here, in this block, so
// that changing what identifies a user or a person changes one place.
const (
	langKey     = "lang"
	dialogKey   = "dialog"
	linkKey     = "link"
	reminderKey = "remind"

	// Domains of the keyed tags, so that one ID number's tags in two
	// kinds of name are unrelated.
	throttleDomain = "throttle"
	personDomain   = "person"
)

func (s *Store) userKey(chat, user string, part string) string {
	return s.opt.KeyPrefix + ":{u:" + keyID(user) + "}:" + keyID(chat) + ":" + part
}

func (s *Store) chatKey(chat string, rest string) string {
	return s.opt.KeyPrefix + ":{c:" + keyID(chat) + "}:" + rest
}

// keyID is how an identity appears in a key name. A Telegram identity
// ("tg:42") keeps the bare number of the releases before identities were
// strings, so a store they wrote keeps working; other channels' identities
// appear whole ("web:3f9c…"), and cannot collide with a bare number.
func keyID(id string) string {
	if local, ok := strings.CutPrefix(id, bot.ChannelTelegram+":"); ok {
		return local
	}
	return id
}

// idOfKey is the inverse of keyID.
func idOfKey(k string) string {
	if strings.Contains(k, ":") {
		return k
	}
	return bot.ID(bot.ChannelTelegram, k)
}

// throttleTags are the tags of a throttle key under every key of the ring,
// current first: a rotation leaves attempts under the old tag until they
// expire, and a throttle counts them.
func (s *Store) throttleTags(key string) []string { return s.keys.Names(throttleDomain, key) }

func (s *Store) throttleKey(tag, part string) string {
	return s.opt.KeyPrefix + ":{t:" + tag + "}:" + part
}

// personTags are the tags of a person (a resident ID number) under every
// key of the ring, current first.
func (s *Store) personTags(personID string) []string { return s.keys.Names(personDomain, personID) }

func (s *Store) personKey(tag, part string) string {
	return s.opt.KeyPrefix + ":{p:" + tag + "}:" + part
}

// ad is what a sealed value is bound to: its key's name without the
// prefix (a store copied under another prefix still opens).
func (s *Store) ad(key string) string { return strings.TrimPrefix(key, s.opt.KeyPrefix+":") }

// Keys returns the keyring the store seals with, for the engine and the
// reminder scheduler to tag phones with.
func (s *Store) Keys() *keyring.Ring { return s.keys }

// go-redis has one process-wide logger that prints plain text to stderr
// (a line per failed dial while Redis is down). The first Open routes it to
// that Store's slog.Logger so the JSON log stays JSON; once, because
// redis.SetLogger is not safe to call while clients run.
var routeClientLog sync.Once

type clientLog struct{ log *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// errBreakerOpen fails a call without trying Redis while the breaker is
// open; isUnavailable counts it as Redis being unavailable.
var errBreakerOpen = errors.New("redis unavailable moments ago; not retried yet")

// addHooks puts the round-trip counter and the breaker in front of every
// exchange with Redis.
//
// On one server (or behind Sentinel) there is one breaker. On a cluster
// each node has its own (go-redis calls OnNewNode for each node client it
// makes), so a dead primary fails fast only the calls for its slots, and
// the other two thirds of the users are served as before. go-redis
// re-reads the slot map on MOVED and once a minute, but not when a node
// stops answering: then no MOVED comes until it is asked again, and the
// keys of a dead primary stay routed to it. So a call that fails for want
// of Redis asks for a reload (go-redis runs one at a time, at most one
// each 200 ms): the replica that took over is found as soon as the
// cluster has promoted it.
func (s *Store) addHooks() {
	top := hook{trips: &s.trips}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		top.reload = func() { cc.ReloadState(context.Background()) }
		cooldown := s.opt.BreakerCooldown
		cc.OnNewNode(func(node *redis.Client) {
			node.AddHook(hook{b: &breaker{cooldown: cooldown}}) // the node's breaker
		})
	} else {
		top.b = &breaker{cooldown: s.opt.BreakerCooldown}
	}
	s.rdb.AddHook(top)
}

// hook sits in front of every call of the Store: it counts round trips,
// and it is the breaker of a single server (b) or asks a cluster client
// to re-read the slot map (reload). On each cluster node a hook with only
// b is that node's breaker.
type hook struct {
	trips  *atomic.Int64 // nil on a node's hook
	b      *breaker      // nil on a cluster's top hook: each node has one
	reload func()        // nil unless a cluster's top hook
}

func (h hook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.b.allow(); err != nil {
			cmd.SetErr(err)
			return err
		}
		err := next(ctx, cmd)
		h.after(ctx, err)
		return err
	}
}

func (h hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := h.b.allow(); err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		err := next(ctx, cmds)
		h.after(ctx, err)
		return err
	}
}

// after counts the exchange, unless a node's breaker refused it, and acts
// on a failure for want of Redis.
func (h hook) after(ctx context.Context, err error) {
	if h.trips != nil && !errors.Is(err, errBreakerOpen) {
		h.trips.Add(1)
	}
	h.b.observe(ctx, err)
	if h.reload != nil && unavailableAnswer(ctx, err) {
		h.reload()
	}
}

// breaker: after a call fails for want of Redis, calls fail at once for
// the cool-down; then they are tried again (and trip it again if Redis
// still does not answer). go-redis already fails fast when the server
// refuses connections, but a server that accepts and never answers costs
// every call its full OpTimeout, several times per update. A nil breaker,
// or one with a cool-down <= 0, lets everything through.
type breaker struct {
	openTill atomic.Int64 // unix nanoseconds; 0 when closed
	cooldown time.Duration
}

func (b *breaker) allow() error {
	if b == nil || b.cooldown <= 0 || time.Now().UnixNano() >= b.openTill.Load() {
		return nil
	}
	return errBreakerOpen
}

// observe opens the breaker when err says Redis did not answer, unless
// the caller's own context ended first.
func (b *breaker) observe(ctx context.Context, err error) {
	if b == nil || b.cooldown <= 0 || errors.Is(err, errBreakerOpen) || !unavailableAnswer(ctx, err) {
		return
	}
	b.openTill.Store(time.Now().Add(b.cooldown).UnixNano())
}

// unavailableAnswer reports whether err says Redis did not answer (not an
// answer such as a script error: Redis is there), and not because the
// caller's own context ended.
func unavailableAnswer(ctx context.Context, err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil && isUnavailable(err)
}
