package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
)

// Lazy is a store over a local repository that fetches the objects it
// lacks from a remote on demand: on a local miss it fetches the object,
// verifies it against its checksum (repo's WriteFetched* do, before
// anything is staged), writes it into the local repository and serves it
// from there. It has the methods of compose.ObjectReader and fs.Objects
// (this package sits below both and does not name them).
//
// Concurrent misses of one object fetch it once; at most Parallel
// fetches run at a time. Fetched objects are staged into a shared
// transaction that is committed as soon as no fetch is writing into it
// (group commit): an object is visible and durable before it is served,
// and concurrent misses share one syncfs instead of one each.
//
// A remote that fails yields an error wrapping repo.ErrUnavailable (after
// the fetcher's retries), logged once per object until it succeeds;
// nothing is remembered, so the same read succeeds once the remote is
// back. An object that does not match its checksum is never stored and
// its error (repo.ErrChecksumMismatch, repo.ErrCorrupt) names the object
// and its URL; it is logged at error level.
type Lazy struct {
	r       *repo.Repo
	f       Fetcher
	remote  string
	log     *slog.Logger
	timeout time.Duration
	sem     chan struct{}

	mu       sync.Mutex
	inflight map[repo.ObjectName]*lazyCall
	failing  map[repo.ObjectName]bool // logged as failing

	b batch

	base   context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // fetches running

	// Stats counts the remote's requests and bytes.
	Stats *Stats
	// Fetched counts the objects fetched and stored.
	Fetched struct{ Meta, Files int64 }
}

type lazyCall struct {
	done    chan struct{}
	err     error
	waiters int // callers waiting (tests)
}

// LazyOptions are the options of NewLazy.
type LazyOptions struct {
	// Parallel bounds the fetches in flight; 8 when 0.
	Parallel int
	// Logger receives the failures (nil: slog.Default()).
	Logger *slog.Logger
}

