package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// TestFsckDamageLikeOstree damages five objects of a commit that ostree
// made (a corrupt dirtree, a deleted file, a deleted dirtree, a corrupt
// dirmeta, a corrupt file). ostree fsck stops at the first it meets (the
// deleted dirtree); ostree-mount fsck must name that one too, and all five,
// each with its type and path.
func TestFsckDamageLikeOstree(t *testing.T) {
	src := t.TempDir()
	for p, body := range map[string]string{
		"f1": "one\n", "f2": "two\n", "a/a1": "a1\n", "b/b1": "b1\n", "b/c/c1": "c1\n", "d/d1": "d1\n",
	} {
		noErr(t, os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755))
		noErr(t, os.WriteFile(filepath.Join(src, p), []byte(body), 0o644))
	}
	noErr(t, os.Chmod(filepath.Join(src, "d"), 0o700))
	rp := filepath.Join(t.TempDir(), "repo")
	ostreeCmd(t, "init", "--repo="+rp, "--mode=bare-user")
	ostreeCmd(t, "commit", "--repo="+rp, "-b", "x", "--tree=dir="+src)
	// ls -R: "d00755 0 0 0 TREE META /path" and "-00644 0 0 4 FILE /path".
	tree, meta, file := map[string]string{}, map[string]string{}, map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(ostreeCmd(t, "ls", "--repo="+rp, "-R", "-C", "x")), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 7 && f[0][0] == 'd':
			tree[f[6]], meta[f[6]] = f[4], f[5]
		case len(f) == 6 && f[0][0] == '-':
			file[f[5]] = f[4]
		}
	}
	obj := func(sum, ext string) string { return filepath.Join(rp, "objects", sum[:2], sum[2:]+"."+ext) }
	damage := []struct {
		kind, sum, path string
		missing         bool
		ext             string
	}{
		{"dirtree", tree["/a"], "/a", false, "dirtree"},
		{"file", file["/f1"], "/f1", true, "file"},
		{"dirtree", tree["/b/c"], "/b/c", true, "dirtree"},
		{"dirmeta", meta["/d"], "/d", false, "dirmeta"},
		{"file", file["/f2"], "/f2", false, "file"},
	}
	for _, d := range damage {
		if d.sum == "" {
			t.Fatalf("no %s at %s in ostree ls", d.kind, d.path)
		}
		if d.missing {
			noErr(t, os.Remove(obj(d.sum, d.ext)))
		} else {
			repotest.FlipByte(t, obj(d.sum, d.ext), -1)
		}
	}
	ost := ostreeRun("fsck", "--repo="+rp)
	if ost.Code == 0 {
		t.Fatalf("ostree fsck passes the damaged repository:\n%s", ost)
	}
	res := omRun("fsck", "--repo", rp)
	if res.Code == 0 {
		t.Fatalf("ostree-mount fsck passes the damaged repository:\n%s", res)
	}
	t.Logf("ostree fsck:\n%s\nostree-mount fsck:\n%s", ost.Stderr, res.Stderr)
	for _, sum := range regexp.MustCompile(`[0-9a-f]{64}`).FindAllString(ost.Stderr, -1) {
		if !strings.Contains(res.Stderr, sum) {
			t.Errorf("ostree fsck names %s, ostree-mount fsck does not", sum)
		}
	}
	lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
	var problems []string
	for _, l := range lines {
		if strings.HasPrefix(l, "missing ") || strings.HasPrefix(l, "corrupt ") {
			problems = append(problems, l)
		}
	}
	if len(problems) != len(damage) {
		t.Errorf("ostree-mount fsck reports %d problems, want %d", len(problems), len(damage))
	}
	for _, d := range damage {
		state := "corrupt"
		if d.missing {
			state = "missing"
		}
		found := false
		for _, l := range problems {
			if strings.HasPrefix(l, state+" "+d.kind+" "+d.sum) && strings.Contains(l, "path "+d.path) {
				found = true
			}
		}
		if !found {
			t.Errorf("ostree-mount fsck does not report the %s %s %s at %s", state, d.kind, d.sum, d.path)
		}
	}
}
