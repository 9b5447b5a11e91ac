package repo_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: bare objects keep their owners and security.* xattrs")
	}
}

func dirPerm(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// writeOne stores a regular file object and commits the transaction.
func writeOne(t *testing.T, r *repo.Repo, m repo.FileMeta, body string) repo.Checksum {
	t.Helper()
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	m.Size = int64(len(body))
	c, err := tx.WriteFile(&m, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return c
}

// capValue is a valid security.capability (revision 2) granting
// CAP_DAC_READ_SEARCH.
var capValue = []byte{1, 0, 0, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// The dangerous metadata an image can carry.
var (
	setuidMeta = repo.FileMeta{Mode: repo.ModeRegular | 0o4755}
	worldMeta  = repo.FileMeta{Mode: repo.ModeRegular | 0o666, UID: 7, GID: 8}
	capMeta    = repo.FileMeta{Mode: repo.ModeRegular | 0o755, Xattrs: []repo.Xattr{{Name: "security.capability", Value: capValue}}}
)

func TestBareObjectsArePrivate(t *testing.T) {
	for _, mode := range repotest.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			r := repotest.NewRepo(t, mode)
			want := os.FileMode(0o755)
			if mode == repo.ModeBare {
				want = 0o700
			}
			for _, d := range []string{"objects", "tmp"} {
				if got := dirPerm(t, filepath.Join(r.Path(), d)); got != want {
					t.Errorf("init: %s is %04o, want %04o", d, got, want)
				}
			}
		})
	}
	// A bare repository made wider (as `ostree init --mode=bare` makes
	// it) is made private again by the next transaction.
	r := repotest.NewRepo(t, repo.ModeBare)
	for _, d := range []string{"objects", "tmp"} {
		if err := os.Chmod(filepath.Join(r.Path(), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tx.Abort()
	for _, d := range []string{"objects", "tmp"} {
		if got := dirPerm(t, filepath.Join(r.Path(), d)); got != 0o700 {
			t.Errorf("after Begin: %s is %04o, want 0700", d, got)
		}
	}
}

// Outside bare mode, object files never carry setuid, setgid, sticky,
// group or other write, or security.* xattrs, and the true metadata
// still reads back and verifies.
func TestObjectFilesAreHarmless(t *testing.T) {
	needRoot(t)
	for _, mode := range []repo.Mode{repo.ModeBareUser, repo.ModeBareUserOnly, repo.ModeArchive} {
		t.Run(mode.String(), func(t *testing.T) {
			r := repotest.NewRepo(t, mode)
			for _, m := range []repo.FileMeta{setuidMeta, worldMeta, capMeta, {Mode: repo.ModeRegular | 0o7777}} {
				want := m
				c := writeOne(t, r, m, "#!/bin/sh\n")
				p := r.ObjectPath(repo.ObjFile, c)
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil {
					t.Fatal(err)
				}
				if st.Mode&0o7022 != 0 || st.Mode&0o400 == 0 {
					t.Errorf("%#o: object file mode %#o", want.Mode, st.Mode&0o7777)
				}
				if _, err := unix.Lgetxattr(p, "security.capability", make([]byte, 64)); err == nil {
					t.Errorf("%#o: object file carries security.capability", want.Mode)
				}
				got, err := r.ReadFileMeta(context.TODO(), c)
				if err != nil {
					t.Fatal(err)
				}
				if mode == repo.ModeBareUserOnly {
					// Canonical: the on-disk mode is the metadata.
					want.UID, want.GID, want.Xattrs = 0, 0, nil
					want.Mode = want.Mode&repo.ModeFmt | want.Mode&0o755
				}
				if got.Mode != want.Mode || got.UID != want.UID || got.GID != want.GID || len(got.Xattrs) != len(want.Xattrs) {
					t.Errorf("%#o: read back %+v, want %+v", m.Mode, got, want)
				}
				if err := r.VerifyFile(c); err != nil {
					t.Errorf("%#o: %v", m.Mode, err)
				}
			}
			if ws, err := r.CheckExposure(context.Background()); err != nil || len(ws) != 0 {
				t.Errorf("CheckExposure: %v, %v", ws, err)
			}
		})
	}
}

func TestCheckExposureBare(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	r := repotest.NewRepo(t, repo.ModeBare)
	suid := writeOne(t, r, setuidMeta, "suid")
	world := writeOne(t, r, worldMeta, "world")
	capf := writeOne(t, r, capMeta, "cap")
	writeOne(t, r, repo.FileMeta{Mode: repo.ModeRegular | 0o644}, "plain")
	if ws, err := r.CheckExposure(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("private bare repository: %v, %v; want no warnings", ws, err)
	}
	if err := os.Chmod(filepath.Join(r.Path(), "objects"), 0o755); err != nil {
		t.Fatal(err)
	}
	ws, err := r.CheckExposure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range ws {
		got[w.Path] = w.Problem
	}
	rel := func(c repo.Checksum) string {
		p, _ := filepath.Rel(r.Path(), r.ObjectPath(repo.ObjFile, c))
		return p
	}
	for p, want := range map[string]string{
		"objects":  "mode 0755",
		rel(suid):  "setuid",
		rel(world): "world-writable",
		rel(capf):  "security.capability",
	} {
		if !strings.Contains(got[p], want) {
			t.Errorf("warning for %s: %q, want it to say %q; all: %v", p, got[p], want, ws)
		}
	}
	if len(ws) != 4 {
		t.Errorf("%d warnings, want 4 (objects/ and three objects): %v", len(ws), ws)
	}
	if ws[0].Fix == "" || !strings.Contains(ws[0].Fix, "chmod 0700") {
		t.Errorf("no fix given: %+v", ws[0])
	}
	// A transaction closes the store again.
	writeOne(t, r, repo.FileMeta{Mode: repo.ModeRegular | 0o644}, "more")
	if ws, err := r.CheckExposure(ctx); err != nil || len(ws) != 0 {
		t.Errorf("after a transaction: %v, %v; want no warnings", ws, err)
	}
}

// Objects made by earlier versions (bare-user kept group write and,
// before that, setuid) are named, and the listing is capped.
func TestCheckExposureEarlierObjects(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeBareUser)
	var paths []string
	for i := 0; i < 25; i++ {
		c := writeOne(t, r, repo.FileMeta{Mode: repo.ModeRegular | 0o644}, strings.Repeat("x", i))
		paths = append(paths, r.ObjectPath(repo.ObjFile, c))
	}
	writeOne(t, r, repo.FileMeta{Mode: repo.ModeRegular | 0o644}, "fine")
	sort.Strings(paths) // the listing's order: paths[0] is named first
	if err := os.Chmod(paths[0], os.ModeSetuid|0o775); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths[1:] {
		if err := os.Chmod(p, 0o664); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := r.CheckExposure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 21 {
		t.Fatalf("%d warnings, want 20 objects and a count: %v", len(ws), ws)
	}
	last := ws[len(ws)-1]
	if !strings.Contains(last.Problem, "5 more") || last.Fix == "" {
		t.Errorf("last warning %+v: want the count of the 5 unlisted and a fix", last)
	}
	first, _ := filepath.Rel(r.Path(), paths[0])
	if ws[0].Path != first || !strings.Contains(ws[0].Problem, "mode 4775") || !strings.Contains(ws[0].Problem, "setuid, group-writable") {
		t.Errorf("first warning %+v: want %s, setuid and group-writable", ws[0], first)
	}
	for _, w := range ws[1:20] {
		if !strings.HasPrefix(w.Path, "objects/") || !strings.Contains(w.Problem, "mode 0664") {
			t.Errorf("warning %+v: want a group-writable object", w)
		}
	}
}
