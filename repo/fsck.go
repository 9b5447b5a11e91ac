package repo

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
)

// FsckProblem is one corrupt or missing object.
type FsckProblem struct {
	Object ObjectName
	// Missing is set for an object that is referenced but absent; From
	// names the referrer.
	Missing bool
	From    string
	Err     error
}

func (p FsckProblem) String() string {
	if p.Missing {
		return fmt.Sprintf("missing %s %s (referenced by %s)", p.Object.Type, p.Object.Checksum, p.From)
	}
	return fmt.Sprintf("corrupt %s %s: %v", p.Object.Type, p.Object.Checksum, p.Err)
}

// FsckResult summarizes a check.
type FsckResult struct {
	Objects  int
	Commits  int
	Problems []FsckProblem
}

// Fsck verifies every object in the repository against its checksum,
// parses every metadata object, and checks that every commit's tree is
// complete (unless the commit is marked partial) and that every ref points
// at an existing commit. It holds the shared lock while it runs.
func (r *Repo) Fsck(ctx context.Context) (*FsckResult, error) {
	unlock, err := r.lock.Lock(ctx, LockShared)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var names []ObjectName
	if err := r.ListObjects(func(n ObjectName) error { names = append(names, n); return nil }); err != nil {
		return nil, err
	}
	res := &FsckResult{Objects: len(names)}
	var mu sync.Mutex
	report := func(p FsckProblem) {
		mu.Lock()
		res.Problems = append(res.Problems, p)
		mu.Unlock()
	}
	jobs := make(chan ObjectName)
	var wg sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				if err := r.verifyObject(n); err != nil {
					report(FsckProblem{Object: n, Err: err})
				}
			}
		}()
	}
	var commits []Checksum
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		if n.Type == ObjCommit {
			commits = append(commits, n.Checksum)
		}
		jobs <- n
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Commits = len(commits)
	corrupt := map[ObjectName]bool{}
	for _, p := range res.Problems {
		corrupt[p.Object] = true
	}
	set := Reachable{}
	opts := TraverseOptions{
		Depth:   0,
		Related: true,
		Exists: func(t ObjectType, c Checksum) bool {
			ok, err := r.HasObject(t, c)
			return ok || err != nil
		},
		Missing: func(t ObjectType, c Checksum, from string) {
			report(FsckProblem{Object: ObjectName{t, c}, Missing: true, From: from})
		},
	}
	for _, c := range commits {
		if corrupt[ObjectName{ObjCommit, c}] {
			continue
		}
		// Corrupt objects met on the way were reported above.
		err := Traverse(r, c, opts, set)
		if err != nil && !errors.Is(err, ErrChecksumMismatch) && !errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("fsck: traverse commit %s: %w", c, err)
		}
	}
	// Weak refs may dangle until the next prune removes them; they are
	// not problems.
	refs, err := r.ListRefs(RefHead, RefRemote, RefMirror)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		ok, err := r.HasObject(ObjCommit, ref.Commit)
		if err != nil {
			return nil, err
		}
		if !ok {
			report(FsckProblem{Object: ObjectName{ObjCommit, ref.Commit}, Missing: true, From: "ref " + ref.Name.String()})
		}
	}
	sort.Slice(res.Problems, func(i, j int) bool { return res.Problems[i].String() < res.Problems[j].String() })
	return res, nil
}

// verifyObject checks one object's bytes against its name.
func (r *Repo) verifyObject(n ObjectName) error {
	switch n.Type {
	case ObjFile:
		return r.VerifyFile(n.Checksum)
	case ObjDirTree:
		_, err := r.ReadDirTree(n.Checksum)
		return err
	case ObjDirMeta:
		_, err := r.ReadDirMeta(n.Checksum)
		return err
	case ObjCommit:
		_, err := r.ReadCommit(n.Checksum)
		return err
	case ObjCommitMeta:
		_, err := r.ReadCommitMeta(n.Checksum)
		return err
	}
	return nil
}
