package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/remote"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/sign"
)

// This file holds the lazy mount of a remote's ref (REMOTE:REF): what is
// fetched before the mount, and the store that fetches the rest.

// objects is what a tree is composed from and served through.
type objects interface {
	compose.ObjectReader
	fs.Objects
}

var (
	_ objects     = (*repo.Repo)(nil)
	_ objects     = (*remote.Lazy)(nil)
	_ fs.Statfser = (*remote.Lazy)(nil)
)

// remoteRev splits REMOTE:REF when REMOTE is a remote of r's config.
func remoteRev(r *repo.Repo, rev string) (name, ref string, ok bool) {
	name, ref, ok = strings.Cut(rev, ":")
	if !ok || remote.ValidateName(name) != nil || ref == "" {
		return "", "", false
	}
	if _, err := remote.Lookup(r, name); err != nil {
		return "", "", false
	}
	return name, ref, true
}

// resolveRemote resolves o.Rev when it is REMOTE:REF: the local
// refs/remotes/REMOTE/REF when its commit is here (the remote is not
// contacted), else the remote's ref, whose commits are fetched, verified
// with the remote's policy and marked partial (remote.FetchCommits). It
// sets o.Commit.
func resolveRemote(ctx context.Context, r *repo.Repo, o *Options) error {
	if o.Commit != "" {
		return nil
	}
	name, ref, ok := remoteRev(r, o.Rev)
	if !ok {
		return nil
	}
	n := repo.RefName{Kind: repo.RefRemote, Remote: name, Name: ref}
	if c, err := r.ReadRef(n); err == nil {
		if have, err := r.HasObject(repo.ObjCommit, c); err == nil && have {
			o.Commit = c.String()
			return nil
		}
	}
	c, err := remote.FetchCommits(ctx, r, name, ref, remote.Options{Verifier: sign.NewVerifier(r)})
	if err != nil {
		return fmt.Errorf("mount %s: %w", o.Rev, err)
	}
	o.Commit = c.String()
	return nil
}

// objectsFor is what commit sum of r is composed from: r itself when the
// commit and the commits it relates are complete, else a lazy store over
// r fetching from the remote that rev names (REMOTE:REF), or else from
// the remote whose ref names sum. Rev comes first because a worker of the
// service that serves a mount again (after a crash) may find the remote's
// ref moved on since the mount was made.
func objectsFor(r *repo.Repo, sum repo.Checksum, rev string) (objects, io.Closer, error) {
	partial := r.IsPartial(sum)
	if !partial {
		cm, err := r.ReadCommit(context.Background(), sum)
		if err != nil {
			if errors.Is(err, repo.ErrObjectNotFound) {
				return r, io.NopCloser(nil), nil // compose.Open reports it
			}
			return nil, nil, err
		}
		for _, rel := range cm.Related {
			partial = partial || r.IsPartial(rel.Commit)
		}
	}
	if !partial {
		return r, io.NopCloser(nil), nil
	}
	lazy := func(name string) (objects, io.Closer, error) {
		l, err := remote.NewLazy(r, name, remote.LazyOptions{Logger: slog.Default()})
		if err != nil {
			return nil, nil, fmt.Errorf("commit %s (partial): %w", sum, err)
		}
		return l, &lazyCloser{l: l, r: r, commit: sum}, nil
	}
	if name, _, ok := remoteRev(r, rev); ok {
		return lazy(name)
	}
	refs, err := r.ListRefs(repo.RefRemote)
	if err != nil {
		return nil, nil, err
	}
	for _, ref := range refs {
		if ref.Commit == sum {
			return lazy(ref.Name.Remote)
		}
	}
	// Partial, and no remote to complete it from: serve what is here.
	return r, io.NopCloser(nil), nil
}

// lazyCloser closes a lazy store and then drops the commitpartial mark of
// every commit of the mount that it ended up fetching whole.
type lazyCloser struct {
	l      *remote.Lazy
	r      *repo.Repo
	commit repo.Checksum
}

func (c *lazyCloser) Close() error {
	err := c.l.Close()
	commits := []repo.Checksum{c.commit}
	if cm, rerr := c.r.ReadCommit(context.Background(), c.commit); rerr == nil {
		for _, rel := range cm.Related {
			commits = append(commits, rel.Commit)
		}
	}
	for _, sum := range commits {
		if _, cerr := c.r.CompletePartial(context.Background(), sum); cerr != nil {
			slog.Warn(fmt.Sprintf("commit %s: checking whether it is complete: %v", sum, cerr))
		}
	}
	return err
}
