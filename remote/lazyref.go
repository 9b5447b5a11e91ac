package remote

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ostree-mount/ostree-mount/repo"
)

// FetchCommits prepares a lazy mount of ref of the remote name: it
// resolves the ref as Pull does (summary, else refs/heads/REF), fetches
// the ref's commit and its detached metadata, verifies them with
// o.Verifier before anything is stored, then the commits of its related
// list (an image's layer commits), and stores them with
// refs/remotes/NAME/REF in one transaction. Each commit fetched is marked
// partial (state/CHECKSUM.commitpartial, written before the commit is
// visible, as libostree does): its trees and files come later, through a
// Lazy store. It returns the ref's commit.
func FetchCommits(ctx context.Context, r *repo.Repo, name, ref string, o Options) (repo.Checksum, error) {
	rm, err := Lookup(r, name)
	if err != nil {
		return repo.Checksum{}, err
	}
	verify, err := verifying(rm)
	if err != nil {
		return repo.Checksum{}, err
	}
	if verify && o.Verifier == nil {
		return repo.Checksum{}, fmt.Errorf("remote %s: gpg verification is on for remote %s but not supported yet; use `remote add --no-gpg-verify` (gpg-verify=false): %w", name, name, ErrVerificationUnsupported)
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	f, err := NewFetcher(rm, o.Parallel, &Stats{})
	if err != nil {
		return repo.Checksum{}, err
	}
	defer f.Close()
	if err := checkMode(ctx, f, rm); err != nil {
		return repo.Checksum{}, err
	}
	targets, err := resolve(ctx, f, rm, []string{ref}, o.Verifier)
	if err != nil {
		return repo.Checksum{}, err
	}
	tx, err := r.Begin(ctx)
	if err != nil {
		return repo.Checksum{}, err
	}
	p := &puller{ctx: ctx, r: r, tx: tx, f: f, rm: rm, o: o, seen: map[repo.ObjectName]bool{}}
	var fetched []repo.Checksum
	level := []job{{repo.ObjectName{Type: repo.ObjCommit, Checksum: targets[0].Commit}, true}}
	for len(level) > 0 {
		var next []job
		for _, j := range level {
			if !p.first(j.n) {
				continue
			}
			have, err := tx.HasObject(repo.ObjCommit, j.n.Checksum)
			if err != nil {
				tx.Abort()
				return repo.Checksum{}, err
			}
			kids, err := p.commit(ctx, j.n.Checksum, have, j.verify)
			if err != nil {
				tx.Abort()
				return repo.Checksum{}, fmt.Errorf("remote %s: ref %s: %w", name, ref, err)
			}
			if !have {
				fetched = append(fetched, j.n.Checksum)
			}
			for _, k := range kids {
				if k.n.Type == repo.ObjCommit {
					next = append(next, k)
				}
			}
		}
		level = next
	}
	if err := os.MkdirAll(filepath.Join(r.Path(), "state"), 0o755); err != nil {
		tx.Abort()
		return repo.Checksum{}, err
	}
	for _, c := range fetched {
		if err := os.WriteFile(filepath.Join(r.Path(), "state", c.String()+".commitpartial"), nil, 0o644); err != nil {
			tx.Abort()
			return repo.Checksum{}, fmt.Errorf("commit %s: mark partial: %w", c, err)
		}
	}
	tx.SetRef(targets[0].Name, targets[0].Commit)
	if err := tx.Commit(); err != nil {
		return repo.Checksum{}, fmt.Errorf("remote %s: ref %s: %w", name, ref, err)
	}
	return targets[0].Commit, nil
}
