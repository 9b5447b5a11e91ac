package repo_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// damageTree writes a tree of several directories with their own
// dirtrees (a, b, b/c) and a directory (d) with its own dirmeta.
func damageTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	for p, body := range map[string]string{
		"f1": "one\n", "f2": "two\n", "a/a1": "a1\n", "b/b1": "b1\n", "b/c/c1": "c1\n", "d/d1": "d1\n",
	} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	return src
}

func lookupDir(t *testing.T, r *repo.Repo, tree repo.Checksum, name string) repo.TreeDir {
	t.Helper()
	dt, err := r.ReadDirTree(context.TODO(), tree)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := dt.LookupDir(name)
	if !ok {
		t.Fatalf("no directory %s", name)
	}
	return d
}

func lookupFile(t *testing.T, r *repo.Repo, tree repo.Checksum, name string) repo.Checksum {
	t.Helper()
	dt, err := r.ReadDirTree(context.TODO(), tree)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := dt.LookupFile(name)
	if !ok {
		t.Fatalf("no file %s", name)
	}
	return f.Checksum
}

// TestFsckNamesEveryDamagedObject damages five objects of one commit: a
// corrupt dirtree (a/), a deleted file (f1), a deleted dirtree (b/c/), a
// corrupt dirmeta (d/'s own) and a corrupt file (f2). Fsck must report
// exactly these five, each with its type, as missing or corrupt, and with
// the commit and path it was reached from: the walk goes on past the
// corrupt dirtree to its siblings. The objects under the damaged dirtrees
// cannot be reached and are not reported.
func TestFsckNamesEveryDamagedObject(t *testing.T) {
	src := damageTree(t)
	for _, mode := range repotest.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			r := repotest.NewRepo(t, mode)
			sum := commitDir(t, r, src, &repo.Modifier{Canonical: true}, &repo.CommitOptions{Branch: "x", Timestamp: ts2020})
			cm, err := r.ReadCommit(context.TODO(), sum)
			if err != nil {
				t.Fatal(err)
			}
			a := lookupDir(t, r, cm.RootTree, "a")
			b := lookupDir(t, r, cm.RootTree, "b")
			c := lookupDir(t, r, b.Tree, "c")
			d := lookupDir(t, r, cm.RootTree, "d")
			if d.Meta == cm.RootMeta || d.Meta == a.Meta {
				t.Fatalf("d/ shares its dirmeta")
			}
			damage := []struct {
				obj     repo.ObjectName
				missing bool
				path    string
			}{
				{repo.ObjectName{Type: repo.ObjDirTree, Checksum: a.Tree}, false, "path /a"},
				{repo.ObjectName{Type: repo.ObjFile, Checksum: lookupFile(t, r, cm.RootTree, "f1")}, true, "path /f1"},
				{repo.ObjectName{Type: repo.ObjDirTree, Checksum: c.Tree}, true, "path /b/c"},
				{repo.ObjectName{Type: repo.ObjDirMeta, Checksum: d.Meta}, false, "path /d"},
				{repo.ObjectName{Type: repo.ObjFile, Checksum: lookupFile(t, r, cm.RootTree, "f2")}, false, "path /f2"},
			}
			for _, dm := range damage {
				p := r.ObjectPath(dm.obj.Type, dm.obj.Checksum)
				if dm.missing {
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
				} else {
					repotest.FlipByte(t, p, -1)
				}
			}
			res, err := r.Fsck(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, p := range res.Problems {
				lines = append(lines, p.String())
			}
			t.Logf("problems:\n%s", strings.Join(lines, "\n"))
			if len(res.Problems) != len(damage) {
				t.Errorf("fsck found %d problems, want the %d damaged objects", len(res.Problems), len(damage))
			}
			for _, dm := range damage {
				found := false
				for _, p := range res.Problems {
					if p.Object != dm.obj {
						continue
					}
					found = true
					s := p.String()
					kind := "corrupt "
					if dm.missing {
						kind = "missing "
					}
					if p.Missing != dm.missing || !strings.HasPrefix(s, kind+dm.obj.Type.String()+" "+dm.obj.Checksum.String()) {
						t.Errorf("%s %s %s: reported as %q", kind, dm.obj.Type, dm.path, s)
					}
					if !strings.Contains(p.From, "commit "+sum.String()) || !strings.Contains(p.From, dm.path) {
						t.Errorf("%s %s: reached from %q, want commit %s %s", dm.obj.Type, dm.path, p.From, sum, dm.path)
					}
				}
				if !found {
					t.Errorf("fsck did not name the damaged %s at %s (missing %v)", dm.obj.Type, dm.path, dm.missing)
				}
			}
		})
	}
}

// TestFsckPartialCommit: the unfetched objects of a commit marked partial
// (state/C.commitpartial) are not problems, as in ostree fsck; once the
// mark is gone they are.
func TestFsckPartialCommit(t *testing.T) {
	src := damageTree(t)
	r := repotest.NewRepo(t, repo.ModeArchive)
	sum := commitDir(t, r, src, &repo.Modifier{Canonical: true}, &repo.CommitOptions{Branch: "x", Timestamp: ts2020})
	cm, err := r.ReadCommit(context.TODO(), sum)
	if err != nil {
		t.Fatal(err)
	}
	b := lookupDir(t, r, cm.RootTree, "b")
	for _, p := range []string{r.ObjectPath(repo.ObjFile, lookupFile(t, r, cm.RootTree, "f1")), r.ObjectPath(repo.ObjDirTree, b.Tree)} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	mark := filepath.Join(r.Path(), "state", sum.String()+".commitpartial")
	if err := os.MkdirAll(filepath.Dir(mark), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 0 {
		t.Errorf("fsck of a partial commit reports its unfetched objects: %v", res.Problems)
	}
	if err := os.Remove(mark); err != nil {
		t.Fatal(err)
	}
	if res, err = r.Fsck(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 2 {
		t.Errorf("fsck of the commit no longer partial: %v, want the missing file and dirtree", res.Problems)
	}
}
