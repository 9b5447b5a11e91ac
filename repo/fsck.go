package repo

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// FsckProblem is one corrupt or missing object.
type FsckProblem struct {
	Object ObjectName
	// Missing is set for an object that is referenced but absent.
	Missing bool
	// From says where the object was reached: the referrer of a missing
	// object, or the first place a corrupt one was met ("commit C path
	// /usr/bin/x"); empty for a corrupt object no commit reaches.
	From string
	Err  error
}

func (p FsckProblem) String() string {
	if p.Missing {
		return fmt.Sprintf("missing %s %s (referenced by %s)", p.Object.Type, p.Object.Checksum, p.From)
	}
	if p.From != "" {
		return fmt.Sprintf("corrupt %s %s (at %s): %v", p.Object.Type, p.Object.Checksum, p.From, p.Err)
	}
	return fmt.Sprintf("corrupt %s %s: %v", p.Object.Type, p.Object.Checksum, p.Err)
}

// FsckResult summarizes a check.
type FsckResult struct {
	Objects  int
	Commits  int
	Problems []FsckProblem
	// Cleaned names the staging directories of dead processes that fsck
	// removed from tmp/.
	Cleaned []string
}

// Fsck verifies every object in the repository against its checksum,
// parses every metadata object, and walks every commit's tree, naming
// each object that is missing or corrupt, with its type and where it was
// reached from. The walk goes on past a damaged object: a corrupt dirtree's
// entries cannot be known, but its siblings are still checked. The
// unfetched objects of a partial commit (state/C.commitpartial) are not
// problems, as in ostree fsck. Every ref must point at an existing commit;
// weak refs may dangle. Fsck first removes the staging directories of dead
// processes (FsckResult.Cleaned). It holds the shared lock while it runs.
func (r *Repo) Fsck(ctx context.Context) (*FsckResult, error) {
	unlock, err := r.lock.Lock(ctx, LockShared)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &FsckResult{Cleaned: r.cleanTmp("")}
	var names []ObjectName
	if err := r.ListObjects(func(n ObjectName) error { names = append(names, n); return nil }); err != nil {
		return nil, err
	}
	res.Objects = len(names)
	var mu sync.Mutex
	report := func(p FsckProblem) {
		mu.Lock()
		res.Problems = append(res.Problems, p)
		mu.Unlock()
	}
	// Objects are verified GOMAXPROCS at a time: hashing is CPU-bound. A
	// damaged object is a problem to report, not an error that stops the
	// others; only ctx does.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	var commits []Checksum
	for _, n := range names {
		if gctx.Err() != nil {
			break
		}
		if n.Type == ObjCommit {
			commits = append(commits, n.Checksum)
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := r.verifyObject(gctx, n); err != nil {
				report(FsckProblem{Object: n, Err: err})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Commits = len(commits)
	w := &fsckWalk{ctx: ctx, r: r, res: res, present: map[ObjectName]bool{}, corrupt: map[ObjectName]int{},
		seen: [2]Reachable{{}, {}}}
	for _, n := range names {
		w.present[n] = true
	}
	for i, p := range res.Problems {
		w.corrupt[p.Object] = i
	}
	for _, c := range commits {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := w.commit(c); err != nil {
			return nil, fmt.Errorf("fsck: commit %s: %w", c, err)
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

// fsckWalk walks the commits' trees after every object was verified.
type fsckWalk struct {
	ctx     context.Context
	r       *Repo
	res     *FsckResult
	present map[ObjectName]bool // the objects listed before the walk
	corrupt map[ObjectName]int  // index in res.Problems
	// seen holds the objects walked from complete commits ([0]) and from
	// partial ones ([1]): an object a partial commit may lack is checked
	// again when a complete commit names it.
	seen [2]Reachable
}

// exists reports whether an object is in the store: listed before the
// walk, or (named by a commit that a concurrent transaction added after
// the listing) there now.
func (w *fsckWalk) exists(n ObjectName) (bool, error) {
	if w.present[n] {
		return true, nil
	}
	return w.r.HasObject(n.Type, n.Checksum)
}

// check looks at one object reached from where, for the first time in
// this kind of walk. It reports it missing (unless partial), gives a
// corrupt one the place it was reached from, and says whether its
// content can be walked.
func (w *fsckWalk) check(n ObjectName, partial bool, where string) (bool, error) {
	seen := w.seen[0]
	if partial {
		seen = w.seen[1]
	}
	if seen.Has(n.Type, n.Checksum) || (partial && w.seen[0].Has(n.Type, n.Checksum)) {
		return false, nil
	}
	seen.add(n.Type, n.Checksum)
	if i, ok := w.corrupt[n]; ok {
		if w.res.Problems[i].From == "" {
			w.res.Problems[i].From = where
		}
		return false, nil
	}
	ok, err := w.exists(n)
	if err != nil {
		return false, err
	}
	if !ok {
		if !partial {
			w.res.Problems = append(w.res.Problems, FsckProblem{Object: n, Missing: true, From: where})
		}
		return false, nil
	}
	return true, nil
}

// commit walks one listed commit: its tree, and the existence of the
// commits its related list names. A missing parent is allowed (shallow
// history), as in libostree.
func (w *fsckWalk) commit(c Checksum) error {
	if _, ok := w.corrupt[ObjectName{ObjCommit, c}]; ok {
		return nil
	}
	cm, err := w.r.ReadCommit(w.ctx, c)
	if err != nil {
		if errors.Is(err, ErrObjectNotFound) {
			return nil // deleted since the listing, by nobody we exclude: a concurrent writer's own
		}
		return err
	}
	partial := w.r.IsPartial(c)
	self := "commit " + c.String()
	if err := w.tree(cm.RootTree, cm.RootMeta, partial, self, "/"); err != nil {
		return err
	}
	for _, rel := range cm.Related {
		if _, err := w.check(ObjectName{ObjCommit, rel.Commit}, partial, self+" related "+rel.Name); err != nil {
			return err
		}
	}
	return nil
}

// tree walks a directory reached at path in the commit named by from.
func (w *fsckWalk) tree(tree, meta Checksum, partial bool, from, path string) error {
	where := from + " path " + path
	if _, err := w.check(ObjectName{ObjDirMeta, meta}, partial, where); err != nil {
		return err
	}
	ok, err := w.check(ObjectName{ObjDirTree, tree}, partial, where)
	if err != nil || !ok {
		return err
	}
	dt, err := w.r.ReadDirTree(w.ctx, tree)
	if err != nil {
		if !errors.Is(err, ErrObjectNotFound) && !errors.Is(err, ErrChecksumMismatch) && !errors.Is(err, ErrCorrupt) {
			return err
		}
		// Changed since it was verified: report it now.
		n := ObjectName{ObjDirTree, tree}
		w.res.Problems = append(w.res.Problems, FsckProblem{Object: n, Missing: errors.Is(err, ErrObjectNotFound), From: where, Err: err})
		w.corrupt[n] = len(w.res.Problems) - 1
		return nil
	}
	prefix := path
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	for _, f := range dt.Files {
		if _, err := w.check(ObjectName{ObjFile, f.Checksum}, partial, from+" path "+prefix+f.Name); err != nil {
			return err
		}
	}
	for _, d := range dt.Dirs {
		if err := w.tree(d.Tree, d.Meta, partial, from, prefix+d.Name); err != nil {
			return err
		}
	}
	return nil
}

// verifyObject checks one object's bytes against its name.
func (r *Repo) verifyObject(ctx context.Context, n ObjectName) error {
	switch n.Type {
	case ObjFile:
		return r.VerifyFile(n.Checksum)
	case ObjDirTree:
		_, err := r.ReadDirTree(ctx, n.Checksum)
		return err
	case ObjDirMeta:
		_, err := r.ReadDirMeta(ctx, n.Checksum)
		return err
	case ObjCommit:
		_, err := r.ReadCommit(ctx, n.Checksum)
		return err
	case ObjCommitMeta:
		_, err := r.ReadCommitMeta(n.Checksum)
		return err
	}
	return nil
}
