package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// webhookKey holds the fingerprint of the last webhook registration
// (telegram.WebhookState): an HMAC keyed with the bot token, nothing that
// reveals the secret. One key for all replicas.
func (s *Store) webhookKey() string { return s.metaKey("telegram-webhook") }

// WebhookFingerprint implements telegram.WebhookState; "" when none is
// stored.
func (s *Store) WebhookFingerprint(ctx context.Context) (string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	v, err := s.rdb.Get(ctx, s.webhookKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read webhook fingerprint: %w", s.classify(err))
	}
	return v, nil
}

// SetWebhookFingerprint implements telegram.WebhookState.
func (s *Store) SetWebhookFingerprint(ctx context.Context, fp string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.rdb.Set(ctx, s.webhookKey(), fp, 0).Err(); err != nil {
		return fmt.Errorf("store webhook fingerprint: %w", s.classify(err))
	}
	return nil
}
