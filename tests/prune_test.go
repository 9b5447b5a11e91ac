package tests

// Prune acceptance, all through the CLI: the three storage strategies
// of images built by hand with commit --related and refs --weak, the
// related list as a keep-alive (and ostree's prune disagreeing), prune
// racing commits, dry runs, --depth and --keep-younger-than, pins.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// commitDir commits dir with ostree-mount commit (no bindings) and
// returns the checksum it prints.
func commitDir(t testing.TB, rp, dir string, args ...string) string {
	t.Helper()
	out := om(t, append(append([]string{"commit", "--repo", rp, "--no-bindings"}, args...), dir)...)
	sum := strings.TrimSpace(out)
	if !hex64.MatchString(sum) {
		t.Fatalf("commit printed %q", out)
	}
	return sum
}

// writeTree creates dir with the files (path → content), 0644.
func writeTree(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	noErr(t, os.MkdirAll(dir, 0o755))
	for p, c := range files {
		f := filepath.Join(dir, p)
		noErr(t, os.MkdirAll(filepath.Dir(f), 0o755))
		noErr(t, os.WriteFile(f, []byte(c), 0o644))
	}
	return dir
}

// layerSet is a hand-built image: three layer trees (base, top1, top2),
// their commits and weak refs.
type layerSet struct {
	base, top1, top2 string // commits
	weak             map[string]string
}

// makeLayers commits three layer trees as orphan commits with weak
// refs. top1 and top2 share a file with base (same object).
func makeLayers(t *testing.T, rp, dir string) layerSet {
	t.Helper()
	files := func(prefix string, n int) map[string]string {
		m := map[string]string{"etc/common": "shared by every layer\n"}
		for i := range n {
			m[fmt.Sprintf("%s/f%d", prefix, i)] = fmt.Sprintf("%s file %d\n", prefix, i)
		}
		return m
	}
	ls := layerSet{weak: map[string]string{}}
	for _, l := range []struct {
		name string
		n    int
		dst  *string
	}{{"base", 6, &ls.base}, {"top1", 4, &ls.top1}, {"top2", 3, &ls.top2}} {
		*l.dst = commitDir(t, rp, writeTree(t, filepath.Join(dir, l.name), files(l.name, l.n)), "--orphan", fixedTS)
		w := "ostree-mount/layer/sha256/" + sha256Hex([]byte(l.name))
		om(t, "refs", "--repo", rp, "--weak", "--create", w, *l.dst)
		ls.weak[l.name] = w
	}
	return ls
}

// composed writes the union of layer trees (later wins) into dir.
func composed(t *testing.T, dir string, layers ...string) string {
	t.Helper()
	noErr(t, os.MkdirAll(dir, 0o755))
	for _, l := range layers {
		mustRun(t, "cp", "-a", l+"/.", dir)
	}
	return dir
}

// checkPruned checks a prune's report and effect: exactly the objects
// gone are deleted, the total counted everything before.
func checkPruned(t *testing.T, rp string, r pruneReport, before map[string]objStat, gone map[string]bool, weakGone int) {
	t.Helper()
	total := len(before) - countExt(before, "commitmeta")
	if r.Total != total || r.Deleted != len(gone) || r.WeakRefs != weakGone {
		t.Errorf("prune reported total %d, deleted %d objects, %d weak refs; want %d, %d, %d:\n%s",
			r.Total, r.Deleted, r.WeakRefs, total, len(gone), weakGone, r.Out)
	}
	if r.Deleted > 0 && r.Bytes <= 0 {
		t.Errorf("prune deleted %d objects but reports %d bytes freed", r.Deleted, r.Bytes)
	}
	after := repoObjects(t, rp)
	for k := range before {
		_, still := after[k]
		if still == gone[k] {
			t.Errorf("object %s: present after prune = %v, want %v", k, still, !gone[k])
		}
	}
	if extra := addedObjects(before, after); len(extra) > 0 {
		t.Errorf("prune added objects %v", extra)
	}
}

func commitGone(t *testing.T, rp, sum, what string) {
	t.Helper()
	if r := omRun("show", "--repo", rp, sum); r.Code == 0 {
		t.Errorf("%s %s survived prune", what, sum)
	}
}

