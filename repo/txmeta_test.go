package repo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// TestTxReadFileMetaKept: the metadata a bare-user transaction keeps of
// the file objects it wrote is what reading them back gives.
func TestTxReadFileMetaKept(t *testing.T) {
	r := repotest.NewRepo(t, repo.ModeBareUser)
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	metas := []repo.FileMeta{
		{UID: 1000, GID: 100, Mode: repo.ModeRegular | 0o4755, Size: 5,
			Xattrs: []repo.Xattr{{Name: "user.b", Value: []byte("2")}, {Name: "security.capability", Value: []byte{1, 0, 0, 2}}}},
		{Mode: repo.ModeRegular | 0o644},
		{UID: 7, GID: 8, Mode: repo.ModeSymlink | 0o777, Target: "../etc/hostname"},
	}
	for i, m := range metas {
		want := m
		body := strings.Repeat("x", int(m.Size))
		c, err := tx.WriteFile(&m, strings.NewReader(body))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		got, err := tx.ReadFileMeta(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		f, err := tx.OpenFile(c)
		if err != nil {
			t.Fatal(err)
		}
		disk := f.Meta
		f.Close()
		if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", disk) {
			t.Errorf("%d (%+v): kept %+v, read back %+v", i, want, *got, disk)
		}
		got.Xattrs = append(got.Xattrs, repo.Xattr{Name: "user.mutated", Value: []byte("x")})
		again, _ := tx.ReadFileMeta(ctx, c)
		if fmt.Sprintf("%+v", *again) != fmt.Sprintf("%+v", disk) {
			t.Errorf("%d: a caller's change reached the kept metadata: %+v", i, *again)
		}
	}
}
