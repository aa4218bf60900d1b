//go:build unix

package records

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// lockPoll is how often a waiting import tries the folder lock again.
const lockPoll = 200 * time.Millisecond

// lockDir takes an exclusive flock(2) on the folder itself, so that no
// lock file is left beside the records; it is released when the process
// ends, however it ends. waiting, when not nil, is called once if the lock
// is held elsewhere; lockDir then waits until ctx ends.
func lockDir(ctx context.Context, dir string, waiting func()) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, unwrapPath(err)
	}
	fd := int(f.Fd())
	for first := true; ; first = false {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(fd, syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		if first && waiting != nil {
			waiting()
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// keepOwner gives the new file at path the owner and group of the file
// described by old, as far as the process may: only root can give a file
// away, but an owner can set any group it is in (the bot's group, when the
// file is shared with it). It returns a note for the operator when the
// new file's owner or group differs from the old one's.
func keepOwner(old fs.FileInfo, path string) string {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	uid, gid := int(st.Uid), int(st.Gid)
	if os.Chown(path, uid, gid) == nil {
		return ""
	}
	if os.Chown(path, -1, gid) == nil {
		if uid == os.Getuid() {
			return ""
		}
		return fmt.Sprintf("the new file belongs to uid %d, not to uid %d as the old one did (its group %d is kept): chown it if the bot needs that", os.Getuid(), uid, gid)
	}
	return fmt.Sprintf("the new file could not keep the old one's owner and group (uid %d, gid %d): chown or chgrp it so that the bot can read it", uid, gid)
}