// TestPruneStrategies builds the three storage strategies of an image by
// hand and prunes them.
func TestPruneStrategies(t *testing.T) {
	t.Run("layered", func(t *testing.T) {
		dir := t.TempDir()
		rp := initImageRepo(t, dir, "repo", "bare-user")
		ls := makeLayers(t, rp, dir)
		empty := writeTree(t, filepath.Join(dir, "empty"), nil)
		m1 := commitDir(t, rp, empty, "-b", "image/one", fixedTS, "--related", "base="+ls.base, "--related", "top1="+ls.top1)
		m2 := commitDir(t, rp, empty, "-b", "image/two", fixedTS, "-s", "two", "--related", "base="+ls.base, "--related", "top2="+ls.top2)
		before := repoObjects(t, rp)
		r := runPrune(t, rp)
		checkPruned(t, rp, r, before, nil, 0)

		keep := setUnion(commitObjects(t, rp, "bare-user", m2), commitObjects(t, rp, "bare-user", ls.base), commitObjects(t, rp, "bare-user", ls.top2))
		gone := setMinus(setUnion(commitObjects(t, rp, "bare-user", m1), commitObjects(t, rp, "bare-user", ls.top1)), keep)
		if len(gone) < 5 {
			t.Fatalf("scenario: image one should own at least its commit and top1's 4 files, commit and dirtrees: %v", gone)
		}
		om(t, "refs", "--repo", rp, "--delete", "image/one")
		r = runPrune(t, rp)
		checkPruned(t, rp, r, before, gone, 1)
		commitGone(t, rp, m1, "image one's manifest commit")
		commitGone(t, rp, ls.top1, "image one's unique layer")
		if got, want := weakRefs(t, rp), sortedKeys(map[string]bool{ls.weak["base"]: true, ls.weak["top2"]: true}); !slices.Equal(got, want) {
			t.Errorf("weak refs after prune %v, want %v", got, want)
		}
		checkoutEquals(t, rp, ls.base, filepath.Join(dir, "base"), dir)
		checkoutEquals(t, rp, ls.top2, filepath.Join(dir, "top2"), dir)
		fsckBoth(t, rp)
	})
	t.Run("precomposed", func(t *testing.T) {
		dir := t.TempDir()
		rp := initImageRepo(t, dir, "repo", "bare-user")
		ls := makeLayers(t, rp, dir)
		tree := composed(t, filepath.Join(dir, "composed"), filepath.Join(dir, "base"), filepath.Join(dir, "top1"))
		m := commitDir(t, rp, tree, "-b", "image/one", fixedTS, "--related", "base="+ls.base, "--related", "top1="+ls.top1)
		// top2 belongs to no image: it and its weak ref are garbage.
		keep := setUnion(commitObjects(t, rp, "bare-user", m), commitObjects(t, rp, "bare-user", ls.base), commitObjects(t, rp, "bare-user", ls.top1))
		gone := setMinus(commitObjects(t, rp, "bare-user", ls.top2), keep)
		before := repoObjects(t, rp)
		r := runPrune(t, rp)
		checkPruned(t, rp, r, before, gone, 1)
		commitGone(t, rp, ls.top2, "unreferenced layer")
		if got, want := weakRefs(t, rp), sortedKeys(map[string]bool{ls.weak["base"]: true, ls.weak["top1"]: true}); !slices.Equal(got, want) {
			t.Errorf("weak refs after prune %v, want %v", got, want)
		}
		checkoutEquals(t, rp, "image/one", tree, dir)
		checkoutEquals(t, rp, ls.top1, filepath.Join(dir, "top1"), dir)
		fsckBoth(t, rp)
	})
	t.Run("squashed", func(t *testing.T) {
		dir := t.TempDir()
		rp := initImageRepo(t, dir, "repo", "bare-user")
		ls := makeLayers(t, rp, dir)
		tree := composed(t, filepath.Join(dir, "composed"), filepath.Join(dir, "base"), filepath.Join(dir, "top1"))
		m := commitDir(t, rp, tree, "-b", "image/one", fixedTS)
		keep := commitObjects(t, rp, "bare-user", m)
		gone := setMinus(setUnion(commitObjects(t, rp, "bare-user", ls.base), commitObjects(t, rp, "bare-user", ls.top1), commitObjects(t, rp, "bare-user", ls.top2)), keep)
		before := repoObjects(t, rp)
		r := runPrune(t, rp)
		checkPruned(t, rp, r, before, gone, 3)
		for _, c := range []string{ls.base, ls.top1, ls.top2} {
			commitGone(t, rp, c, "layer of a squashed image")
		}
		if w := weakRefs(t, rp); len(w) != 0 {
			t.Errorf("weak refs survived prune: %v", w)
		}
		checkoutEquals(t, rp, "image/one", tree, dir)
		fsckBoth(t, rp)
	})
}

