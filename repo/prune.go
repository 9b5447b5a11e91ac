package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// PruneOptions are the policy of a prune.
type PruneOptions struct {
	// Depth is how many parents of each root to keep: -1 all, 0 none.
	Depth int
	// KeepYoungerThan, if set, replaces Depth: parents are kept while
	// their timestamp is at or after it.
	KeepYoungerThan time.Time
	// DryRun plans without deleting anything.
	DryRun bool
}

// ObjectInfo is an object on disk and its size: Prune lists objects
// without their sizes and reads them for the objects it deletes only.
type ObjectInfo struct {
	ObjectName
	Size int64
}

// Root is a commit that keeps objects alive, and why.
type Root struct {
	Name   string // "ref NAME" or "pin PATH"
	Commit Checksum
}

// PruneInput is everything PlanPrune decides from, besides the graph.
type PruneInput struct {
	// Objects is every loose object. Commitmeta objects are deleted with
	// their commits and not counted in the total, as in libostree.
	Objects []ObjectInfo
	// Roots are the strong refs and the live pins.
	Roots []Root
	// WeakRefs never keep anything alive; those whose commit is deleted or
	// absent are deleted.
	WeakRefs []Ref
	Options  PruneOptions
}

// PrunePlan is what a prune deletes.
type PrunePlan struct {
	Total     int          // objects considered
	Reachable int          // of which live
	Delete    []ObjectInfo // in order: see Stages
	// Stages cut Delete into runs, each deleted (in parallel) only once
	// the run before it is gone: Delete[Stages[i-1]:Stages[i]], from 0 to
	// len(Delete). The commits come first, a commit in a run before
	// every dead commit it names (its related list, its parent); then
	// their commitmeta; then the dirtrees; then the rest. So an
	// interrupted prune leaves no commit that names a deleted object.
	Stages   []int
	WeakRefs []Ref // weak refs to remove, after the objects
	Bytes    int64 // bytes freed
}

// Deleted counts the objects in the plan that are not commitmeta.
func (p *PrunePlan) Deleted() int {
	n := 0
	for _, o := range p.Delete {
		if o.Type != ObjCommitMeta {
			n++
		}
	}
	return n
}

// PlanPrune computes what a prune deletes. It reads only the graph: every
// root commit is live with its tree, its parents per the options, and,
// transitively, every commit named in a live commit's related list. All
// other commits, dirtrees, dirmetas and files are deleted, with the
// commitmeta of deleted commits and orphaned commitmeta, and then the weak refs whose commit is
// gone. A root whose commit is missing, or a live tree that is missing or
// corrupt, is an error: deleting on partial knowledge could lose data.
func PlanPrune(g Graph, in *PruneInput) (*PrunePlan, error) {
	live := Reachable{}
	opts := TraverseOptions{Depth: in.Options.Depth, KeepYoungerThan: in.Options.KeepYoungerThan, Related: true}
	for _, root := range in.Roots {
		if err := Traverse(g, root.Commit, opts, live); err != nil {
			return nil, fmt.Errorf("prune: %s: %w", root.Name, err)
		}
	}
	plan := &PrunePlan{}
	deadCommits := map[Checksum]bool{}
	present := map[Checksum]bool{}
	var metas []ObjectInfo
	for _, o := range in.Objects {
		switch o.Type {
		case ObjCommitMeta:
			metas = append(metas, o)
			continue
		case ObjFile, ObjDirTree, ObjDirMeta, ObjCommit, ObjPayloadLink:
		default:
			continue // tombstones and others are never deleted directly
		}
		plan.Total++
		if o.Type == ObjCommit {
			present[o.Checksum] = true
		}
		if o.Type == ObjPayloadLink {
			// A payload link lives as long as the file it points to.
			if live.Has(ObjFile, o.Checksum) {
				plan.Reachable++
				continue
			}
		} else if live.Has(o.Type, o.Checksum) {
			plan.Reachable++
			continue
		}
		if o.Type == ObjCommit {
			deadCommits[o.Checksum] = true
		}
		plan.Delete = append(plan.Delete, o)
		plan.Bytes += o.Size
	}
	for _, m := range metas {
		// The commitmeta of a dead commit goes with it, and so does one
		// whose commit is already gone (a prune interrupted between the
		// two): nothing can read detached metadata without its commit.
		if deadCommits[m.Checksum] || !present[m.Checksum] && !live.Has(ObjCommit, m.Checksum) {
			plan.Delete = append(plan.Delete, m)
			plan.Bytes += m.Size
		}
	}
	rank := commitDeleteRanks(g, deadCommits)
	key := func(o ObjectInfo) int {
		if o.Type == ObjCommit {
			return rank[o.Checksum]
		}
		return len(deadCommits) + deleteRank(o.Type)
	}
	sort.SliceStable(plan.Delete, func(i, j int) bool { return key(plan.Delete[i]) < key(plan.Delete[j]) })
	for i := range plan.Delete {
		if i > 0 && key(plan.Delete[i]) != key(plan.Delete[i-1]) {
			plan.Stages = append(plan.Stages, i)
		}
	}
	plan.Stages = append(plan.Stages, len(plan.Delete))
	for _, w := range in.WeakRefs {
		if deadCommits[w.Commit] || !present[w.Commit] {
			plan.WeakRefs = append(plan.WeakRefs, w)
		}
	}
	return plan, nil
}

