package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/ostree-mount/ostree-mount/compose"
	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// importOne imports one layer tar under lim into a fresh transaction
// of r, on top of the layers of lower (nil: a base layer).
func importOne(t *testing.T, r *repo.Repo, lower []byte, layer []byte, lim Limits) (*LayerResult, error) {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	var below *compose.Tree
	if lower != nil {
		res, err := ImportLayer(ctx, tx, nil, bytes.NewReader(lower), lim)
		if err != nil {
			t.Fatalf("lower layer: %v", err)
		}
		c, err := WriteLayerCommit(context.Background(), tx, res, "lower", repo.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		if below, err = compose.OpenLayers(tx, []repo.Checksum{c}, compose.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return ImportLayer(ctx, tx, below, bytes.NewReader(layer), lim)
}

// TestSparseBombCountsLogicalSize: a sparse entry's holes count against
// MaxBytes, before anything is written, although the tar stream is tiny.
func TestSparseBombCountsLogicalSize(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	bomb := ct.SparseTar("bomb", 64<<20, map[int64][]byte{0: []byte("head")})
	if len(bomb) > 4096 {
		t.Fatalf("the bomb is %d bytes, want a small tar", len(bomb))
	}
	lim := DefaultLimits
	lim.MaxBytes = 10_000_000
	_, err := importOne(t, r, nil, bomb, lim)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), `"bomb"`) || !strings.Contains(err.Error(), "--max-layer-bytes") {
		t.Fatalf("sparse bomb: %v, want a limit error naming the entry and --max-layer-bytes", err)
	}
	// 1 PiB under the default limit: refused as fast.
	pib := ct.SparseTar("pib", 1<<50, map[int64][]byte{1 << 40: []byte("x")})
	if _, err := importOne(t, r, nil, pib, DefaultLimits); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), `"pib"`) {
		t.Fatalf("1 PiB sparse file: %v, want a limit error naming the entry", err)
	}
	// Several files, each under the limit, are summed.
	a := ct.SparseTar("a", 6_000_000, map[int64][]byte{0: []byte("a")})
	two := append(a[:len(a)-1024], ct.SparseTar("b", 6_000_000, map[int64][]byte{0: []byte("b")})...)
	if _, err := importOne(t, r, nil, two, lim); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("two sparse files over the limit together: %v", err)
	}
}

// TestSparseStoredSparsely: under a big enough limit, a sparse file is
// stored with its holes as holes in bare and bare-user repositories, and
// reads back with its zeros.
func TestSparseStoredSparsely(t *testing.T) {
	const size = 64 << 20
	frags := map[int64][]byte{0: []byte("start"), 10 << 20: bytes.Repeat([]byte("x"), 10000), size - 3: []byte("end")}
	want := make([]byte, size)
	for o, b := range frags {
		copy(want[o:], b)
	}
	wantSum := sha256.Sum256(want)
	for _, mode := range []repo.Mode{repo.ModeBare, repo.ModeBareUser} {
		t.Run(mode.String(), func(t *testing.T) {
			r := repotest.NewRepoNoSync(t, mode)
			tree, _, err := importLayers(t, r, ct.SparseTar("sparse", size, frags))
			if err != nil {
				t.Fatal(err)
			}
			e, err := tree.Lookup(context.Background(), "sparse")
			if err != nil {
				t.Fatal(err)
			}
			f, err := r.OpenFile(e.Object)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, f.Reader())
			f.Close()
			if err != nil || n != size || !bytes.Equal(h.Sum(nil), wantSum[:]) {
				t.Fatalf("read back %d bytes (%v), sha256 %x; want %d bytes, %x", n, err, h.Sum(nil), size, wantSum)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(r.ObjectPath(repo.ObjFile, e.Object), &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != size || st.Blocks*512 > 1<<20 {
				t.Errorf("object is %d bytes in %d blocks of 512: want %d bytes in under 1 MiB of disk", st.Size, st.Blocks, size)
			}
		})
	}
}

// TestSparseWriterKeepsData: runs of zeros of every alignment, written
// in pieces of every size, read back as written.
func TestSparseWriterKeepsData(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	data := make([]byte, 5*4096+123)
	for _, o := range []int{0, 4095, 4096 * 2, 4096*3 + 7, len(data) - 1} {
		data[o] = byte(o%250 + 1)
	}
	for _, content := range [][]byte{data, data[:4096], data[1:8193], make([]byte, 3*4096), make([]byte, 4097), nil} {
		sum, err := tx.WriteFile(&repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: int64(len(content))}, io.MultiReader(bytes.NewReader(content[:len(content)/3]), bytes.NewReader(content[len(content)/3:])))
		if err != nil {
			t.Fatal(err)
		}
		f, err := tx.OpenFile(sum)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f.Reader())
		f.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("%d bytes written, %d read back (%v), equal %v", len(content), len(got), err, bytes.Equal(got, content))
		}
	}
}

// deepTarget is a relative path of n components.
func deepTarget(n int) string { return strings.TrimSuffix(strings.Repeat("d/", n), "/") }

