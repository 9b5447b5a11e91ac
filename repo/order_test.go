package repo

import (
	"context"
	"path/filepath"
	"testing"
)

// TestPlanPruneDeletesNamersFirst: a dead commit is deleted in a stage
// before every dead commit it names (related list and parent), so an
// interrupted prune never leaves an image commit whose layer commit is
// gone; commits come before their commitmeta, trees and files; and each
// stage holds what may go in parallel.
func TestPlanPruneDeletesNamersFirst(t *testing.T) {
	specs := []commitSpec{
		{name: "l1"}, {name: "l2"}, {name: "l3"},
		{name: "img", related: []string{"l1", "l2", "l3"}},
		{name: "img2", parent: "img", related: []string{"l1", "l3"}},
		{name: "keep"},
	}
	for round := 0; round < 20; round++ { // the inventory comes in map order
		g, objs, ids := build(specs)
		for _, n := range []string{"img", "l2"} {
			objs = append(objs, ObjectInfo{ObjectName{ObjCommitMeta, ids[n]}, 10})
		}
		plan, err := PlanPrune(g, &PruneInput{Objects: objs, Roots: []Root{{"ref keep", ids["keep"]}}, Options: PruneOptions{Depth: -1}})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Stages) == 0 || plan.Stages[len(plan.Stages)-1] != len(plan.Delete) {
			t.Fatalf("stages %v do not end at %d", plan.Stages, len(plan.Delete))
		}
		stage := make([]int, len(plan.Delete))
		for i, s := 0, 0; i < len(plan.Delete); i++ {
			for i >= plan.Stages[s] {
				s++
			}
			stage[i] = s
		}
		at := map[ObjectName]int{}
		for i, o := range plan.Delete {
			at[o.ObjectName] = i
		}
		commit := func(n string) ObjectName { return ObjectName{ObjCommit, ids[n]} }
		for _, e := range [][2]string{{"img", "l1"}, {"img", "l2"}, {"img", "l3"}, {"img2", "img"}, {"img2", "l1"}, {"img2", "l3"}} {
			a, ok1 := at[commit(e[0])]
			b, ok2 := at[commit(e[1])]
			if !ok1 || !ok2 {
				t.Fatalf("%s or %s not deleted: %v", e[0], e[1], plan.Delete)
			}
			if stage[a] >= stage[b] {
				t.Fatalf("round %d: %s (stage %d) names %s (stage %d): it must be deleted in an earlier stage", round, e[0], stage[a], e[1], stage[b])
			}
		}
		lastCommit := -1
		for i, o := range plan.Delete {
			if o.Type == ObjCommit {
				lastCommit = stage[i]
			}
		}
		for i, o := range plan.Delete {
			if o.Type != ObjCommit && stage[i] <= lastCommit {
				t.Fatalf("round %d: %s %s in stage %d, with or before the last commits (stage %d)", round, o.Type, o.Checksum.Str(), stage[i], lastCommit)
			}
			if i > 0 && stage[i] == stage[i-1] && o.Type != plan.Delete[i-1].Type {
				t.Fatalf("round %d: stage %d mixes %s and %s", round, stage[i], o.Type, plan.Delete[i-1].Type)
			}
		}
		// Layers have no namer in common order: l1, l2 and l3 share a stage.
		if stage[at[commit("l1")]] != stage[at[commit("l2")]] || stage[at[commit("l2")]] != stage[at[commit("l3")]] {
			t.Errorf("round %d: the layer commits are in different stages; they can go in parallel", round)
		}
	}
}

// TestCommitRanks: in a transaction that stages layer commits, an image
// commit relating them and a child of the image, the layers are renamed
// into objects/ first, then the image, then the child.
func TestCommitRanks(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"), InitOptions{Mode: ModeBareUser})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	tree, err := tx.WriteDirTree(&DirTree{})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := tx.WriteDirMeta(&DirMeta{Mode: 0o40755})
	if err != nil {
		t.Fatal(err)
	}
	write := func(subject string, parent Checksum, related ...Checksum) Checksum {
		c := &Commit{Subject: subject, RootTree: tree, RootMeta: meta, Parent: parent}
		for i, rel := range related {
			c.Related = append(c.Related, Related{Name: string(rune('a' + i)), Commit: rel})
		}
		sum, err := tx.WriteCommit(c)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	var layers []Checksum
	for _, s := range []string{"l1", "l2", "l3", "l4"} {
		layers = append(layers, write(s, Checksum{}))
	}
	img := write("img", Checksum{}, layers...)
	child := write("child", img, layers[0])
	outside := sumOf("not staged")
	loner := write("loner", outside, outside)
	var names []ObjectName
	for n := range tx.staged {
		if n.Type == ObjCommit {
			names = append(names, n)
		}
	}
	ranks := tx.commitRanks(names)
	rank := map[Checksum]int{}
	for i, rk := range ranks {
		for _, n := range rk {
			rank[n.Checksum] = i
		}
	}
	if len(rank) != len(names) {
		t.Fatalf("ranks %v hold %d of %d commits", ranks, len(rank), len(names))
	}
	for _, l := range layers {
		if rank[l] != 0 {
			t.Errorf("layer commit in rank %d, want 0", rank[l])
		}
	}
	if rank[img] != 1 || rank[child] != 2 || rank[loner] != 0 {
		t.Errorf("ranks: image %d (want 1), child %d (want 2), a commit naming only unstaged commits %d (want 0)", rank[img], rank[child], rank[loner])
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(layers, img, child, loner) {
		if ok, err := r.HasObject(ObjCommit, c); !ok || err != nil {
			t.Errorf("commit %s not in objects/ after Commit: %v", c.Str(), err)
		}
	}
}