// deleteRank orders the deletions after the commits so that an
// interrupted prune never leaves a commit whose tree is gone, nor one
// without its commitmeta.
func deleteRank(t ObjectType) int {
	switch t {
	case ObjCommitMeta:
		return 0
	case ObjDirTree:
		return 1
	}
	return 2
}

// commitDeleteRanks gives each dead commit its run: 0 if no dead commit
// names it, else one more than the highest run of the dead commits that
// name it (related list or parent), so that it outlives them. A dead commit
// that cannot be read names nothing; it is deleted all the same.
func commitDeleteRanks(g Graph, dead map[Checksum]bool) map[Checksum]int {
	namedBy := map[Checksum][]Checksum{}
	nodes := make([]Checksum, 0, len(dead))
	isDead := func(c Checksum) bool { return dead[c] }
	for c := range dead {
		nodes = append(nodes, c)
		cm, err := g.ReadCommit(context.TODO(), c)
		if err != nil {
			continue
		}
		for _, n := range namedCommits(c, cm, isDead) {
			namedBy[n] = append(namedBy[n], c)
		}
	}
	return pathRanks(nodes, namedBy)
}

// Prune deletes every object that no strong ref, live pin or related list
// keeps alive. It holds the exclusive repository lock from before it
// reads any ref until the last deletion, so no transaction can add an
// object, or reuse one, that the plan then deletes.
func (r *Repo) Prune(ctx context.Context, o PruneOptions) (*PrunePlan, error) {
	unlock, err := r.lock.Lock(ctx, LockExclusive)
	if err != nil {
		return nil, err
	}
	defer unlock()
	in := &PruneInput{Options: o}
	refs, err := r.ListRefs(RefHead, RefRemote, RefMirror)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		in.Roots = append(in.Roots, Root{Name: "ref " + ref.Name.String(), Commit: ref.Commit})
	}
	pins, err := r.ListPins(!o.DryRun)
	if err != nil {
		return nil, err
	}
	for _, p := range pins {
		if p.Live {
			in.Roots = append(in.Roots, Root{Name: "pin " + p.Path, Commit: p.Commit})
		}
	}
	if in.WeakRefs, err = r.ListRefs(RefWeak); err != nil {
		return nil, err
	}
	if in.Objects, err = r.listObjectInfos(ctx); err != nil {
		return nil, err
	}
	plan, err := PlanPrune(r, in)
	if err != nil {
		return nil, err
	}
	if err := r.measurePlan(ctx, plan); err != nil {
		return nil, err
	}
	if o.DryRun {
		return plan, nil
	}
	return plan, r.executePrune(ctx, plan)
}

func (r *Repo) listObjectInfos(ctx context.Context) ([]ObjectInfo, error) {
	var out []ObjectInfo
	for i := 0; i < 256; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prefix := fmt.Sprintf("%02x", i)
		d, err := os.Open(filepath.Join(r.path, "objects", prefix))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list objects: %w", err)
		}
		names, err := d.Readdirnames(-1)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("list objects: %w", err)
		}
		for _, name := range names {
			c, ext, ok := parseObjectName(prefix, name)
			if !ok {
				continue
			}
			t, ok := r.objectTypeForExt(ext)
			if !ok {
				continue
			}
			// Sizes are read later, for the objects to delete only: a
			// stat of every object would read every inode of the store.
			out = append(out, ObjectInfo{ObjectName: ObjectName{t, c}})
		}
		d.Close()
	}
	return out, nil
}

