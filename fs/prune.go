package fs

import (
	"sync"
	"sync/atomic"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// inodeLimiter bounds the daemon's inode tree. The kernel keeps dentries
// (and so our nodes) for as long as their long timeouts allow, which for a
// full walk of a large image is every entry. Past the limit, the oldest
// nodes are offered back to the kernel with FUSE_NOTIFY_PRUNE; it forgets
// those not in use, and go-fuse frees them on FORGET. Pruned entries are
// looked up again, from the composer's cache, when next needed.
type inodeLimiter struct {
	max  int
	root *fusefs.Inode

	mu    sync.Mutex
	queue []*node // in creation order; forgotten ones are skipped
	live  atomic.Int64
	kick  chan struct{}
	stop  chan struct{}
}

// pruneBatch is how many inodes one notification names.
const pruneBatch = 512

func newInodeLimiter(max int) *inodeLimiter {
	return &inodeLimiter{max: max, kick: make(chan struct{}, 1), stop: make(chan struct{})}
}

// added records a node the kernel now knows.
func (l *inodeLimiter) added(n *node) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.queue = append(l.queue, n)
	if len(l.queue) > 4*l.max {
		// Drop nodes the kernel forgot on its own.
		live := l.queue[:0]
		for _, q := range l.queue {
			if !q.forgot.Load() {
				live = append(live, q)
			}
		}
		clear(l.queue[len(live):])
		l.queue = live
	}
	l.mu.Unlock()
	if l.live.Add(1) > int64(l.max) {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// forgotten records a FORGET.
func (l *inodeLimiter) forgotten() {
	if l != nil {
		l.live.Add(-1)
	}
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
		over := int(l.live.Load()) - l.max*3/4 // prune down to 3/4 of the limit
		if over <= 0 {
			continue
		}
		var batch []*fusefs.Inode
		l.mu.Lock()
		i := 0
		for ; i < len(l.queue) && len(batch) < over; i++ {
			n := l.queue[i]
			if n.forgot.Load() {
				continue
			}
			batch = append(batch, n.EmbeddedInode())
		}
		// Keep the nodes we asked about at the back: the kernel may still
		// hold some of them.
		rest := make([]*node, 0, len(l.queue)-i+len(batch))
		rest = append(rest, l.queue[i:]...)
		for _, in := range batch {
			if nn, ok := in.Operations().(*node); ok && !nn.forgot.Load() {
				rest = append(rest, nn)
			}
		}
		l.queue = rest
		l.mu.Unlock()
		for len(batch) > 0 {
			k := min(pruneBatch, len(batch))
			if errno := l.root.NotifyPrune(batch[:k]); errno != 0 {
				break // not supported by this kernel: nothing more to do
			}
			batch = batch[k:]
		}
	}
}

func (l *inodeLimiter) close() {
	if l != nil {
		close(l.stop)
	}
}

var _ = (fusefs.NodeOnForgetter)((*node)(nil))

// OnForget is called when the kernel has forgotten the node.
func (n *node) OnForget() {
	n.forgot.Store(true)
	n.fs.limiter.forgotten()
}
