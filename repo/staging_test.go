package repo_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// makeStaging makes tmp/NAME with a staged object and, if lock, its lock
// file tmp/NAME-lock, as a transaction does.
func makeStaging(t *testing.T, r *repo.Repo, name string, lock bool) {
	t.Helper()
	tmp := filepath.Join(r.Path(), "tmp")
	if err := os.MkdirAll(filepath.Join(tmp, name, "ab"), 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, name, "ab", "cdef.dirmeta"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if lock {
		if err := os.WriteFile(filepath.Join(tmp, name+"-lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// holdStaging takes the OFD write lock of tmp/NAME-lock on a description
// of its own, as a live transaction of another process (ours or
// libostree's) holds it: OFD locks of two descriptions conflict even in
// one process.
func holdStaging(t *testing.T, r *repo.Repo, name string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(r.Path(), "tmp", name+"-lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
}

func tmpEntries(t *testing.T, r *repo.Repo) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(r.Path(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestBeginRemovesDeadStaging: the staging directory of a killed
// transaction (its lock file unlocked), of this boot or another, goes at
// the next Begin, and one in fsck is reported; the directory of a live
// transaction (lock held), a fresh directory whose lock is not made yet,
// and our own are kept.
func TestBeginRemovesDeadStaging(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeBareUser)
	const (
		deadHere  = "staging-a3ecd2ff-ff23-4ee5-a763-b42eb84e6c33-dead01"
		deadOther = "staging-00000000-0000-0000-0000-000000000000-dead02"
		live      = "staging-a3ecd2ff-ff23-4ee5-a763-b42eb84e6c33-live01"
		fresh     = "staging-a3ecd2ff-ff23-4ee5-a763-b42eb84e6c33-fresh1" // libostree: mkdir, then lock
		oldNoLock = "staging-a3ecd2ff-ff23-4ee5-a763-b42eb84e6c33-old001" // killed between the two
	)
	makeStaging(t, r, deadHere, true)
	makeStaging(t, r, deadOther, true)
	makeStaging(t, r, live, true)
	holdStaging(t, r, live)
	makeStaging(t, r, fresh, false)
	makeStaging(t, r, oldNoLock, false)
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(r.Path(), "tmp", oldNoLock), long, long); err != nil {
		t.Fatal(err)
	}
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := tmpEntries(t, r)
	for _, gone := range []string{deadHere, deadHere + "-lock", deadOther, deadOther + "-lock", oldNoLock} {
		if slices.Contains(got, gone) {
			t.Errorf("Begin kept tmp/%s of a dead transaction; tmp holds %q", gone, got)
		}
	}
	for _, kept := range []string{live, live + "-lock", fresh} {
		if !slices.Contains(got, kept) {
			t.Errorf("Begin removed tmp/%s; tmp holds %q", kept, got)
		}
	}
	if _, err := tx.WriteDirMeta(&repo.DirMeta{Mode: 0o40755}); err != nil {
		t.Fatal(err)
	}
	// fsck while our transaction lives: it keeps ours and the live one,
	// removes a dead one and says so.
	makeStaging(t, r, deadHere, true)
	res, err := r.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Cleaned, []string{deadHere}) {
		t.Errorf("fsck cleaned %q, want only %s", res.Cleaned, deadHere)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit after fsck: %v", err)
	}
	got = tmpEntries(t, r)
	if !slices.Contains(got, live) || !slices.Contains(got, live+"-lock") {
		t.Errorf("tmp/%s of a live transaction removed: tmp holds %q", live, got)
	}
}