// pruneWorkers is how many objects are measured or deleted at once: each
// needs its inode, which on a cold cache is a random read; several in
// flight overlap them.
const pruneWorkers = 8

// forEachObject runs fn on objs, pruneWorkers at a time. The first error
// stops it: objects not yet started are skipped, and that error is
// returned; so is ctx's, if ctx ends first.
func forEachObject(ctx context.Context, objs []ObjectInfo, fn func(*ObjectInfo) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pruneWorkers)
	skipped := false
	for i := range objs {
		if gctx.Err() != nil {
			skipped = true
			break
		}
		o := &objs[i]
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return fn(o)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if skipped {
		return ctx.Err() // no fn failed: ctx ended
	}
	return nil
}

// measurePlan fills in the sizes of the objects to delete, and the bytes
// freed. An object already gone counts for nothing.
func (r *Repo) measurePlan(ctx context.Context, plan *PrunePlan) error {
	odfd := int(r.objects.Fd())
	err := forEachObject(ctx, plan.Delete, func(o *ObjectInfo) error {
		var st unix.Stat_t
		if err := unix.Fstatat(odfd, r.objectRel(o.Type, o.Checksum), &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			o.Size = st.Blocks * 512
		}
		return nil
	})
	plan.Bytes = 0
	for _, o := range plan.Delete {
		plan.Bytes += o.Size
	}
	return err
}

// executePrune deletes the plan's objects stage by stage (see
// PrunePlan.Stages), each stage in parallel, then its weak refs. A kill
// stops it between two unlinks, and the kernel already shows the earlier
// ones; across a power loss POSIX orders only what is synced, so with
// core.fsync the directories of a stage of commits are fsynced before the
// next stage starts (a few directories: dead commits are few).
func (r *Repo) executePrune(ctx context.Context, plan *PrunePlan) error {
	tombstones, err := r.cfg.Bool("core", "tombstone-commits", false)
	if err != nil {
		return err
	}
	odfd := int(r.objects.Fd())
	del := func(o *ObjectInfo) error {
		err := unix.Unlinkat(odfd, r.objectRel(o.Type, o.Checksum), 0)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("prune: delete %s %s: %w", o.Type, o.Checksum, err)
		}
		if o.Type == ObjCommit {
			_ = os.Remove(filepath.Join(r.path, "state", o.Checksum.String()+".commitpartial"))
			if tombstones {
				if err := r.writeTombstone(o.Checksum); err != nil {
					return err
				}
			}
		}
		return nil
	}
	start := 0
	for _, end := range plan.Stages {
		stage := plan.Delete[start:end]
		start = end
		if err := forEachObject(ctx, stage, del); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("prune interrupted: %w", err)
			}
			return err
		}
		if len(stage) > 0 && stage[0].Type == ObjCommit && r.fsync {
			dirs := map[string]bool{}
			for _, o := range stage {
				dirs[r.objectRel(o.Type, o.Checksum)[:2]] = true
			}
			for sub := range dirs {
				if err := syncDir(filepath.Join(r.path, "objects", sub)); err != nil {
					return fmt.Errorf("prune: sync objects/%s: %w", sub, err)
				}
			}
		}
	}
	for _, w := range plan.WeakRefs {
		if err := r.deleteRef(w.Name); err != nil && !errors.Is(err, ErrRefNotFound) {
			return fmt.Errorf("prune: %w", err)
		}
	}
	return nil
}

// writeTombstone records a deleted commit, as libostree does when
// core.tombstone-commits is set.
func (r *Repo) writeTombstone(c Checksum) error {
	b, err := MarshalMetadata(Metadata{{Key: "commit", Value: bytesVariant(append([]byte(c.String()), 0))}})
	if err != nil {
		return err
	}
	return writeFileAtomic(r.ObjectPath(ObjTombstone, c), b, 0o644, false)
}
