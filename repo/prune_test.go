package repo

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

// memGraph is an in-memory Graph for planner table tests.
type memGraph struct {
	commits map[Checksum]*Commit
	trees   map[Checksum]*DirTree
	partial map[Checksum]bool
}

func (g *memGraph) ReadCommit(_ context.Context, c Checksum) (*Commit, error) {
	if cm, ok := g.commits[c]; ok {
		return cm, nil
	}
	return nil, fmt.Errorf("commit %s: %w", c.Str(), ErrObjectNotFound)
}

func (g *memGraph) ReadDirTree(_ context.Context, c Checksum) (*DirTree, error) {
	if t, ok := g.trees[c]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("dirtree %s: %w", c.Str(), ErrObjectNotFound)
}

func (g *memGraph) IsPartial(c Checksum) bool { return g.partial[c] }

// graphSpec describes commits by name: each has one file named after it,
// a shared file "common", an optional parent, related commits and a
// timestamp.
type commitSpec struct {
	name    string
	parent  string
	related []string
	ts      uint64
}

func sumOf(s string) Checksum { return SumBytes([]byte(s)) }

// build returns the graph and the full inventory: per commit, the commit,
// its dirtree, the shared dirmeta, its own file and the common file.
func build(specs []commitSpec) (*memGraph, []ObjectInfo, map[string]Checksum) {
	g := &memGraph{commits: map[Checksum]*Commit{}, trees: map[Checksum]*DirTree{}, partial: map[Checksum]bool{}}
	ids := map[string]Checksum{}
	inv := map[ObjectName]bool{}
	meta := sumOf("meta")
	inv[ObjectName{ObjDirMeta, meta}] = true
	for _, s := range specs {
		ids[s.name] = sumOf("commit " + s.name)
	}
	for _, s := range specs {
		file := sumOf("file " + s.name)
		tree := &DirTree{Files: []TreeFile{{"common", sumOf("common")}, {"own", file}}}
		tc := sumOf("tree " + s.name)
		g.trees[tc] = tree
		cm := &Commit{RootTree: tc, RootMeta: meta, Timestamp: s.ts}
		if s.parent != "" {
			cm.Parent = ids[s.parent]
		}
		for _, r := range s.related {
			cm.Related = append(cm.Related, Related{Name: r, Commit: ids[r]})
		}
		g.commits[ids[s.name]] = cm
		for _, n := range []ObjectName{{ObjCommit, ids[s.name]}, {ObjDirTree, tc}, {ObjFile, file}, {ObjFile, sumOf("common")}} {
			inv[n] = true
		}
	}
	var objs []ObjectInfo
	for n := range inv {
		objs = append(objs, ObjectInfo{n, 10})
	}
	return g, objs, ids
}

