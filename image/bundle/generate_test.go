package bundle

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/ostree-mount/ostree-mount/compose"
	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/image"
	"github.com/ostree-mount/ostree-mount/image/imagetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// Generate reads /etc/passwd and /etc/group from the composed image, not
// the host's: through symlinks inside the image (relative, absolute and
// one that climbs above the root), across layers, a later layer's file
// replacing a lower one's.
func TestGenerateReadsTheImagesAccounts(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	l1 := ct.Tar(t,
		ct.Dir("etc/"), ct.Dir("usr/"), ct.Dir("usr/lib/"),
		ct.File("usr/lib/passwd", "root:x:0:0:root:/wrong:/bin/sh\n"),
		ct.Symlink("etc/passwd", "../../../../usr/lib/passwd"),
		ct.File("etc/group", "root:x:0:\n"),
	)
	l2 := ct.Tar(t,
		ct.Dir("usr/lib/"),
		ct.File("usr/lib/passwd", "root:x:0:0:root:/image-root-home:/bin/sh\n"),
		ct.File("usr/lib/group", "root:x:0:\nwheel:x:10:root\n"),
		ct.Symlink("etc/group", "/usr/lib/group"),
	)
	res, err := image.Import(context.Background(), r, imagetest.New("img:t", imagetest.Plain(l1), imagetest.Plain(l2)), image.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := compose.Open(r, res.Commit, compose.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	s, err := Generate(context.Background(), tree, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "HOME=/image-root-home"}; !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env %q, want %q (HOME from the image's passwd)", s.Process.Env, want)
	}
	if !reflect.DeepEqual(s.Process.User.AdditionalGids, []uint32{10}) {
		t.Errorf("additional gids %v, want [10] (from the image's group)", s.Process.User.AdditionalGids)
	}

	// A plain commit is no image.
	plain, err := r.Resolve(res.Layers[0].Commit.String())
	if err != nil {
		t.Fatal(err)
	}
	pt, err := compose.Open(r, plain, compose.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	if _, err := Generate(context.Background(), pt, r, Options{}); !errors.Is(err, ErrNotImage) {
		t.Errorf("Generate of a layer commit: %v, want ErrNotImage", err)
	}
}