// TestResolvedPathLimits: the depth and length limits bound the path
// stored, after symlinks of this layer and of lower ones, not the path
// written in the entry.
func TestResolvedPathLimits(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	// Ten symlinks, each to a 150-component path below the previous:
	// "s0/s1/.../s9/f" is 11 components, stored 1501 deep.
	var chain L
	p := ""
	for i := range 10 {
		p += "s" + string(rune('0'+i))
		chain = append(chain, ct.Symlink(p, deepTarget(150)))
		p += "/"
	}
	chain = append(chain, ct.File(p+"f", "deep"))
	n9 := strings.Repeat(strings.Repeat("n", 250)+"/", 9) // 2259 bytes
	for _, c := range []struct {
		name         string
		lower, layer []byte
		want         string
	}{
		{"symlinks in the layer", nil, ct.Tar(t, chain...), "--max-depth"},
		{"a lower layer's symlink", ct.Tar(t, ct.Symlink("l", deepTarget(DefaultLimits.MaxDepth))), ct.Tar(t, ct.File("l/f", "x")), "--max-depth"},
		{"a lower layer's symlink, whiteout", ct.Tar(t, ct.Symlink("l", deepTarget(DefaultLimits.MaxDepth))), ct.Tar(t, ct.Whiteout("l/f")), "--max-depth"},
		{"a long path through lower symlinks", ct.Tar(t, ct.Symlink("l", n9), ct.Symlink("l/m", n9)), ct.Tar(t, ct.File("l/m/f", "x")), "--max-path-length"},
		{"a long path through absolute symlinks", nil, ct.Tar(t, ct.Symlink("a/l", "/"+n9), ct.Symlink("a/l/m", n9), ct.Dir("a/l/m/d/")), "--max-path-length"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := importOne(t, r, c.lower, c.layer, DefaultLimits)
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "resolves to") {
				t.Fatalf("got %v, want a limit error naming %s and the resolved path", err, c.want)
			}
		})
	}
	// At the limits exactly, through a symlink, is fine.
	lim := DefaultLimits
	deep := ct.Tar(t, ct.Symlink("l", deepTarget(lim.MaxDepth-1)), ct.File("l/f", "x"))
	if _, err := importOne(t, r, nil, deep, lim); err != nil {
		t.Fatalf("a path %d components deep: %v", lim.MaxDepth, err)
	}
	long := strings.Repeat(strings.Repeat("n", 254)+"/", 16)
	long += strings.Repeat("m", lim.MaxPathLen-len(long))
	if _, err := importOne(t, r, ct.Tar(t, ct.Symlink("l", long[:len(long)-10])), ct.Tar(t, ct.File("l/"+long[len(long)-9:], "x")), lim); err != nil {
		t.Fatalf("a path of %d bytes: %v", len(long), err)
	}
}

// TestNameMax: a name longer than NAME_MAX is refused, naming the entry.
func TestNameMax(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	long := strings.Repeat("n", 256)
	for _, l := range [][]byte{
		ct.Tar(t, ct.File("dir/"+long, "x")),
		ct.Tar(t, ct.Dir(long+"/")),
		ct.Tar(t, ct.File("a", "x"), ct.Link("b", long)),
	} {
		_, err := importOne(t, r, nil, l, DefaultLimits)
		if !errors.Is(err, ErrBadLayer) || !strings.Contains(err.Error(), "NAME_MAX") || !strings.Contains(err.Error(), "entry ") {
			t.Errorf("got %v, want an error naming the entry and NAME_MAX", err)
		}
	}
	if _, err := importOne(t, r, nil, ct.Tar(t, ct.Symlink("s", strings.Repeat("t", 4096))), DefaultLimits); !errors.Is(err, ErrBadLayer) || !strings.Contains(err.Error(), "PATH_MAX") {
		t.Errorf("symlink target of 4096 bytes: %v", err)
	}
	if _, err := importOne(t, r, nil, ct.Tar(t, ct.File(strings.Repeat("n", 255), "x"), ct.Symlink("s", strings.Repeat("t", 4095))), DefaultLimits); err != nil {
		t.Errorf("a name of 255 bytes and a target of 4095: %v", err)
	}
}

// TestWhiteoutsAtTheLimits: every stored path can be whited out, and a
// directory at the depth limit made opaque, although the whiteout's own
// name is longer than what it names.
func TestWhiteoutsAtTheLimits(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	name := strings.Repeat("n", 255)
	long := strings.Repeat(name+"/", 15)
	long += strings.Repeat("m", DefaultLimits.MaxPathLen-len(long))
	deep := deepTarget(DefaultLimits.MaxDepth - 1) // deep/f and deep/d: at the limit
	other := strings.Repeat("o", 255)
	tree, _, err := importLayers(t, r,
		ct.Tar(t, ct.File(other, "x"), ct.File(long, "x"), ct.File(deep+"/f", "x"), ct.Dir(deep+"/d/"), ct.File("keep", "k")),
		ct.Tar(t, ct.Whiteout(other), ct.Whiteout(long), ct.Whiteout(deep+"/f"), ct.Opaque(deep+"/d")))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{other, long, deep + "/f"} {
		if _, err := tree.Lookup(context.Background(), p); !errors.Is(err, compose.ErrNotExist) {
			t.Errorf("%d-byte path of %d components is not whited out: %v", len(p), strings.Count(p, "/")+1, err)
		}
	}
	if _, err := tree.Lookup(context.Background(), deep+"/d"); err != nil {
		t.Errorf("the opaque directory: %v", err)
	}
}