func TestPlanPrune(t *testing.T) {
	day := uint64(24 * 3600)
	cases := []struct {
		name     string
		specs    []commitSpec
		roots    []string
		weak     map[string]string // weak ref -> commit name
		opts     PruneOptions
		keep     []string // commits that survive
		weakGone []string
	}{
		{
			name:  "orphans go, refs stay",
			specs: []commitSpec{{name: "a"}, {name: "b"}},
			roots: []string{"a"},
			keep:  []string{"a"},
			opts:  PruneOptions{Depth: -1},
		},
		{
			name:  "related keeps alive, transitively",
			specs: []commitSpec{{name: "l1"}, {name: "l2", related: []string{"l1"}}, {name: "img", related: []string{"l2"}}, {name: "junk"}},
			roots: []string{"img"},
			keep:  []string{"img", "l2", "l1"},
			opts:  PruneOptions{Depth: -1},
		},
		{
			name:     "layered: deleting the image frees its unique layers and their weak refs",
			specs:    []commitSpec{{name: "base"}, {name: "top1"}, {name: "top2"}, {name: "img1", related: []string{"base", "top1"}}, {name: "img2", related: []string{"base", "top2"}}},
			roots:    []string{"img2"},
			weak:     map[string]string{"layer/base": "base", "layer/top1": "top1", "layer/top2": "top2"},
			keep:     []string{"img2", "base", "top2"},
			weakGone: []string{"layer/top1"},
			opts:     PruneOptions{Depth: -1},
		},
		{
			name:     "squashed: no related, layers are garbage",
			specs:    []commitSpec{{name: "base"}, {name: "top"}, {name: "img"}},
			roots:    []string{"img"},
			weak:     map[string]string{"layer/base": "base", "layer/top": "top"},
			keep:     []string{"img"},
			weakGone: []string{"layer/base", "layer/top"},
			opts:     PruneOptions{Depth: -1},
		},
		{
			name:  "weak refs alone keep nothing",
			specs: []commitSpec{{name: "a"}},
			weak:  map[string]string{"w": "a"},
			keep:  nil, weakGone: []string{"w"},
			opts: PruneOptions{Depth: -1},
		},
		{
			name:  "depth 0 keeps only the ref's commit",
			specs: []commitSpec{{name: "p2"}, {name: "p1", parent: "p2"}, {name: "c", parent: "p1"}},
			roots: []string{"c"},
			keep:  []string{"c"},
			opts:  PruneOptions{Depth: 0},
		},
		{
			name:  "depth 1 keeps one parent",
			specs: []commitSpec{{name: "p2"}, {name: "p1", parent: "p2"}, {name: "c", parent: "p1"}},
			roots: []string{"c"},
			keep:  []string{"c", "p1"},
			opts:  PruneOptions{Depth: 1},
		},
		{
			name:  "related of a parent is followed when the parent is kept",
			specs: []commitSpec{{name: "l"}, {name: "p", related: []string{"l"}}, {name: "c", parent: "p"}},
			roots: []string{"c"},
			keep:  []string{"c", "p", "l"},
			opts:  PruneOptions{Depth: -1},
		},
		{
			name:  "keep-younger-than stops at the first older parent",
			specs: []commitSpec{{name: "old", ts: 1 * day}, {name: "mid", parent: "old", ts: 5 * day}, {name: "new", parent: "mid", ts: 9 * day}},
			roots: []string{"new"},
			keep:  []string{"new", "mid"},
			opts:  PruneOptions{KeepYoungerThan: time.Unix(int64(4*day), 0)},
		},
		{
			name:  "a missing parent ends the chain",
			specs: []commitSpec{{name: "c", parent: "gone"}},
			roots: []string{"c"},
			keep:  []string{"c"},
			opts:  PruneOptions{Depth: -1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, objs, ids := build(tc.specs)
			in := &PruneInput{Objects: objs, Options: tc.opts}
			for _, r := range tc.roots {
				in.Roots = append(in.Roots, Root{Name: "ref " + r, Commit: ids[r]})
			}
			var weakNames []string
			for w := range tc.weak {
				weakNames = append(weakNames, w)
			}
			sort.Strings(weakNames)
			for _, w := range weakNames {
				in.WeakRefs = append(in.WeakRefs, Ref{Name: Weak(w), Commit: ids[tc.weak[w]]})
			}
			plan, err := PlanPrune(g, in)
			if err != nil {
				t.Fatal(err)
			}
			deleted := map[ObjectName]bool{}
			seenOther := false
			for _, o := range plan.Delete {
				deleted[o.ObjectName] = true
				if o.Type != ObjCommit {
					seenOther = true
				} else if seenOther {
					t.Errorf("commit %s deleted after a tree object", o.Checksum.Str())
				}
			}
			keep := map[string]bool{}
			for _, k := range tc.keep {
				keep[k] = true
			}
			for _, s := range tc.specs {
				if deleted[ObjectName{ObjCommit, ids[s.name]}] == keep[s.name] {
					t.Errorf("commit %s: deleted=%v, want kept=%v", s.name, !keep[s.name], keep[s.name])
				}
				own := ObjectName{ObjFile, sumOf("file " + s.name)}
				if deleted[own] == keep[s.name] {
					t.Errorf("file of %s: deleted=%v", s.name, deleted[own])
				}
			}
			common := deleted[ObjectName{ObjFile, sumOf("common")}]
			if common != (len(tc.keep) == 0) {
				t.Errorf("common file deleted=%v with %d live commits", common, len(tc.keep))
			}
			var gone []string
			for _, w := range plan.WeakRefs {
				gone = append(gone, w.Name.Name)
			}
			sort.Strings(gone)
			if fmt.Sprint(gone) != fmt.Sprint(tc.weakGone) && !(len(gone) == 0 && len(tc.weakGone) == 0) {
				t.Errorf("weak refs deleted %v, want %v", gone, tc.weakGone)
			}
			if plan.Total != len(objs) || plan.Reachable+plan.Deleted() != plan.Total {
				t.Errorf("counts: total %d reachable %d deleted %d of %d", plan.Total, plan.Reachable, plan.Deleted(), len(objs))
			}
			if plan.Bytes != int64(10*len(plan.Delete)) {
				t.Errorf("bytes %d for %d objects", plan.Bytes, len(plan.Delete))
			}
		})
	}
}

func TestPlanPruneRefusesMissingTree(t *testing.T) {
	g, objs, ids := build([]commitSpec{{name: "a"}})
	delete(g.trees, g.commits[ids["a"]].RootTree)
	_, err := PlanPrune(g, &PruneInput{Objects: objs, Roots: []Root{{"ref a", ids["a"]}}, Options: PruneOptions{Depth: -1}})
	if err == nil {
		t.Fatal("a live commit with a missing tree was pruned")
	}
	g.partial[ids["a"]] = true
	if _, err := PlanPrune(g, &PruneInput{Objects: objs, Roots: []Root{{"ref a", ids["a"]}}, Options: PruneOptions{Depth: -1}}); err != nil {
		t.Fatalf("partial commit: %v", err)
	}
}

// TestPlanPruneCommitMeta: a dead commit's commitmeta goes with it, a live
// one's stays, and an orphaned one (its commit deleted by an interrupted
// prune) is collected, but not counted as an object, as in ostree.
func TestPlanPruneCommitMeta(t *testing.T) {
	g, objs, ids := build([]commitSpec{{name: "a"}, {name: "b"}})
	orphan := sumOf("commit gone")
	objs = append(objs,
		ObjectInfo{ObjectName{ObjCommitMeta, ids["a"]}, 10},
		ObjectInfo{ObjectName{ObjCommitMeta, ids["b"]}, 10},
		ObjectInfo{ObjectName{ObjCommitMeta, orphan}, 10})
	plan, err := PlanPrune(g, &PruneInput{Objects: objs, Roots: []Root{{"ref a", ids["a"]}}, Options: PruneOptions{Depth: -1}})
	if err != nil {
		t.Fatal(err)
	}
	gone := map[Checksum]bool{}
	for _, o := range plan.Delete {
		if o.Type == ObjCommitMeta {
			gone[o.Checksum] = true
		}
	}
	if gone[ids["a"]] || !gone[ids["b"]] || !gone[orphan] || len(gone) != 2 {
		t.Errorf("commitmeta deleted: %v; want b's and the orphan's, not a's", gone)
	}
	if plan.Deleted() != len(plan.Delete)-2 {
		t.Errorf("Deleted() = %d counts commitmeta (plan of %d)", plan.Deleted(), len(plan.Delete))
	}
}