// TestPruneRelatedOnly: a commit reachable only through another commit's
// related list survives ostree-mount prune; ostree prune --refs-only, on
// a copy of the same repository, deletes it.
func TestPruneRelatedOnly(t *testing.T) {
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	hidden := writeTree(t, filepath.Join(dir, "hidden"), map[string]string{"only/here": "reachable only through related\n"})
	x := commitDir(t, rp, hidden, "--orphan", fixedTS)
	commitDir(t, rp, writeTree(t, filepath.Join(dir, "keeper"), map[string]string{"k": "keeper\n"}), "-b", "keeper", fixedTS, "--related", "x="+x)
	xObjs := commitObjects(t, rp, "bare-user", x)

	cp := filepath.Join(dir, "copy")
	mustRun(t, "cp", "-a", rp, cp)

	before := repoObjects(t, rp)
	r := runPrune(t, rp)
	checkPruned(t, rp, r, before, nil, 0)
	checkoutEquals(t, rp, x, hidden, dir)
	fsckBoth(t, rp)

	ostreeCmd(t, "prune", "--repo="+cp, "--refs-only")
	if r := ostreeRun("show", "--repo="+cp, x); r.Code == 0 {
		t.Errorf("ostree prune --refs-only kept the commit reachable only through related; the documented difference is gone:\n%s", r)
	}
	after := repoObjects(t, cp)
	for k := range xObjs {
		if _, ok := after[k]; ok && strings.HasSuffix(k, ".commit") {
			t.Errorf("ostree prune --refs-only kept %s", k)
		}
	}
	ostreeCmd(t, "fsck", "--repo="+cp)
}

// mediumTree is a tree of 2,000 small files in 40 directories, made once.
var mediumTreeOnce struct {
	sync.Once
	dir string
}

func mediumTree(t testing.TB) string {
	t.Helper()
	mediumTreeOnce.Do(func() {
		d := filepath.Join(workDir, "medium-tree")
		for i := range 40 {
			sub := filepath.Join(d, fmt.Sprintf("d%02d", i))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			for j := range 50 {
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d", j)), fmt.Appendf(nil, "medium tree file %d/%d\n", i, j), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		mediumTreeOnce.dir = d
	})
	if mediumTreeOnce.dir == "" {
		t.Fatal("medium tree was not made")
	}
	return mediumTreeOnce.dir
}

// TestPruneConcurrentCommit races ostree-mount commit against
// ostree-mount prune 20 times. Before each round the previous round's
// ref is deleted, so that prune wants to delete the very objects the new
// commit finds already present. Both must succeed, and the new commit
// must be whole.
func TestPruneConcurrentCommit(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	mustRun(t, "cp", "-a", mediumTree(t), tree)
	rp := initImageRepo(t, dir, "repo", "bare-user")
	bigPrunes := 0
	for i := range 20 {
		noErr(t, os.WriteFile(filepath.Join(tree, "round"), fmt.Appendf(nil, "round %d\n", i), 0o644))
		if i > 0 {
			om(t, "refs", "--repo", rp, "--delete", fmt.Sprintf("round/%d", i-1))
		}
		ref := fmt.Sprintf("round/%d", i)
		cmds := []*exec.Cmd{
			exec.Command(binary, "commit", "--repo", rp, "-b", ref, "--no-bindings", fixedTS, tree),
			exec.Command(binary, "prune", "--repo", rp),
		}
		if i%2 == 1 {
			cmds[0], cmds[1] = cmds[1], cmds[0]
		}
		outs := make([]strings.Builder, 2)
		errs := make([]strings.Builder, 2)
		for k, c := range cmds {
			c.Stdout, c.Stderr = &outs[k], &errs[k]
		}
		for _, c := range cmds {
			noErr(t, c.Start())
		}
		var commitOut, pruneOut string
		for k, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Fatalf("round %d: %s failed: %v\nstdout:\n%s\nstderr:\n%s", i, strings.Join(c.Args, " "), err, outs[k].String(), errs[k].String())
			}
			if c.Args[1] == "commit" {
				commitOut = outs[k].String()
			} else {
				pruneOut = outs[k].String()
			}
		}
		sum := strings.TrimSpace(commitOut)
		if got := readRefFile(t, rp, "refs/heads/"+ref); !hex64.MatchString(sum) || got != sum {
			t.Fatalf("round %d: commit printed %q, ref %s holds %q", i, sum, ref, got)
		}
		if r := parsePrune(t, pruneOut); r.Deleted >= 2000 {
			bigPrunes++
		}
		ostreeCmd(t, "fsck", "--repo="+rp)
		// ostree's own checkout (user mode: faster, and the tree is all
		// root-owned 0644/0755) each round; ostree-mount's at the end.
		co := filepath.Join(dir, "co")
		ostreeCmd(t, "checkout", "--repo="+rp, "-U", ref, co)
		// It hardlinks the objects: their user.ostreemeta shows.
		noMeta := treecmp.Options{IgnoreXattrs: []string{"user.ostreemeta"}}
		checkTreesEqual(t, fmt.Sprintf("round %d: ostree checkout -U of %s", i, ref), dumpTree(t, tree, noMeta), dumpTree(t, co, noMeta))
		noErr(t, os.RemoveAll(co))
		if i == 19 {
			checkoutEquals(t, rp, ref, tree, dir)
		}
		if t.Failed() {
			t.Fatalf("round %d failed", i)
		}
	}
	// Either order is fine; log which happened, to see the race is done.
	t.Logf("prune ran before the commit (deleting the previous round's tree) in %d of 19 rounds", bigPrunes)
	om(t, "fsck", "--repo", rp)
}

