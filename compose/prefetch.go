package compose

import (
	"context"
	"sync"
)

// prefetcher composes directories ahead of need: the subdirectories of a
// directory that is being listed, which a walk (find, ls -R, tar, du)
// visits next. A cold directory costs reads spread over the object store;
// composing several at once overlaps them. Requests go on a bounded
// stack, newest first, as a depth-first walk wants them; the oldest are
// dropped when it is full.
type prefetcher struct {
	t *Tree

	mu      sync.Mutex
	cond    *sync.Cond
	stack   []prefetchItem
	closed  bool
	started bool
	busy    int // items being composed
	wg      sync.WaitGroup
	workers int
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
		for i := 0; i < p.workers; i++ {
			p.wg.Add(1)
			go p.run()
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

func (p *prefetcher) run() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for len(p.stack) == 0 && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		it := p.stack[len(p.stack)-1]
		p.stack[len(p.stack)-1] = prefetchItem{}
		p.stack = p.stack[:len(p.stack)-1]
		p.busy++
		p.mu.Unlock()
		// Errors are not ours to report: the walk that needs the
		// directory composes it again and reports them.
		if d, err := p.t.ReadDir(context.Background(), it.e); err == nil && it.level < prefetchLevels {
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
	p.mu.Lock()
	p.closed = true
	p.stack = nil
	if p.cond != nil {
		p.cond.Broadcast()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
