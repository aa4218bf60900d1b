//go:build !unix

package records

import (
	"context"
	"io/fs"
)

// lockDir does not lock where flock(2) is missing: run one import at a
// time there.
func lockDir(context.Context, string, func()) (func(), error) { return func() {}, nil }

// keepOwner keeps nothing where files have no Unix owner.
func keepOwner(fs.FileInfo, string) string { return "" }
