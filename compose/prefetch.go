package compose

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"
)

// prefetcher composes directories ahead of need: the subdirectories of a
// directory that is being listed, which a walk (find, ls -R, tar, du)
// visits next. A cold directory costs reads spread over the object store;
// composing several at once overlaps them. Requests go on a bounded
// stack, newest first, as a depth-first walk wants them; the oldest are
// dropped when it is full.
//
// Its workers run in an errgroup, with a context that close cancels: a
// worker waiting on a composition stops waiting when the tree closes.
type prefetcher struct {
	t      *Tree
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	cond    *sync.Cond
	stack   []prefetchItem
	closed  bool
	started bool
	busy    int // items being composed
	g       errgroup.Group
	workers int
}

func newPrefetcher(t *Tree, workers int) *prefetcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &prefetcher{t: t, ctx: ctx, cancel: cancel, workers: workers}
}

type prefetchItem struct {
	e     *Entry
	level int // 1 for a listed directory's subdirectories
}

// prefetchDepth bounds the queued directories; prefetchLevels bounds how
// far below a listed directory prefetching goes.
const (
	prefetchDepth  = 512
	prefetchLevels = 2
)

func (p *prefetcher) push(dirs []*Entry, level int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if !p.started {
		p.started = true
		p.cond = sync.NewCond(&p.mu)
		p.g.SetLimit(p.workers)
		for i := 0; i < p.workers; i++ {
			p.g.Go(p.run)
		}
	}
	// Pushed in reverse, so that the first subdirectory pops first.
	for i := len(dirs) - 1; i >= 0; i-- {
		p.stack = append(p.stack, prefetchItem{dirs[i], level})
	}
	if over := len(p.stack) - prefetchDepth; over > 0 {
		clear(p.stack[:over])
		p.stack = p.stack[over:]
	}
	p.cond.Broadcast()
}

// run composes queued directories until close. Errors are not its to
// report (see below), so it returns none.
func (p *prefetcher) run() error {
	for {
		p.mu.Lock()
		for len(p.stack) == 0 && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return nil
		}
		it := p.stack[len(p.stack)-1]
		p.stack[len(p.stack)-1] = prefetchItem{}
		p.stack = p.stack[:len(p.stack)-1]
		p.busy++
		p.mu.Unlock()
		// Errors are not ours to report: the walk that needs the
		// directory composes it again and reports them.
		if d, err := p.t.ReadDir(p.ctx, it.e); err == nil && it.level < prefetchLevels {
			p.t.prefetchBelow(d, it.level+1)
		}
		p.mu.Lock()
		p.busy--
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// wait returns once nothing is queued or being composed.
func (p *prefetcher) wait() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.started && !p.closed && (len(p.stack) > 0 || p.busy > 0) {
		p.cond.Wait()
	}
}

func (p *prefetcher) close() {
	p.cancel()
	p.mu.Lock()
	p.closed = true
	p.stack = nil
	if p.cond != nil {
		p.cond.Broadcast()
	}
	p.mu.Unlock()
	_ = p.g.Wait()
}
