package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// repoLock is the repository-wide lock on `<repo>/.lock`: an OFD lock,
// shared for transactions and reachability scans, exclusive for prune, as
// libostree takes it. Like libostree's, it is recursive within a process:
// nested holders share the file description, and the strongest held kind
// is the one on the file.
type repoLock struct {
	path    string
	timeout time.Duration // <0: wait forever

	mu        sync.Mutex
	f         *os.File
	shared    int
	exclusive int
}

// LockKind is the kind of repository lock.
type LockKind int

// Lock kinds.
const (
	LockShared LockKind = iota
	LockExclusive
)

func (k LockKind) String() string {
	if k == LockExclusive {
		return "exclusive"
	}
	return "shared"
}

// ofdLock tries an OFD lock of the whole file without blocking.
func ofdLock(f *os.File, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// lockWait retries a non-blocking OFD lock until ctx ends or the timeout
// passes. It polls with a short backoff, faster than libostree's 1 s.
func lockWait(ctx context.Context, f *os.File, typ int16, timeout time.Duration, what string) error {
	start := time.Now()
	delay := time.Millisecond
	for {
		err := ofdLock(f, typ)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("lock %s: %w", what, err)
		}
		if timeout >= 0 && time.Since(start) >= timeout {
			return fmt.Errorf("%s: held by another process for %s: %w", what, timeout, ErrLocked)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("lock %s: %w", what, ctx.Err())
		case <-t.C:
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// Lock takes the repository lock of the given kind and returns its release.
func (l *repoLock) Lock(ctx context.Context, kind LockKind) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o660)
		if err != nil {
			return nil, fmt.Errorf("repository lock: %w", err)
		}
		l.f = f
	}
	need := kind == LockExclusive && l.exclusive == 0 || kind == LockShared && l.shared == 0 && l.exclusive == 0
	if need {
		typ := int16(unix.F_RDLCK)
		if kind == LockExclusive {
			typ = unix.F_WRLCK
		}
		if err := lockWait(ctx, l.f, typ, l.timeout, "repository lock "+l.path+" ("+kind.String()+")"); err != nil {
			if l.shared == 0 && l.exclusive == 0 {
				l.f.Close()
				l.f = nil
			}
			return nil, err
		}
	}
	if kind == LockExclusive {
		l.exclusive++
	} else {
		l.shared++
	}
	var once sync.Once
	return func() { once.Do(func() { l.release(kind) }) }, nil
}

func (l *repoLock) release(kind LockKind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if kind == LockExclusive {
		l.exclusive--
	} else {
		l.shared--
	}
	switch {
	case l.exclusive == 0 && l.shared == 0:
		l.f.Close() // closing the description drops the OFD lock
		l.f = nil
	case kind == LockExclusive && l.exclusive == 0:
		// Downgrade to shared; OFD locks convert atomically.
		_ = ofdLock(l.f, unix.F_RDLCK)
	}
}
