package remote

import "github.com/ostree-mount/ostree-mount/repo"

// LazyWaiters is how many callers wait for the fetch in flight of an
// object (0: none in flight).
func LazyWaiters(l *Lazy, t repo.ObjectType, c repo.Checksum) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if call, ok := l.inflight[repo.ObjectName{Type: t, Checksum: c}]; ok {
		return call.waiters
	}
	return 0
}
