package records

import (
	"context"
	"fmt"
)

// Ping reports whether the record database answers a statement, for a
// readiness probe: it fails when the database is closed, when no pooled
// connection is free before ctx ends, or when SQLite cannot read the
// schema. It is cheap: it reads no records, and SQLite may answer from its
// page cache, so it does not verify the file's contents.
func (db *DB) Ping(ctx context.Context) error {
	h := db.get(ctx)
	defer h.put()
	var n int
	if err := h.sql.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return fmt.Errorf("ping records: %w", err)
	}
	return nil
}