// NewLazy returns a lazy store over r fetching from the remote name of
// r's config.
func NewLazy(r *repo.Repo, name string, o LazyOptions) (*Lazy, error) {
	rm, err := Lookup(r, name)
	if err != nil {
		return nil, err
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	st := &Stats{}
	f, err := NewFetcher(rm, o.Parallel, st)
	if err != nil {
		return nil, err
	}
	l := newLazy(r, f, name, rm.Timeout, o)
	l.Stats = st
	return l, nil
}

// newLazy is NewLazy over a given fetcher (tests).
func newLazy(r *repo.Repo, f Fetcher, name string, timeout time.Duration, o LazyOptions) *Lazy {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	// A whole fetch, retries included, is bounded by the remote's
	// timeout, as each of its requests is: a reader waits no longer.
	total := timeout
	if total <= 0 {
		total = DefaultTimeout
	}
	base, cancel := context.WithCancel(context.Background())
	return &Lazy{r: r, f: f, remote: name, log: o.Logger, timeout: total,
		sem:      make(chan struct{}, o.Parallel),
		inflight: map[repo.ObjectName]*lazyCall{}, failing: map[repo.ObjectName]bool{},
		b: batch{r: r}, Stats: &Stats{}, base: base, cancel: cancel}
}

// Close ends the fetches in flight, waits for them, and releases the
// fetcher's connections.
func (l *Lazy) Close() error {
	l.cancel()
	l.wg.Wait()
	return l.f.Close()
}

// Repo is the local repository.
func (l *Lazy) Repo() *repo.Repo { return l.r }

// local runs read, and on a local miss fetches the object and runs it
// again.
func local[T any](ctx context.Context, l *Lazy, t repo.ObjectType, c repo.Checksum, read func() (T, error)) (T, error) {
	v, err := read()
	if err == nil || !errors.Is(err, repo.ErrObjectNotFound) {
		return v, err
	}
	if err := l.Ensure(ctx, t, c); err != nil {
		var zero T
		return zero, err
	}
	return read()
}

// ReadCommit reads a commit, fetched if missing.
func (l *Lazy) ReadCommit(ctx context.Context, c repo.Checksum) (*repo.Commit, error) {
	return local(ctx, l, repo.ObjCommit, c, func() (*repo.Commit, error) { return l.r.ReadCommit(ctx, c) })
}

// ReadCommitMeta reads a commit's detached metadata from the local
// repository: FetchCommits stored it with the commit, verified.
func (l *Lazy) ReadCommitMeta(c repo.Checksum) (repo.Metadata, error) {
	return l.r.ReadCommitMeta(c)
}

// ReadDirTree reads a dirtree, fetched if missing.
func (l *Lazy) ReadDirTree(ctx context.Context, c repo.Checksum) (*repo.DirTree, error) {
	return local(ctx, l, repo.ObjDirTree, c, func() (*repo.DirTree, error) { return l.r.ReadDirTree(ctx, c) })
}

// ReadDirMeta reads a dirmeta, fetched if missing.
func (l *Lazy) ReadDirMeta(ctx context.Context, c repo.Checksum) (*repo.DirMeta, error) {
	return local(ctx, l, repo.ObjDirMeta, c, func() (*repo.DirMeta, error) { return l.r.ReadDirMeta(ctx, c) })
}

// ReadFileMeta reads a content object's metadata; a missing object is
// fetched whole (its metadata is in the object).
func (l *Lazy) ReadFileMeta(ctx context.Context, c repo.Checksum) (*repo.FileMeta, error) {
	return local(ctx, l, repo.ObjFile, c, func() (*repo.FileMeta, error) { return l.r.ReadFileMeta(ctx, c) })
}

// OpenContent opens a regular file object's content, fetched whole if
// missing, from the local object.
func (l *Lazy) OpenContent(ctx context.Context, c repo.Checksum) (repo.Content, error) {
	return local(ctx, l, repo.ObjFile, c, func() (repo.Content, error) { return l.r.OpenContent(ctx, c) })
}

// VerifyContent checks the local object (fetched if missing).
func (l *Lazy) VerifyContent(ctx context.Context, c repo.Checksum) error {
	_, err := local(ctx, l, repo.ObjFile, c, func() (struct{}, error) { return struct{}{}, l.r.VerifyContent(ctx, c) })
	return err
}

// LocalObject reports whether an object is held locally, so that reading
// it fetches nothing: compose then prefers a layer's metadata index, and
// fs's warmer opens only local files.
func (l *Lazy) LocalObject(t repo.ObjectType, c repo.Checksum) bool {
	ok, err := l.r.HasObject(t, c)
	return ok && err == nil
}

// ContentFiles is the local repository's: in a bare mode every object
// served is a local file once fetched, so the mount may open files with
// no message to the daemon.
func (l *Lazy) ContentFiles() bool { return l.r.ContentFiles() }

// Statfs reports the local repository's filesystem.
func (l *Lazy) Statfs() (unix.Statfs_t, error) { return l.r.Statfs() }

// Ensure makes one object local: it fetches, verifies and stores it
// unless it is there, once for all concurrent callers. It returns when
// the object is visible in the local repository or the fetch failed, or
// when ctx ends (the fetch goes on for the others).
func (l *Lazy) Ensure(ctx context.Context, t repo.ObjectType, c repo.Checksum) error {
	n := repo.ObjectName{Type: t, Checksum: c}
	l.mu.Lock()
	call := l.startLocked(n)
	call.waiters++
	l.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w", t, c, ctx.Err())
	}
}

func (l *Lazy) startLocked(n repo.ObjectName) *lazyCall {
	call, ok := l.inflight[n]
	if !ok {
		call = &lazyCall{done: make(chan struct{})}
		l.inflight[n] = call
		l.wg.Add(1)
		go l.fetch(n, call)
	}
	return call
}

