package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Web chat sessions (bot/web). A session is named by a keyed tag of the
// token in the browser's cookie, never the token, and holds the identity
// the engine knows the session by ("web:<tag>", made when the session
// began). The adapter passes the token's tags under every key of the
// ring, current first: a session found under an older key's tag is moved
// to the current one, and keeps its identity, so a key rotation logs no
// one out. Sessions idle for their TTL expire; one moved or touched keeps
// its TTL fresh.
//
//	<p>:{w:<tag>}   the session's identity, TTL sliding

func (s *Store) webSessionKey(tag string) string { return s.opt.KeyPrefix + ":{w:" + tag + "}" }

// CreateWebSession stores a new session named tag for identity id, for
// ttl.
func (s *Store) CreateWebSession(ctx context.Context, tag, id string, ttl time.Duration) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.Set(ctx, s.webSessionKey(tag), id, ttl).Err(); err != nil {
		return fmt.Errorf("create web session: %w", s.classify(err))
	}
	return nil
}

// TouchWebSession returns the identity of the session named by one of
// tags (current key first) and extends its life to ttl from now; "" when
// there is none (it expired, ended, or never was).
func (s *Store) TouchWebSession(ctx context.Context, tags []string, ttl time.Duration) (string, error) {
	if len(tags) == 0 {
		return "", nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(tags))
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for i, tag := range tags {
			cmds[i] = pipe.GetEx(ctx, s.webSessionKey(tag), ttl)
		}
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("read web session: %w", s.classify(err))
	}
	for i, c := range cmds {
		id, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return "", fmt.Errorf("read web session: %w", s.classify(err))
		}
		if i > 0 {
			// Named under an older key: name it under the current one.
			// The two names are in different slots, so this is not
			// atomic; a failure leaves it where it was, found next time.
			if err := s.rdb.Set(ctx, s.webSessionKey(tags[0]), id, ttl).Err(); err != nil {
				s.log.Warn("move web session to the current key", "err", s.classify(err))
			} else if err := s.rdb.Del(ctx, s.webSessionKey(tags[i])).Err(); err != nil {
				s.log.Warn("delete web session under an older key", "err", s.classify(err))
			}
		}
		return id, nil
	}
	return "", nil
}

// EndWebSession deletes the session named by any of tags.
func (s *Store) EndWebSession(ctx context.Context, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, tag := range tags {
			pipe.Del(ctx, s.webSessionKey(tag))
		}
	})
	if err != nil {
		return fmt.Errorf("end web session: %w", s.classify(err))
	}
	return nil
}
