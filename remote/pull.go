package remote

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ostree-mount/ostree-mount/repo"
)

// Verifier checks a commit fetched for a ref before anything of it is
// stored. The signature work implements it; it reads the remote's keys
// (gpg-verify, sign-verify, verification-*) through Lookup.
type Verifier interface {
	VerifyCommit(ctx context.Context, remoteName string, commit repo.Checksum, commitBytes []byte, detachedMeta repo.Metadata) error
}

// SummaryVerifier is implemented by a Verifier that also checks a
// remote's signed summary (summary.sig) where the remote's config asks
// for it (gpg-verify-summary, sign-verify-summary).
type SummaryVerifier interface {
	SummaryRequired(remoteName string) (bool, error)
	// VerifySummary checks summary against sig, the bytes of summary.sig
	// (nil when the remote has none).
	VerifySummary(ctx context.Context, remoteName string, summary, sig []byte) error
}

// ErrVerificationUnsupported: the remote asks for signature verification
// and no Verifier is hooked in.
var ErrVerificationUnsupported = errors.New("signature verification is not supported yet")

// Options are the options of Pull.
type Options struct {
	// Parallel is how many requests are in flight; 8 when 0.
	Parallel int
	// Verifier checks each ref's commit; see Verifier.
	Verifier Verifier
}

// Result is what a pull did.
type Result struct {
	Refs        []repo.Ref // refs/remotes/REMOTE/REF set
	MetaObjects int64      // metadata objects fetched
	FileObjects int64      // content objects fetched
	Requests    int64
	Bytes       int64 // bytes transferred (bodies)
	Elapsed     time.Duration
}

