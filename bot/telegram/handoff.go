package telegram

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Handoff keeps fetched updates in shared storage, so that polling can
// confirm them to Telegram before they are handled and a crash still loses
// none: the next RunPolling handles what is left. bot/redisstore
// implements it. The adapter encrypts what it holds (see sealer): the
// storage sees update IDs, times and ciphertext.
type Handoff interface {
	// HoldUpdates stores updates (update_id to the update's JSON) received at
	// at. Nothing may be half-stored: on error, none counts as held.
	HoldUpdates(ctx context.Context, at time.Time, updates map[int64][]byte) error
	// ReleaseUpdates forgets updates that were handled (or given up on).
	ReleaseUpdates(ctx context.Context, ids []int64) error
	// HeldUpdates calls yield for each update still held, in update_id order.
	HeldUpdates(ctx context.Context, yield func(id int64, at time.Time, raw []byte)) error
	// ReadUpdates calls yield for each of ids that is held: polling
	// reads back the updates of a chat with a backlog, which it kept by
	// ID alone.
	ReadUpdates(ctx context.Context, ids []int64, yield func(id int64, at time.Time, raw []byte)) error
}

// releaser batches Handoff.ReleaseUpdates calls off the handling path: a handled
// update is released within releaseEvery, in one round trip with the
// others. An update handled but not yet released when the process dies is
// recovered and handled again, where the Coordinator's dedupe drops it.
type releaser struct {
	h     Handoff
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	pending []int64
	kick    chan struct{} // a full batch is waiting
	quit    chan struct{}
	done    chan struct{}
}

const (
	releaseBatch = 256
	// maxUnreleased bounds the IDs kept while ReleaseUpdates fails; past it the
	// oldest are given up on (their updates would be recovered, found
	// handled by the Coordinator and dropped).
	maxUnreleased  = 100_000
	releaseTimeout = 2 * time.Second
)

func newReleaser(h Handoff, log *slog.Logger, every time.Duration) *releaser {
	return &releaser{h: h, log: log, every: every, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

func (r *releaser) add(id int64) {
	r.mu.Lock()
	r.pending = append(r.pending, id)
	full := len(r.pending) >= releaseBatch
	r.mu.Unlock()
	if full {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

func (r *releaser) run() {
	defer close(r.done)
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		select {
		case <-r.quit:
			r.flush()
			return
		case <-tick.C:
		case <-r.kick:
		}
		r.flush()
	}
}

// stop releases what is pending and ends run.
func (r *releaser) stop() {
	close(r.quit)
	<-r.done
}

func (r *releaser) flush() {
	r.mu.Lock()
	ids := r.pending
	r.pending = nil
	r.mu.Unlock()
	// In chunks: after an outage the backlog may be large, and one huge
	// call could keep missing its deadline.
	for len(ids) > 0 {
		n := min(len(ids), 4*releaseBatch)
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		err := r.h.ReleaseUpdates(ctx, ids[:n])
		cancel()
		if err != nil {
			r.mu.Lock()
			r.pending = append(ids, r.pending...)
			if over := len(r.pending) - maxUnreleased; over > 0 {
				r.pending = r.pending[over:]
			}
			left := len(r.pending)
			r.mu.Unlock()
			r.log.Warn("release handled updates; trying again", "err", err, "pending", left)
			return
		}
		ids = ids[n:]
	}
}

// sealer encrypts what is held (AES-256-GCM), because held updates are
// message text (questions about one's health, an ID number typed during
// /verify) and Redis may write them to disk (AOF) before they are
// released. The key is derived from the bot token, which every replica
// has and which already grants access to the same updates at Telegram, so
// it needs no configuration of its own. After a token change, updates
// held under the old one cannot be opened and are dropped.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(token string) (*sealer, error) {
	key, err := hkdf.Key(sha256.New, []byte(token), nil, "shebao held updates v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive hand-off key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("hand-off cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("hand-off cipher: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns nonce || ciphertext; the update ID is authenticated with it,
// so a sealed update cannot be passed off under another ID.
func (s *sealer) seal(id int64, raw []byte) []byte {
	n := s.aead.NonceSize()
	out := make([]byte, n, n+len(raw)+s.aead.Overhead())
	rand.Read(out) // never fails (crypto/rand)
	return s.aead.Seal(out, out, raw, idBytes(id))
}

func (s *sealer) open(id int64, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errors.New("sealed update too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], idBytes(id))
}

func idBytes(id int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(id))
}