// TestPruneDryRun: --dry-run changes nothing in the repository (every
// file, its content, mode, mtime and symlink target), yet announces the
// objects and weak refs the done prune then deletes.
func TestPruneDryRun(t *testing.T) {
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	ls := makeLayers(t, rp, dir)
	commitDir(t, rp, writeTree(t, filepath.Join(dir, "empty"), nil), "-b", "image/one", fixedTS, "--related", "base="+ls.base)
	snap := func() []string {
		return dumpTree(t, rp, treecmp.Options{MTime: true, Hardlinks: true})
	}
	before := snap()
	dry := parsePrune(t, om(t, "prune", "--repo", rp, "--dry-run"))
	if !strings.Contains(dry.Out, "Would delete") {
		t.Errorf("dry run does not say what it would delete:\n%s", dry.Out)
	}
	if dry.Deleted == 0 || dry.WeakRefs != 2 {
		t.Errorf("dry run announces %d objects and %d weak refs, want some objects and 2 weak refs (top1, top2):\n%s", dry.Deleted, dry.WeakRefs, dry.Out)
	}
	checkTreesEqual(t, "repository before and after prune --dry-run", before, snap())
	done := runPrune(t, rp)
	if done.Deleted != dry.Deleted || done.WeakRefs != dry.WeakRefs || done.Bytes != dry.Bytes || done.Total != dry.Total {
		t.Errorf("dry run announced %+v, the prune did %+v", dry, done)
	}
	if d := treecmp.Diff(before, snap()); d == "" {
		t.Errorf("the done prune changed nothing either: the dry-run comparison proves nothing")
	}
	fsckBoth(t, rp)
}

// TestPruneDepth: a branch of three commits (2020, 2021, 2022); --depth
// and --keep-younger-than decide how many parents keep their objects.
func TestPruneDepth(t *testing.T) {
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	var commits []string
	for i, year := range []string{"2020", "2021", "2022"} {
		tree := writeTree(t, filepath.Join(dir, "t"+year), map[string]string{
			"common":           "same in every commit\n",
			"changing":         "version " + year + "\n",
			"only/" + year:     "unique to " + year + "\n",
			"nested/a/b/c":     "deep, same\n",
			"nested/v/" + year: fmt.Sprint(i),
		})
		commits = append(commits, commitDir(t, rp, tree, "-b", "hist", "--timestamp="+year+"-01-01T00:00:00Z"))
	}
	objs := make([]map[string]bool, 3)
	for i, c := range commits {
		objs[i] = commitObjects(t, rp, "bare-user", c)
	}
	for _, c := range []struct {
		name string
		args []string
		keep []int
	}{
		{"default", nil, []int{0, 1, 2}},
		{"depth-0", []string{"--depth", "0"}, []int{2}},
		{"depth-1", []string{"--depth", "1"}, []int{1, 2}},
		{"younger-than-2020-06", []string{"--keep-younger-than", "2020-06-01T00:00:00Z"}, []int{1, 2}},
		{"younger-than-2021-06", []string{"--keep-younger-than", "2021-06-01 00:00:00 +0000"}, []int{2}},
		{"younger-than-2019", []string{"--keep-younger-than", "2019-01-01T00:00:00Z"}, []int{0, 1, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "repo")
			mustRun(t, "cp", "-a", rp, cp)
			var keep, all []map[string]bool
			for i := range commits {
				all = append(all, objs[i])
				if slices.Contains(c.keep, i) {
					keep = append(keep, objs[i])
				}
			}
			gone := setMinus(setUnion(all...), setUnion(keep...))
			before := repoObjects(t, cp)
			r := runPrune(t, cp, c.args...)
			checkPruned(t, cp, r, before, gone, 0)
			for i, sum := range commits {
				if slices.Contains(c.keep, i) {
					checkoutEquals(t, cp, sum, filepath.Join(dir, "t"+[]string{"2020", "2021", "2022"}[i]), t.TempDir())
				} else {
					commitGone(t, cp, sum, "parent commit beyond the kept history")
				}
			}
			fsckBoth(t, cp)
		})
	}
}

