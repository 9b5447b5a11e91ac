package image

import (
	"strings"
	"testing"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// TestWriteErrorNamesEntry: an xattr the object store cannot hold (over
// the kernel's 64 KiB value limit) fails the import with the entry's
// name, for the small files written in the background too.
func TestWriteErrorNamesEntry(t *testing.T) {
	for _, mode := range []repo.Mode{repo.ModeBareUser, repo.ModeBare} {
		r := repotest.NewRepoNoSync(t, mode)
		big := strings.Repeat("v", 70000)
		_, _, err := importLayers(t, r, ct.Tar(t, ct.Dir("d"), ct.File("d/small-file", "x", ct.Xattr("user.big", big))))
		if err == nil {
			t.Fatalf("%s: a 70000-byte xattr value imported", mode)
		}
		if !strings.Contains(err.Error(), "d/small-file") {
			t.Errorf("%s: error does not name the entry: %v", mode, err)
		}
	}
}
