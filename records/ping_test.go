package records

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestPing(t *testing.T) {
	ctx := context.Background()
	db, err := OpenForImport(ctx, filepath.Join(t.TempDir(), "records.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("open file: %v", err)
	}
	db.Close()
	if err := db.Ping(ctx); err == nil {
		t.Error("Ping passed on a closed database")
	}
}

func TestPingFailsWhenNoConnectionAnswers(t *testing.T) {
	ctx := context.Background()
	db, err := OpenDemo(ctx, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("demo records: %v", err)
	}
	// The demo database has a single connection; while something holds
	// it, nothing answers, and a probe must say so within its deadline.
	tx, err := db.cur.sql.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // only held
	pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := db.Ping(pctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping with the only connection held = %v, want the deadline", err)
	}
}
