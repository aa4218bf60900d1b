package redisstore

import (
	"context"
	"testing"
)

// TestWebhookFingerprint: what one replica stores the next one reads;
// nothing stored reads as "".
func TestWebhookFingerprint(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := context.Background()
	if fp, err := s.WebhookFingerprint(ctx); err != nil || fp != "" {
		t.Fatalf("fresh store: %q, %v", fp, err)
	}
	if err := s.SetWebhookFingerprint(ctx, "v1:abc"); err != nil {
		t.Fatal(err)
	}
	if fp, err := s.WebhookFingerprint(ctx); err != nil || fp != "v1:abc" {
		t.Errorf("read back %q, %v", fp, err)
	}
}