// startPin starts ostree-mount pin REV and waits for the checksum it
// prints once the pin is in place.
func startPin(t *testing.T, rp, rev string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(binary, "pin", "--repo", rp, rev)
	stdout, err := cmd.StdoutPipe()
	noErr(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	noErr(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		sum := strings.TrimSpace(l)
		if !hex64.MatchString(sum) {
			t.Fatalf("pin printed %q; stderr:\n%s", l, stderr.String())
		}
		return cmd, sum
	case <-time.After(60 * time.Second):
		t.Fatalf("pin printed nothing in 60s; stderr:\n%s", stderr.String())
	}
	return nil, ""
}

func pinFiles(t *testing.T, rp string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(rp, "pins", "*"))
	noErr(t, err)
	hidden, err := filepath.Glob(filepath.Join(rp, "pins", ".*"))
	noErr(t, err)
	return append(m, hidden...)
}

// TestPrunePins: a commit pinned by a live ostree-mount pin survives
// prune without a ref; once the pin process is killed with SIGKILL, the
// next prune deletes the commit and the dead pin's file. pin REV -- CMD
// runs CMD, returns its status and leaves no pin file.
func TestPrunePins(t *testing.T) {
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	tree := writeTree(t, filepath.Join(dir, "tree"), map[string]string{"pinned/file": "pinned content\n", "b": "b\n"})
	sum := commitDir(t, rp, tree, "-b", "pinme", fixedTS)
	objs := commitObjects(t, rp, "bare-user", sum)

	pin, got := startPin(t, rp, "pinme")
	if got != sum {
		t.Fatalf("pin printed %s, want %s", got, sum)
	}
	if p := pinFiles(t, rp); len(p) != 1 || !strings.HasPrefix(filepath.Base(p[0]), sum+".") || !strings.HasSuffix(p[0], ".pin") {
		t.Errorf("pin files %v, want one %s.*.pin", p, sum)
	}
	om(t, "refs", "--repo", rp, "--delete", "pinme")
	before := repoObjects(t, rp)
	r := runPrune(t, rp)
	checkPruned(t, rp, r, before, nil, 0)
	checkoutEquals(t, rp, sum, tree, dir)

	noErr(t, pin.Process.Kill())
	pin.Wait()
	if p := pinFiles(t, rp); len(p) != 1 {
		t.Errorf("after SIGKILL the pin file should remain until prune; pin files: %v", p)
	}
	r = runPrune(t, rp)
	checkPruned(t, rp, r, before, objs, 0)
	commitGone(t, rp, sum, "commit of a dead pin")
	if p := pinFiles(t, rp); len(p) != 0 {
		t.Errorf("prune left the dead pin's files: %v", p)
	}
	fsckBoth(t, rp)

	sum2 := commitDir(t, rp, tree, "-b", "again", fixedTS)
	res := mustRun(t, binary, "pin", "--repo", rp, "again", "--", "true")
	if strings.TrimSpace(res.Stdout) != sum2 {
		t.Errorf("pin -- true printed %q, want %s", res.Stdout, sum2)
	}
	if p := pinFiles(t, rp); len(p) != 0 {
		t.Errorf("pin -- true left pin files: %v", p)
	}
	if r := run(binary, "pin", "--repo", rp, "again", "--", "sh", "-c", "exit 3"); r.Code != 3 {
		t.Errorf("pin -- sh -c 'exit 3' exited %d, want 3:\n%s", r.Code, r)
	}
	if p := pinFiles(t, rp); len(p) != 0 {
		t.Errorf("pin -- (failing command) left pin files: %v", p)
	}
}