// fetch runs one object's fetch in a context of its own (a caller that
// gives up does not end it for the others), bounded by the remote's
// timeout.
func (l *Lazy) fetch(n repo.ObjectName, call *lazyCall) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.base, l.timeout)
	defer cancel()
	err := l.fetchOne(ctx, n)
	if err != nil && ctx.Err() != nil {
		// Our own deadline, not a reader's: the object is unavailable,
		// which is EIO, where a reader's ended context is EINTR.
		err = fmt.Errorf("remote %s: %s: no answer within %s (%v): %w", l.remote, objName(n), l.timeout, err, repo.ErrUnavailable)
	}
	l.mu.Lock()
	delete(l.inflight, n)
	switch {
	case l.base.Err() != nil || (call.waiters == 0 && errors.Is(err, repo.ErrUnavailable)):
		// Closing, or a fetch nobody waits for any more: a reader that
		// needs the object fetches it again and reports it.
		l.log.Debug("remote object not fetched", "remote", l.remote, "object", objName(n), "err", err)
	case err == nil:
		if l.failing[n] {
			l.log.Info("remote object fetched after a failure", "remote", l.remote, "object", objName(n))
		}
		delete(l.failing, n)
	case errors.Is(err, repo.ErrUnavailable):
		if !l.failing[n] {
			l.failing[n] = true
			l.log.Warn("remote object unavailable", "remote", l.remote, "object", objName(n), "err", err)
		}
	default:
		l.log.Error("remote object rejected", "remote", l.remote, "object", objName(n), "err", err)
	}
	l.mu.Unlock()
	call.err = err
	close(call.done)
}

func (l *Lazy) fetchOne(ctx context.Context, n repo.ObjectName) error {
	if have, err := l.r.HasObject(n.Type, n.Checksum); err != nil || have {
		return err
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", objName(n), ctx.Err())
	}
	defer func() { <-l.sem }()
	err := l.b.stage(ctx, func(tx *repo.Transaction) error {
		_, err := Store(ctx, l.f, tx, n.Type, n.Checksum)
		return err
	})
	if err != nil {
		return fmt.Errorf("remote %s: %w", l.remote, err)
	}
	l.mu.Lock()
	if n.Type == repo.ObjFile {
		l.Fetched.Files++
	} else {
		l.Fetched.Meta++
	}
	l.mu.Unlock()
	return nil
}

// FetchedCounts returns the numbers of metadata and content objects
// fetched so far.
func (l *Lazy) FetchedCounts() (meta, files int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Fetched.Meta, l.Fetched.Files
}

// batch is a group commit: writers stage into the open transaction, and
// the last one to finish commits it for everyone who wrote into it; a
// writer returns once its object is committed.
type batch struct {
	r          *repo.Repo
	mu         sync.Mutex
	tx         *repo.Transaction
	active     int          // writers staging into tx
	waiting    []chan error // writers done with tx, waiting for its commit
	committing bool         // a commit is running
	commits    int          // commits so far (tests)
}

func (b *batch) stage(ctx context.Context, fn func(*repo.Transaction) error) error {
	b.mu.Lock()
	if b.tx == nil {
		tx, err := b.r.Begin(ctx)
		if err != nil {
			b.mu.Unlock()
			return err
		}
		b.tx = tx
	}
	tx := b.tx
	b.active++
	b.mu.Unlock()

	err := fn(tx)

	b.mu.Lock()
	b.active--
	var ch chan error
	if err == nil {
		ch = make(chan error, 1)
		b.waiting = append(b.waiting, ch)
	}
	b.maybeCommitLocked()
	b.mu.Unlock()
	if ch == nil {
		return err
	}
	return <-ch
}

// maybeCommitLocked commits the open transaction when nobody writes into
// it and no commit runs; b.mu is held.
func (b *batch) maybeCommitLocked() {
	if b.tx == nil || b.active > 0 || b.committing {
		return
	}
	tx, waiting := b.tx, b.waiting
	b.tx, b.waiting = nil, nil
	if len(waiting) == 0 {
		tx.Abort()
		return
	}
	b.committing = true
	go func() {
		err := tx.Commit()
		if err != nil {
			err = fmt.Errorf("store fetched objects: %w", err)
		}
		for _, ch := range waiting {
			ch <- err
		}
		b.mu.Lock()
		b.committing = false
		b.commits++
		b.maybeCommitLocked()
		b.mu.Unlock()
	}()
}

func objName(n repo.ObjectName) string { return fmt.Sprintf("%s %s", n.Type, n.Checksum) }
