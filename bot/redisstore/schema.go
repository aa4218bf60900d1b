package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keyring"
)

// The store's format and keys:
//
//	<p>:{meta}:schema   a hash:
//	                      version       2 (the previous release wrote no schema: 1)
//	                      migrated      when a schema-1 store was converted (unix ms)
//	                      legacy_until  until when schema-1 attempt keys the conversion
//	                                    could not attribute may exist (unix ms)
//	                      canary:<id>   a value sealed under key <id>, written when <id> became current
//	                      since:<id>    when that was (unix ms)
//	                      retired:<id>  when a rotation had moved every value off key <id> (unix ms)
//	                      rotate:<step> where a rotation cut short resumes
//	<p>:{meta}:lease    the token of the replica converting or rotating
//
// Open refuses a keyring that cannot read the store: one that lacks a key
// values may still be sealed under (a canary not retired), or that holds
// another secret under a known id (a canary that does not open). A
// mistyped SHEBAO_KEYS is then one clear error at start, not every user
// silently logged out.
//
// Converting schema 1 (Open) and rotating to a new current key (Maintain)
// are passes over the keys, in batches, by one replica at a time under the
// lease. Every step is idempotent (values are replaced only if unchanged
// since read, marks are copied before the old ones are deleted), so a pass
// cut short is run again or resumed by whichever replica comes next.
const schemaVersion = 2

const metaLeaseTTL = 30 * time.Second

func (s *Store) metaKey(part string) string { return s.opt.KeyPrefix + ":{meta}:" + part }

func (s *Store) canaryAD() string { return s.ad(s.metaKey("schema")) + "#canary" }

// casScript replaces a value only if it is still the one read, keeping
// its TTL.
//
//	KEYS[1] key; ARGV[1] expected, ARGV[2] new
var casScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
`)

// hcasScript is casScript for a hash field.
//
//	KEYS[1] hash; ARGV[1] field, ARGV[2] expected, ARGV[3] new
var hcasScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
`)

