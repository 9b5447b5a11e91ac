package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Graph is what a reachability traversal reads: commits, dirtrees and the
// partial marks of commits. *Repo implements it; tests use in-memory
// graphs.
type Graph interface {
	ReadCommit(context.Context, Checksum) (*Commit, error)
	ReadDirTree(context.Context, Checksum) (*DirTree, error)
	IsPartial(Checksum) bool
}

var _ Graph = (*Repo)(nil)

// Reachable is a set of objects found by a traversal.
type Reachable map[ObjectName]struct{}

// Has reports whether the set holds the object.
func (s Reachable) Has(t ObjectType, c Checksum) bool {
	_, ok := s[ObjectName{t, c}]
	return ok
}

func (s Reachable) add(t ObjectType, c Checksum) bool {
	n := ObjectName{t, c}
	if _, ok := s[n]; ok {
		return false
	}
	s[n] = struct{}{}
	return true
}

// TraverseOptions control a reachability traversal.
type TraverseOptions struct {
	// Depth is how many parents to follow: -1 for all, 0 for none.
	Depth int
	// KeepYoungerThan, if set, replaces Depth: parents are followed while
	// their timestamp is at or after it, as ostree prune
	// --keep-younger-than does.
	KeepYoungerThan time.Time
	// Related follows every commit's related list, transitively. A related
	// commit counts as a root of its own: its parents follow Depth.
	Related bool
	// Exists, if set, is asked about each dirmeta and file before it is
	// added; an absent one is passed to Missing instead. Without it,
	// objects are added unchecked (prune does not need to stat them).
	Exists func(ObjectType, Checksum) bool
	// Missing is told about each absent object and its referrer. When it is
	// nil, an absent dirtree or related commit is an error; in either case
	// a commit marked partial may lack its tree, and a missing parent ends
	// the chain silently, as in libostree.
	Missing func(t ObjectType, c Checksum, from string)
}

// IsPartial reports whether state/<commit>.commitpartial exists.
func (r *Repo) IsPartial(c Checksum) bool {
	_, err := os.Stat(filepath.Join(r.path, "state", c.String()+".commitpartial"))
	return err == nil
}

// Traverse adds to set every object reachable from commit c in g.
func Traverse(g Graph, c Checksum, o TraverseOptions, set Reachable) error {
	return traverseCommit(g, c, o, set, "root")
}

func traverseCommit(g Graph, c Checksum, o TraverseOptions, set Reachable, from string) error {
	depth := o.Depth
	for {
		// A commit seen before is walked again (its trees are skipped as
		// seen), since it may now be reached with a larger depth.
		set.add(ObjCommit, c)
		cm, err := g.ReadCommit(context.TODO(), c)
		if err != nil {
			if errors.Is(err, ErrObjectNotFound) {
				delete(set, ObjectName{ObjCommit, c})
				if o.Missing != nil {
					o.Missing(ObjCommit, c, from)
					return nil
				}
				return fmt.Errorf("commit %s (from %s): %w", c, from, ErrObjectNotFound)
			}
			return err
		}
		self := "commit " + c.String()
		if err := traverseTree(g, cm.RootTree, cm.RootMeta, g.IsPartial(c), o, set, self); err != nil {
			return err
		}
		if o.Related {
			for _, rel := range cm.Related {
				if set.Has(ObjCommit, rel.Commit) {
					continue
				}
				if err := traverseCommit(g, rel.Commit, o, set, self+" related "+rel.Name); err != nil {
					return err
				}
			}
		}
		if !cm.HasParent() {
			return nil
		}
		pc, err := g.ReadCommit(context.TODO(), cm.Parent)
		if errors.Is(err, ErrObjectNotFound) {
			return nil // a missing parent ends the chain, as in libostree
		}
		if err != nil {
			return err
		}
		if !o.KeepYoungerThan.IsZero() {
			if int64(pc.Timestamp) < o.KeepYoungerThan.Unix() {
				return nil
			}
		} else {
			if depth == 0 {
				return nil
			}
			if depth > 0 {
				depth--
			}
		}
		from, c = self+" parent", cm.Parent
	}
}

func traverseTree(g Graph, tree, meta Checksum, partial bool, o TraverseOptions, set Reachable, from string) error {
	addLeaf(ObjDirMeta, meta, partial, o, set, from)
	if !set.add(ObjDirTree, tree) {
		return nil
	}
	dt, err := g.ReadDirTree(context.TODO(), tree)
	if err != nil {
		if !errors.Is(err, ErrObjectNotFound) {
			return err
		}
		delete(set, ObjectName{ObjDirTree, tree})
		switch {
		case partial:
			return nil
		case o.Missing != nil:
			o.Missing(ObjDirTree, tree, from)
			return nil
		}
		return fmt.Errorf("dirtree %s (from %s): %w", tree, from, ErrObjectNotFound)
	}
	self := "dirtree " + tree.String()
	for _, f := range dt.Files {
		addLeaf(ObjFile, f.Checksum, partial, o, set, self+" file "+f.Name)
	}
	for _, d := range dt.Dirs {
		if err := traverseTree(g, d.Tree, d.Meta, partial, o, set, self+" dir "+d.Name); err != nil {
			return err
		}
	}
	return nil
}

// addLeaf adds a dirmeta or file, checking its existence when asked to.
func addLeaf(t ObjectType, c Checksum, partial bool, o TraverseOptions, set Reachable, from string) {
	if !set.add(t, c) || o.Exists == nil || o.Exists(t, c) {
		return
	}
	delete(set, ObjectName{t, c})
	if !partial && o.Missing != nil {
		o.Missing(t, c, from)
	}
}

// CompletePartial reports whether every object of commit c's tree is in
// the repository, and if so removes c's commitpartial mark: a commit
// that a lazy mount ended up fetching whole is complete, as after a pull.
// It stops at the first missing object.
func (r *Repo) CompletePartial(ctx context.Context, c Checksum) (bool, error) {
	if !r.IsPartial(c) {
		return true, nil
	}
	cm, err := r.ReadCommit(ctx, c)
	if err != nil {
		return false, err
	}
	seen := map[Checksum]bool{}
	var complete func(tree, meta Checksum) (bool, error)
	complete = func(tree, meta Checksum) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if ok, err := r.HasObject(ObjDirMeta, meta); !ok || err != nil {
			return false, err
		}
		if seen[tree] {
			return true, nil
		}
		seen[tree] = true
		dt, err := r.ReadDirTree(ctx, tree)
		if errors.Is(err, ErrObjectNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		for _, f := range dt.Files {
			if ok, err := r.HasObject(ObjFile, f.Checksum); !ok || err != nil {
				return false, err
			}
		}
		for _, d := range dt.Dirs {
			if ok, err := complete(d.Tree, d.Meta); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	}
	ok, err := complete(cm.RootTree, cm.RootMeta)
	if !ok || err != nil {
		return false, err
	}
	if err := os.Remove(filepath.Join(r.path, "state", c.String()+".commitpartial")); err != nil && !os.IsNotExist(err) {
		return false, fmt.Errorf("commit %s: %w", c, err)
	}
	return true, nil
}
