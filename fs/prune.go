package fs

import (
	"sync"
)

// inodeLimiter bounds the daemon's inode tree. The kernel keeps dentries
// (and so our nodes) for as long as their long timeouts allow, which for a
// full walk of a large image is every entry. Past the limit, the oldest
// nodes are offered back to the kernel with FUSE_NOTIFY_PRUNE; it forgets
// those not in use, and the node table drops them on FORGET. Pruned entries are
// looked up again, from the composer's cache, when next needed.
//
// The nodes the kernel holds are kept in a list threaded through the
// nodes themselves, oldest first, and a node leaves it as it is
// forgotten: the limiter holds no node the kernel has let go of, so
// that the memory of the tree is that of the live nodes alone.
type inodeLimiter struct {
	max int
	// notify sends FUSE_NOTIFY_PRUNE for node IDs; false: the kernel
	// cannot.
	notify func(ids []uint64) bool

	mu         sync.Mutex
	head, tail *node // the live nodes, in creation order (or since last offered)
	live       int   // the list's length
	peak       int   // the most live at once
	kick       chan struct{}
	stop       chan struct{}
}

// pruneBatch is how many inodes one notification names.
const pruneBatch = 512

func newInodeLimiter(max int) *inodeLimiter {
	return &inodeLimiter{max: max, kick: make(chan struct{}, 1), stop: make(chan struct{})}
}

// pushLocked appends n to the list; l.mu held.
func (l *inodeLimiter) pushLocked(n *node) {
	n.prev, n.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = n
	} else {
		l.head = n
	}
	l.tail = n
	l.live++
	l.peak = max(l.peak, l.live)
}

// unlinkLocked takes n out of the list; l.mu held.
func (l *inodeLimiter) unlinkLocked(n *node) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
	l.live--
}

// listedLocked reports whether n is in the list; l.mu held.
func (l *inodeLimiter) listedLocked(n *node) bool { return n.prev != nil || l.head == n }

// added records a node the kernel now knows.
func (l *inodeLimiter) added(n *node) {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.listedLocked(n) {
		l.mu.Unlock()
		return
	}
	l.pushLocked(n)
	over := l.live > l.max
	l.mu.Unlock()
	if over {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// forgotten records that the kernel forgot n.
func (l *inodeLimiter) forgotten(n *node) {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.listedLocked(n) {
		l.unlinkLocked(n)
	}
	l.mu.Unlock()
}

// count reports the live nodes.
func (l *inodeLimiter) count() int {
	live, _ := l.counts()
	return live
}

// counts reports the live nodes and the most there have been at once.
func (l *inodeLimiter) counts() (live, peak int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live, l.peak
}

// run prunes in the background until stopped. Notifications are sent
// outside request handlers, as the kernel requires.
func (l *inodeLimiter) run() {
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		}
		l.prune()
	}
}

// prune offers the oldest nodes back to the kernel, down to 3/4 of the
// limit. They go to the back of the list: the kernel may keep some
// (those in use, directories whose children it still holds), and those
// are offered again only after the others.
func (l *inodeLimiter) prune() {
	l.mu.Lock()
	over := l.live - l.max*3/4
	if over <= 0 {
		l.mu.Unlock()
		return
	}
	batch := make([]uint64, 0, over)
	for len(batch) < over && l.head != nil {
		n := l.head
		l.unlinkLocked(n)
		batch = append(batch, n.ino)
		l.pushLocked(n)
	}
	l.mu.Unlock()
	for len(batch) > 0 {
		k := min(pruneBatch, len(batch))
		if !l.notify(batch[:k]) {
			return // not supported by this kernel: nothing more to do
		}
		batch = batch[k:]
	}
}

func (l *inodeLimiter) close() {
	if l != nil {
		close(l.stop)
	}
}