// String is a summary line in ostree's manner.
func (r *Result) String() string {
	return fmt.Sprintf("%d metadata, %d content objects fetched; %s transferred in %d seconds",
		r.MetaObjects, r.FileObjects, humanBytes(r.Bytes), int(r.Elapsed.Seconds()))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// verifying reports whether the remote's config asks for signatures.
func verifying(rm *Remote) (bool, error) {
	sv, ok := rm.Get("sign-verify")
	if ok && sv != "false" && sv != "0" {
		return true, nil
	}
	return rm.GPGVerify, nil
}

// ReadSummary fetches and parses the remote's summary; it returns nil and
// no error when the remote has none.
func ReadSummary(ctx context.Context, f Fetcher) (*Summary, error) {
	b, err := readOptional(ctx, f, "summary", MaxSummarySize)
	if err != nil || b == nil {
		return nil, err
	}
	return ParseSummary(b)
}

// readOptional reads a file of the remote, with retries; nil and no error
// when the remote has none.
func readOptional(ctx context.Context, f Fetcher, rel string, limit int64) ([]byte, error) {
	var b []byte
	err := retry(ctx, rel, func() error {
		var err error
		b, err = f.ReadFile(ctx, rel, limit)
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// verifiedSummary reads the remote's summary and, when v checks summaries
// and the remote's config asks for it, verifies summary.sig before the
// summary is used; nil and no error when the remote has no summary and
// none is required.
func verifiedSummary(ctx context.Context, f Fetcher, rm *Remote, v Verifier) (*Summary, error) {
	b, err := readOptional(ctx, f, "summary", MaxSummarySize)
	if err != nil {
		return nil, err
	}
	if sv, ok := v.(SummaryVerifier); ok {
		required, err := sv.SummaryRequired(rm.Name)
		if err != nil {
			return nil, err
		}
		if required {
			if b == nil {
				return nil, fmt.Errorf("summary verification is on for remote %s, but it has no summary", rm.Name)
			}
			sig, err := readOptional(ctx, f, "summary.sig", MaxSummarySize)
			if err != nil {
				return nil, err
			}
			if err := sv.VerifySummary(ctx, rm.Name, b, sig); err != nil {
				return nil, err
			}
		}
	}
	if b == nil {
		return nil, nil
	}
	return ParseSummary(b)
}

// resolve maps ref names to commits, from the summary when there is one.
func resolve(ctx context.Context, f Fetcher, rm *Remote, refs []string, v Verifier) ([]repo.Ref, error) {
	sum, err := verifiedSummary(ctx, f, rm, v)
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", rm.Name, err)
	}
	if len(refs) == 0 {
		if sum == nil {
			return nil, fmt.Errorf("remote %s has no summary file: name the refs to pull", rm.Name)
		}
		for _, r := range sum.Refs {
			refs = append(refs, r.Name)
		}
	}
	var out []repo.Ref
	for _, name := range refs {
		if err := repo.ValidateRef(name); err != nil {
			return nil, err
		}
		n := repo.RefName{Kind: repo.RefRemote, Remote: rm.Name, Name: name}
		if sum != nil {
			e, ok := sum.Lookup(name)
			if !ok {
				return nil, fmt.Errorf("remote %s: ref %s is not in the remote's summary: %w", rm.Name, name, repo.ErrRefNotFound)
			}
			out = append(out, repo.Ref{Name: n, Commit: e.Commit})
			continue
		}
		var b []byte
		err := retry(ctx, "ref "+name, func() error {
			var err error
			b, err = f.ReadFile(ctx, "refs/heads/"+name, 1024)
			return err
		})
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remote %s: ref %s: %w", rm.Name, name, repo.ErrRefNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("remote %s: ref %s: %w", rm.Name, name, err)
		}
		c, err := repo.ParseChecksum(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("remote %s: refs/heads/%s: %w", rm.Name, name, err)
		}
		out = append(out, repo.Ref{Name: n, Commit: c})
	}
	return out, nil
}

// checkMode refuses an HTTP remote that is not in archive mode: its
// objects would not be .filez streams.
func checkMode(ctx context.Context, f Fetcher, rm *Remote) error {
	if _, ok := f.(*HTTPFetcher); !ok {
		return nil
	}
	var b []byte
	err := retry(ctx, "config", func() error {
		var err error
		b, err = f.ReadFile(ctx, "config", 1<<20)
		return err
	})
	if err != nil {
		return fmt.Errorf("remote %s: %w", rm.Name, err)
	}
	c, err := repo.ParseConfig(b)
	if err != nil {
		return fmt.Errorf("remote %s: config: %w", rm.Name, err)
	}
	if m, _ := c.Get("core", "mode"); m != "archive-z2" && m != "archive" {
		return fmt.Errorf("remote %s: the repository at %s has mode %q; only archive repositories can be pulled over HTTP: %w", rm.Name, rm.URL, m, repo.ErrUnsupported)
	}
	return nil
}

// Pull fetches refs of the remote NAME eagerly into r and sets
// refs/remotes/NAME/REF. See the package documentation.
func Pull(ctx context.Context, r *repo.Repo, name string, refs []string, o Options) (*Result, error) {
	start := time.Now()
	rm, err := Lookup(r, name)
	if err != nil {
		return nil, err
	}
	verify, err := verifying(rm)
	if err != nil {
		return nil, err
	}
	if verify && o.Verifier == nil {
		return nil, fmt.Errorf("remote %s: gpg verification is on for remote %s but not supported yet; use `remote add --no-gpg-verify` (gpg-verify=false): %w", name, name, ErrVerificationUnsupported)
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	st := &Stats{}
	f, err := NewFetcher(rm, o.Parallel, st)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := checkMode(ctx, f, rm); err != nil {
		return nil, err
	}
	targets, err := resolve(ctx, f, rm, refs, o.Verifier)
	if err != nil {
		return nil, err
	}
	tx, err := r.Begin(ctx)
	if err != nil {
		return nil, err
	}
	p := &puller{ctx: ctx, r: r, tx: tx, f: f, rm: rm, o: o, seen: map[repo.ObjectName]bool{}}
	if err := p.run(targets); err != nil {
		tx.Abort()
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	for _, t := range targets {
		tx.SetRef(t.Name, t.Commit)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	// The walk completed every partial commit it went through.
	for _, c := range p.partials {
		if err := os.Remove(filepath.Join(r.Path(), "state", c.String()+".commitpartial")); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("pull %s: commit %s: %w", name, c, err)
		}
	}
	return &Result{Refs: targets, MetaObjects: p.meta, FileObjects: p.files, Requests: st.Requests.Load(),
		Bytes: st.Bytes.Load(), Elapsed: time.Since(start)}, nil
}

type puller struct {
	ctx         context.Context
	r           *repo.Repo
	tx          *repo.Transaction
	f           Fetcher
	rm          *Remote
	o           Options
	mu          sync.Mutex
	seen        map[repo.ObjectName]bool
	meta, files int64
	partials    []repo.Checksum // local partial commits the walk completes
}

// job is one object of the walk; verify marks a ref's commit.
type job struct {
	n      repo.ObjectName
	verify bool
}

// run walks breadth-first, a level at a time, with o.Parallel objects in
// flight.
func (p *puller) run(targets []repo.Ref) error {
	var level []job
	for _, t := range targets {
		level = append(level, job{repo.ObjectName{Type: repo.ObjCommit, Checksum: t.Commit}, true})
	}
	for len(level) > 0 {
		var next []job
		var nmu sync.Mutex
		g, ctx := errgroup.WithContext(p.ctx)
		g.SetLimit(p.o.Parallel)
		for _, j := range level {
			if !p.first(j.n) {
				continue
			}
			g.Go(func() error {
				kids, err := p.visit(ctx, j)
				nmu.Lock()
				next = append(next, kids...)
				nmu.Unlock()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		level = next
	}
	return nil
}

func (p *puller) first(n repo.ObjectName) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen[n] {
		return false
	}
	p.seen[n] = true
	return true
}

func (p *puller) count(t repo.ObjectType) {
	p.mu.Lock()
	if t == repo.ObjFile {
		p.files++
	} else {
		p.meta++
	}
	p.mu.Unlock()
}

// visit makes one object local and returns the objects it names.
func (p *puller) visit(ctx context.Context, j job) ([]job, error) {
	t, c := j.n.Type, j.n.Checksum
	have, err := p.tx.HasObject(t, c)
	if err != nil {
		return nil, err
	}
	switch t {
	case repo.ObjFile, repo.ObjDirMeta:
		if have {
			return nil, nil
		}
		_, err := Store(ctx, p.f, p.tx, t, c)
		if err == nil {
			p.count(t)
		}
		return nil, err
	case repo.ObjDirTree:
		var dt *repo.DirTree
		if have {
			dt, err = p.tx.ReadDirTree(ctx, c)
		} else {
			var b []byte
			if b, err = Store(ctx, p.f, p.tx, t, c); err == nil {
				p.count(t)
				dt, err = repo.ParseDirTree(b)
			}
		}
		if err != nil {
			return nil, err
		}
		var kids []job
		for _, f := range dt.Files {
			kids = append(kids, job{n: repo.ObjectName{Type: repo.ObjFile, Checksum: f.Checksum}})
		}
		for _, d := range dt.Dirs {
			kids = append(kids,
				job{n: repo.ObjectName{Type: repo.ObjDirTree, Checksum: d.Tree}},
				job{n: repo.ObjectName{Type: repo.ObjDirMeta, Checksum: d.Meta}})
		}
		return kids, nil
	case repo.ObjCommit:
		return p.commit(ctx, c, have, j.verify)
	}
	return nil, fmt.Errorf("%s %s: unexpected object type in a walk", t, c)
}

func (p *puller) commit(ctx context.Context, c repo.Checksum, have, verify bool) ([]job, error) {
	var cm *repo.Commit
	var err error
	if have {
		// A local commit is verified for this remote too, partial or
		// not: it may have come from another remote, unverified.
		if verify && p.o.Verifier != nil {
			b, err := p.r.ReadMetaObject(repo.ObjCommit, c)
			if err != nil {
				return nil, err
			}
			dm, err := p.r.ReadCommitMeta(c)
			if err != nil {
				return nil, err
			}
			if err := p.o.Verifier.VerifyCommit(ctx, p.rm.Name, c, b, dm); err != nil {
				return nil, fmt.Errorf("commit %s: %w", c, err)
			}
		}
		if !p.r.IsPartial(c) {
			return nil, nil // complete locally: nothing to walk
		}
		if cm, err = p.tx.ReadCommit(ctx, c); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.partials = append(p.partials, c)
		p.mu.Unlock()
	} else {
		b, u, err := FetchMeta(ctx, p.f, repo.ObjCommit, c)
		if err != nil {
			return nil, err
		}
		if repo.SumBytes(b) != c {
			return nil, fmt.Errorf("commit %s from %s: fetched bytes hash to %s: %w", c, u, repo.SumBytes(b), repo.ErrChecksumMismatch)
		}
		var dm repo.Metadata
		mb, mu, err := FetchMeta(ctx, p.f, repo.ObjCommitMeta, c)
		switch {
		case errors.Is(err, repo.ErrObjectNotFound):
		case err != nil:
			return nil, err
		default:
			if dm, err = repo.ParseMetadata(mb); err != nil {
				return nil, fmt.Errorf("commitmeta %s from %s: %w", c, mu, err)
			}
		}
		if verify && p.o.Verifier != nil {
			if err := p.o.Verifier.VerifyCommit(ctx, p.rm.Name, c, b, dm); err != nil {
				return nil, fmt.Errorf("commit %s from %s: %w", c, u, err)
			}
		}
		if cm, err = repo.ParseCommit(b); err != nil {
			return nil, fmt.Errorf("commit %s from %s: %w", c, u, err)
		}
		if err := p.tx.WriteFetchedMeta(repo.ObjCommit, c, b); err != nil {
			return nil, fmt.Errorf("%w (from %s)", err, u)
		}
		p.count(repo.ObjCommit)
		if dm != nil {
			if err := p.tx.SetCommitMeta(c, dm); err != nil {
				return nil, err
			}
			p.count(repo.ObjCommitMeta)
		}
	}
	kids := []job{
		{n: repo.ObjectName{Type: repo.ObjDirTree, Checksum: cm.RootTree}},
		{n: repo.ObjectName{Type: repo.ObjDirMeta, Checksum: cm.RootMeta}},
	}
	for _, rel := range cm.Related {
		kids = append(kids, job{n: repo.ObjectName{Type: repo.ObjCommit, Checksum: rel.Commit}})
	}
	return kids, nil
}