// ensureSchema brings the store to this release's format: a store without
// a schema (the previous release's, or a new one) is converted under the
// lease while other replicas wait; then the keyring is checked against it.
func (s *Store) ensureSchema(ctx context.Context) error {
	deadline := time.Now().Add(s.opt.MigrationWait)
	token := rand.Text()
	for {
		h, err := s.readSchema(ctx)
		if err != nil {
			return fmt.Errorf("read store schema: %w", err)
		}
		switch v := h["version"]; v {
		case strconv.Itoa(schemaVersion):
			return s.checkKeys(ctx, h)
		case "":
		default:
			return fmt.Errorf("redis store has schema %s, this shebao knows %d: run a newer shebao", v, schemaVersion)
		}
		ok, err := s.lease(ctx, token)
		if err != nil {
			return fmt.Errorf("convert store: %w", err)
		}
		if ok {
			err := s.migrate(ctx, token)
			s.unlease(token)
			if err != nil {
				return fmt.Errorf("convert the previous release's store: %w", err)
			}
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("another replica has been converting the store for over %v; check its log", s.opt.MigrationWait)
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Store) readSchema(ctx context.Context) (map[string]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	h, err := s.rdb.HGetAll(ctx, s.metaKey("schema")).Result()
	if err != nil {
		return nil, s.classify(err)
	}
	return h, nil
}

// checkKeys compares the keyring with the canaries and makes the current
// key's canary if it has none.
func (s *Store) checkKeys(ctx context.Context, h map[string]string) error {
	var missing []string
	for field, v := range h {
		id, ok := strings.CutPrefix(field, "canary:")
		if !ok {
			continue
		}
		if !s.keys.Has(id) {
			if h["retired:"+id] == "" {
				missing = append(missing, id)
			}
			continue
		}
		if _, _, err := s.keys.Open(s.canaryAD(), []byte(v)); err != nil {
			return fmt.Errorf("SHEBAO_KEYS: key %q is not the key this store was written with (its canary does not open); restore that key", id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("SHEBAO_KEYS lacks key %s, which values in this store may still be sealed under; "+
			"add it back after the current key, and remove it only once the rotation has finished", strings.Join(missing, ", "))
	}
	if ms, err := strconv.ParseInt(h["legacy_until"], 10, 64); err == nil {
		s.legacyUntil.Store(ms)
	}
	s.rotating.Store(len(s.pendingKeys(h)) > 0)
	cur := s.keys.Current()
	if h["canary:"+cur] != "" && h["retired:"+cur] == "" {
		return nil
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	set, err := s.rdb.HSetNX(octx, s.metaKey("schema"), "canary:"+cur, s.keys.Seal(s.canaryAD(), []byte("shebao"))).Result()
	if err == nil {
		// A key made current again after it was retired seals values
		// from now on.
		err = s.rdb.HDel(octx, s.metaKey("schema"), "retired:"+cur).Err()
	}
	if err == nil && (set || h["retired:"+cur] != "") {
		err = s.rdb.HSet(octx, s.metaKey("schema"), "since:"+cur, time.Now().UnixMilli()).Err()
	}
	if err != nil {
		return fmt.Errorf("record the current key: %w", s.classify(err))
	}
	if !set && h["canary:"+cur] == "" {
		// Another replica wrote it meanwhile: it must be the same key.
		if h, err = s.readSchema(ctx); err != nil {
			return fmt.Errorf("read store schema: %w", err)
		}
		return s.checkKeys(ctx, h)
	}
	s.log.Info("store key recorded", "key", cur, "rotation_pending", len(s.pendingKeys(h)) > 0)
	return nil
}

// pendingKeys are the keys other than the current one that values may
// still be sealed under: what a rotation has to move off.
func (s *Store) pendingKeys(h map[string]string) []string {
	var out []string
	for field := range h {
		id, ok := strings.CutPrefix(field, "canary:")
		if ok && id != s.keys.Current() && h["retired:"+id] == "" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Store) lease(ctx context.Context, token string) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n, err := leaseScript.Run(ctx, s.rdb, []string{s.metaKey("lease")}, token, metaLeaseTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("take store lease: %w", s.classify(err))
	}
	return n == 1, nil
}

func (s *Store) unlease(token string) {
	ctx, cancel := s.op(context.Background())
	defer cancel()
	if err := unleaseScript.Run(ctx, s.rdb, []string{s.metaKey("lease")}, token).Err(); err != nil {
		s.log.Warn("release store lease", "err", s.classify(err))
	}
}

var errLeaseLost = errors.New("store lease lost to another replica")

// pass is one batched walk over the keys under the lease.
type pass struct {
	s      *Store
	token  string
	pause  time.Duration
	counts map[string]int
}

// renew keeps the lease between batches.
func (p *pass) renew(ctx context.Context) error {
	ok, err := p.s.lease(ctx, p.token)
	if err != nil {
		return err
	}
	if !ok {
		return errLeaseLost
	}
	return nil
}

// scanNode is one server a key pass walks: the one Redis, or each master
// of a cluster (a SCAN sees the keys of one node only). name is "" for a
// single server and the node's address in a cluster.
type scanNode struct {
	name string
	c    redis.Cmdable
}

func (s *Store) scanNodes(ctx context.Context) ([]scanNode, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return []scanNode{{c: s.rdb}}, nil
	}
	var mu sync.Mutex
	var out []scanNode
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, scanNode{name: c.Options().Addr, c: c})
		return nil
	})
	if err != nil {
		return nil, s.classify(err)
	}
	slices.SortFunc(out, func(a, b scanNode) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// nodeDone is the cursor of a node a resumed pass has finished.
const nodeDone = ^uint64(0)

// scan walks the keys matching pattern on every node in batches, renewing
// the lease and pausing between them. from gives a node's cursor to resume
// at (nil: from the start); saved is told each cursor reached.
func (p *pass) scan(ctx context.Context, pattern string, from func(node string) uint64, batch func([]string) error, saved func(node string, cursor uint64) error) error {
	nodes, err := p.s.scanNodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		var cursor uint64
		if from != nil {
			cursor = from(n.name)
		}
		if cursor == nodeDone {
			continue
		}
		if err := p.scanNode(ctx, n, pattern, cursor, batch, saved); err != nil {
			return err
		}
	}
	return nil
}

func (p *pass) scanNode(ctx context.Context, n scanNode, pattern string, cursor uint64, batch func([]string) error, saved func(string, uint64) error) error {
	for {
		if err := p.renew(ctx); err != nil {
			return err
		}
		octx, cancel := p.s.op(ctx)
		keys, next, err := n.c.Scan(octx, cursor, p.s.opt.KeyPrefix+":"+pattern, int64(p.s.opt.scanCount)).Result()
		cancel()
		if err != nil {
			return p.s.classify(err)
		}
		p.counts["scanned"] += len(keys)
		if len(keys) > 0 {
			if err := batch(keys); err != nil {
				return err
			}
		}
		if saved != nil {
			if err := saved(n.name, next); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
		if p.pause > 0 {
			t := time.NewTimer(p.pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// userValue splits "<p>:{u:<user>}:<chat>:<part>".
func (s *Store) userValue(key string) (user, part string, ok bool) {
	rest, found := strings.CutPrefix(key, s.opt.KeyPrefix+":{u:")
	if !found {
		return "", "", false
	}
	user, rest, found = strings.Cut(rest, "}:")
	if !found {
		return "", "", false
	}
	_, part, found = strings.Cut(rest, ":")
	return user, part, found
}

// sealedPart reports whether a per-user part is a value that holds
// personal data and is sealed.
func sealedPart(part string) bool {
	return part == linkKey || part == dialogKey || part == reminderKey
}

// whoJSON is what the migration and the rotation read from a link, a
// reminder setting or a dialog: the person it names.
type whoJSON struct {
	PersonID string            `json:"person_id"`
	Data     map[string]string `json:"data"`
}

func (w whoJSON) person() string {
	if w.PersonID != "" {
		return w.PersonID
	}
	return w.Data["id"]
}

// reseal seals again, under the current key, the sealed per-user values
// among keys that are plain (the previous release's) or sealed under
// another key, and returns the persons they name. found is told each
// person in a value (link, setting or dialog), resealed or not.
func (p *pass) reseal(ctx context.Context, keys []string, found func(person, part string)) error {
	s := p.s
	var vkeys []string
	for _, k := range keys {
		if _, part, ok := s.userValue(k); ok && sealedPart(part) {
			vkeys = append(vkeys, k)
		}
	}
	if len(vkeys) == 0 {
		return nil
	}
	// GETs in a pipeline, not an MGET: the keys are in many slots.
	octx, cancel := s.op(ctx)
	gets := make([]*redis.StringCmd, len(vkeys))
	_, err := s.rdb.Pipelined(octx, func(pipe redis.Pipeliner) error {
		for i, k := range vkeys {
			gets[i] = pipe.Get(octx, k)
		}
		return nil
	})
	cancel()
	if err != nil && !errors.Is(err, redis.Nil) {
		return s.classify(err)
	}
	type write struct{ key, old, new string }
	var writes []write
	for i, k := range vkeys {
		v, err := gets[i].Result()
		if err != nil {
			continue // expired meanwhile
		}
		_, part, _ := s.userValue(k)
		plain := []byte(v)
		id := ""
		if keyring.IsSealed(plain) {
			if plain, id, err = s.keys.Open(s.ad(k), plain); err != nil {
				p.counts["unreadable"]++
				s.log.Warn("key pass: value does not open; left as it is", "part", part, "err", err)
				continue
			}
		}
		var who whoJSON
		if err := json.Unmarshal(plain, &who); err != nil {
			p.counts["undecodable"]++
			continue
		}
		if person := who.person(); person != "" && found != nil {
			found(person, part)
		}
		if id != s.keys.Current() {
			writes = append(writes, write{k, v, string(s.keys.Seal(s.ad(k), plain))})
		}
	}
	if len(writes) == 0 {
		return nil
	}
	calls := make([]scriptCall, len(writes))
	for i, w := range writes {
		calls[i] = scriptCall{keys: []string{w.key}, args: []any{w.old, w.new}}
	}
	octx, cancel = s.op(ctx)
	defer cancel()
	res, err := s.evalPipelined(octx, casScript, calls)
	if err != nil {
		return err
	}
	for _, r := range res {
		if n, _ := r.(int64); n == 1 {
			p.counts["resealed"]++
		} else {
			// Written meanwhile by the engine, which seals with the
			// current key.
			p.counts["changed_meanwhile"]++
		}
	}
	return nil
}

// resealHeld does the same for the held updates.
func (p *pass) resealHeld(ctx context.Context) error {
	s := p.s
	var cursor uint64
	for {
		if err := p.renew(ctx); err != nil {
			return err
		}
		octx, cancel := s.op(ctx)
		kv, next, err := s.rdb.HScan(octx, s.heldKey(), cursor, "", int64(s.opt.scanCount)).Result()
		cancel()
		if err != nil {
			return s.classify(err)
		}
		var calls []scriptCall
		for i := 0; i+1 < len(kv); i += 2 {
			field, v := kv[i], []byte(kv[i+1])
			if id, ok := keyring.KeyOf(v); ok {
				if id == s.keys.Current() {
					continue
				}
				pt, _, err := s.keys.Open(s.heldAD(field), v)
				if err != nil {
					continue // HeldUpdates drops it
				}
				v = pt
			}
			calls = append(calls, scriptCall{keys: []string{s.heldKey()}, args: []any{field, kv[i+1], s.keys.Seal(s.heldAD(field), v)}})
		}
		if len(calls) > 0 {
			octx, cancel = s.op(ctx)
			_, err = s.evalPipelined(octx, hcasScript, calls)
			cancel()
			if err != nil {
				return err
			}
			p.counts["held_resealed"] += len(calls)
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// migrate converts a schema-1 store (a new store has nothing to convert):
//
//  1. links, dialogs and reminder settings are sealed; the persons they
//     name and every user id met are noted;
//  2. chat keys name more users (a locked-out user may have nothing else);
//  3. each sent-mark and reminded-today mark of a noted person moves under
//     the person's keyed tag; the marks of persons no value names any
//     more (forgotten, expired) are deleted: their SHA-256 names gave the
//     ID number away, and nobody is reminded under them again;
//  4. the failure counters and lockouts of noted users and ID numbers
//     become throttles; the others are converted when next used, or
//     expire within the day (legacyLive);
//  5. held updates are sealed.
func (s *Store) migrate(ctx context.Context, token string) error {
	p := &pass{s: s, token: token, counts: map[string]int{}}
	start := time.Now()
	persons := map[string]string{}  // legacy person hash -> ID number
	attempts := map[string]string{} // legacy attempt hash -> throttle key
	note := func(key string) { attempts[legacyAttemptHash(key)] = key }
	err := p.scan(ctx, "{u:*", nil, func(keys []string) error {
		for _, k := range keys {
			if user, _, ok := s.userValue(k); ok {
				note("user:" + user)
			}
		}
		return p.reseal(ctx, keys, func(person, _ string) {
			persons[legacyPersonHash(person)] = person
			note("id:" + person)
		})
	}, nil)
	if err != nil {
		return fmt.Errorf("seal values: %w", err)
	}
	err = p.scan(ctx, "{c:*", nil, func(keys []string) error {
		for _, k := range keys {
			if chat, _, ok := strings.Cut(strings.TrimPrefix(k, s.opt.KeyPrefix+":{c:"), "}"); ok {
				note("user:" + chat)
			}
		}
		return nil
	}, nil)
	if err != nil {
		return fmt.Errorf("read chats: %w", err)
	}
	if err := p.scan(ctx, "{m:*", nil, func(keys []string) error { return p.migrateMarks(ctx, keys, persons) }, nil); err != nil {
		return fmt.Errorf("move marks: %w", err)
	}
	if err := p.scan(ctx, "{a:*", nil, func(keys []string) error { return p.migrateAttempts(ctx, keys, attempts) }, nil); err != nil {
		return fmt.Errorf("convert attempts: %w", err)
	}
	if err := p.resealHeld(ctx); err != nil {
		return fmt.Errorf("seal held updates: %w", err)
	}
	fields := []any{"version", schemaVersion, "canary:" + s.keys.Current(), s.keys.Seal(s.canaryAD(), []byte("shebao")),
		"since:" + s.keys.Current(), time.Now().UnixMilli()}
	if p.counts["scanned"] > 0 {
		fields = append(fields, "migrated", time.Now().UnixMilli())
	}
	if p.counts["attempts_left_for_later"] > 0 {
		// Attempt keys of users and ID numbers no value names: converted
		// when next used, until they have expired.
		fields = append(fields, "legacy_until", time.Now().Add(legacyWindow).UnixMilli())
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.HSet(octx, s.metaKey("schema"), fields...).Err(); err != nil {
		return s.classify(err)
	}
	attrs := []any{"took", time.Since(start).Round(time.Millisecond).String(), "persons", len(persons)}
	for _, k := range slices.Sorted(maps.Keys(p.counts)) {
		attrs = append(attrs, k, p.counts[k])
	}
	s.log.Info("redis store at schema 2", attrs...)
	if p.counts["scanned"] > 0 {
		s.rewriteAOF(ctx)
	}
	return nil
}

// rewriteAOF asks each node with an append-only file to rewrite it: the
// previous release's plain values are in its history until then. Where
// the command is not allowed (managed Redis), the operator is told.
// Snapshots and backups taken before hold them too; the README says so.
func (s *Store) rewriteAOF(ctx context.Context) {
	nodes, err := s.scanNodes(ctx)
	if err != nil {
		return
	}
	for _, n := range nodes {
		octx, cancel := s.op(ctx)
		info, err := n.c.Info(octx, "persistence").Result()
		if err == nil && strings.Contains(info, "aof_enabled:1") {
			err = n.c.BgRewriteAOF(octx).Err()
		}
		cancel()
		if err != nil {
			s.log.Warn("could not rewrite the append-only file: it holds the previous release's plain values until rewritten; run BGREWRITEAOF",
				"node", n.name, "err", err)
		}
	}
}

// migrateMarks moves the legacy marks among keys.
func (p *pass) migrateMarks(ctx context.Context, keys []string, persons map[string]string) error {
	s := p.s
	type move struct {
		key, person, mark string
		ttl               *redis.DurationCmd
	}
	var moves []move
	var orphans []string
	for _, k := range keys {
		name := strings.TrimSuffix(strings.TrimPrefix(k, s.opt.KeyPrefix+":{m:"), "}")
		hash, mark, ok := legacyMark(name)
		if !ok {
			continue
		}
		if person, known := persons[hash]; known {
			moves = append(moves, move{key: k, person: person, mark: mark})
		} else {
			orphans = append(orphans, k)
		}
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	if len(moves) > 0 {
		_, err := s.rdb.Pipelined(octx, func(pipe redis.Pipeliner) error {
			for i := range moves {
				moves[i].ttl = pipe.PTTL(octx, moves[i].key)
			}
			return nil
		})
		if err != nil {
			return s.classify(err)
		}
	}
	var puts []scriptCall
	for _, m := range moves {
		if ttl := m.ttl.Val(); ttl > 0 {
			tag := s.personTags(m.person)[0]
			puts = append(puts, scriptCall{keys: []string{s.personKey(tag, "idx")}, args: []any{s.personKey(tag, "m:"), m.mark, ttl.Milliseconds()}})
		}
	}
	if len(puts) > 0 {
		// Copied before the old ones are deleted.
		if _, err := s.evalPipelined(octx, putMarksScript, puts); err != nil {
			return err
		}
		p.counts["marks_moved"] += len(puts)
	}
	_, err := s.rdb.Pipelined(octx, func(pipe redis.Pipeliner) error {
		for _, m := range moves {
			pipe.Del(octx, m.key)
		}
		for _, k := range orphans {
			pipe.Del(octx, k)
		}
		return nil
	})
	p.counts["marks_orphaned"] += len(orphans)
	return s.classify(err)
}

// migrateAttempts converts the legacy attempt keys among keys whose
// throttle key is known.
func (p *pass) migrateAttempts(ctx context.Context, keys []string, known map[string]string) error {
	s := p.s
	hashes := map[string]string{}
	for _, k := range keys {
		h, _, ok := strings.Cut(strings.TrimPrefix(k, s.opt.KeyPrefix+":{a:"), "}:")
		if key, found := known[h]; ok && found {
			hashes[h] = key
		} else if ok {
			p.counts["attempts_left_for_later"]++
		}
	}
	if len(hashes) == 0 {
		return nil
	}
	type read struct {
		key     string
		n, pttl *redis.Cmd
		lock    *redis.StringCmd
	}
	var reads []read
	octx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.rdb.Pipelined(octx, func(pipe redis.Pipeliner) error {
		for _, key := range hashes {
			n := legacyAttemptKey(s.opt.KeyPrefix, key, "n")
			reads = append(reads, read{key: key, n: pipe.Do(octx, "GET", n), pttl: pipe.Do(octx, "PTTL", n),
				lock: pipe.Get(octx, legacyAttemptKey(s.opt.KeyPrefix, key, "lock"))})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return s.classify(err)
	}
	now := time.Now()
	var merges []scriptCall
	for _, r := range reads {
		if hold, attempts := legacyThrottle(r.n, r.pttl, r.lock, now); hold > 0 || len(attempts) > 0 {
			// Merged without charging: a budget no count reaches, and the
			// previous release's window.
			merges = append(merges, s.throttleCall(convertThrottle(r.key), now, "", merge{hold: hold, attempts: attempts}))
		}
	}
	if len(merges) > 0 {
		if _, err := s.evalPipelined(octx, throttleScript, merges); err != nil {
			return err
		}
		p.counts["attempts_converted"] += len(merges)
	}
	_, err = s.rdb.Pipelined(octx, func(pipe redis.Pipeliner) error {
		for _, r := range reads {
			pipe.Del(octx, legacyAttemptKey(s.opt.KeyPrefix, r.key, "n"), legacyAttemptKey(s.opt.KeyPrefix, r.key, "lock"))
		}
		return nil
	})
	return s.classify(err)
}

// convertThrottle is the policy a conversion merges under: it admits
// everything (so it charges and refuses nothing) and keeps attempts for
// the previous release's window.
func convertThrottle(key string) bot.Throttle {
	return bot.Throttle{Key: key, Policy: bot.ThrottlePolicy{Free: 1 << 30, Delay: time.Millisecond, MaxDelay: time.Millisecond, Window: legacyWindow}}
}

// Maintain runs key rotations until ctx ends: every MaintainEvery it
// looks whether values may be sealed under a key other than the current
// one (SHEBAO_KEYS got a new first key) and, once the new key has been
// current for RotateAfter and no other replica is at it, re-seals them
// under the current key and moves the persons' marks to their current
// tags. serve runs it in the background.
func (s *Store) Maintain(ctx context.Context) error {
	token := rand.Text()
	for {
		if _, err := s.rotate(ctx, token); err != nil && ctx.Err() == nil {
			s.log.Warn("key rotation; resumes at the next check", "err", err)
		}
		t := time.NewTimer(s.opt.MaintainEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// rotate runs the rotation when one is due and the lease is free, and
// reports whether it finished one. It resumes where a pass cut short
// stopped (rotate:values in the schema).
//
// Throttles are left alone: they count attempts under older tags while the
// ring holds the older key (pullThrottles), and those expire within their
// window. Phone tags inside links are made again at each records access
// (the engine); a link not used since still needs the older key to be
// checked, so the README says to keep a retired key for the 90 days a link
// lasts.
func (s *Store) rotate(ctx context.Context, token string) (bool, error) {
	h, err := s.readSchema(ctx)
	if err != nil {
		return false, err
	}
	pending := s.pendingKeys(h)
	s.rotating.Store(len(pending) > 0)
	if len(pending) == 0 {
		return false, nil
	}
	if since, err := strconv.ParseInt(h["since:"+s.keys.Current()], 10, 64); err == nil &&
		time.Since(time.UnixMilli(since)) < s.opt.RotateAfter {
		return false, nil // replicas on the old keyring may still be running
	}
	ok, err := s.lease(ctx, token)
	if err != nil || !ok {
		return false, err
	}
	defer s.unlease(token)
	start := time.Now()
	p := &pass{s: s, token: token, pause: s.opt.MaintainPause, counts: map[string]int{}}
	// A cursor per node: "rotate:values" (one server), "rotate:values:<addr>".
	cursorField := func(node string) string {
		if node == "" {
			return "rotate:values"
		}
		return "rotate:values:" + node
	}
	var resumed []string
	for f := range h {
		if strings.HasPrefix(f, "rotate:values") {
			resumed = append(resumed, f)
		}
	}
	s.log.Info("key rotation", "to", s.keys.Current(), "from", pending, "resume", len(resumed) > 0)
	batches := 0
	from := func(node string) uint64 {
		v := h[cursorField(node)]
		if v == "done" {
			return nodeDone
		}
		c, _ := strconv.ParseUint(v, 10, 64)
		return c
	}
	err = p.scan(ctx, "{u:*", from, func(keys []string) error {
		var persons []string
		err := p.reseal(ctx, keys, func(person, part string) {
			if part != dialogKey {
				persons = append(persons, person)
			}
		})
		if err != nil {
			return err
		}
		for _, person := range persons {
			tags := s.personTags(person)
			for _, old := range tags[1:] {
				n, err := s.moveMarks(ctx, old, tags[0])
				if err != nil {
					return err
				}
				p.counts["marks_moved"] += n
				if err := s.moveChosen(ctx, old, tags[0]); err != nil {
					return err
				}
			}
		}
		if batches++; batches%20 == 0 {
			s.log.Info("key rotation progress", "scanned", p.counts["scanned"], "resealed", p.counts["resealed"], "marks_moved", p.counts["marks_moved"])
		}
		return nil
	}, func(node string, next uint64) error {
		octx, cancel := s.op(ctx)
		defer cancel()
		v := strconv.FormatUint(next, 10)
		if next == 0 {
			// This node is done: a resumed pass must not walk it again
			// from the start.
			v = "done"
		}
		return s.classify(s.rdb.HSet(octx, s.metaKey("schema"), cursorField(node), v).Err())
	})
	if err != nil {
		return false, err
	}
	if err := p.resealHeld(ctx); err != nil {
		return false, err
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	args := []any{}
	now := time.Now().UnixMilli()
	for _, id := range pending {
		args = append(args, "retired:"+id, now)
	}
	h, err = s.readSchema(ctx)
	if err != nil {
		return false, err
	}
	var cursors []string
	for f := range h {
		if strings.HasPrefix(f, "rotate:values") {
			cursors = append(cursors, f)
		}
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(octx, s.metaKey("schema"), args...)
	if len(cursors) > 0 {
		pipe.HDel(octx, s.metaKey("schema"), cursors...)
	}
	if _, err := pipe.Exec(octx); err != nil {
		return false, s.classify(err)
	}
	s.rotating.Store(false)
	s.log.Info("key rotation done: keep the retired key in SHEBAO_KEYS for 90 days (phone checks of links not used since), then remove it",
		"to", s.keys.Current(), "retired", pending, "took", time.Since(start).Round(time.Millisecond).String(),
		"scanned", p.counts["scanned"], "resealed", p.counts["resealed"], "marks_moved", p.counts["marks_moved"],
		"held_resealed", p.counts["held_resealed"], "unreadable", p.counts["unreadable"])
	return true, nil
}
