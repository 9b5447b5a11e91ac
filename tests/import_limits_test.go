package tests

// Import limits that bound what is stored (issue 11, items 2, 3 and 10):
// sparse entries, deep trees reached through symlinks, and directories
// named as whiteouts, compared with real ostree and umoci.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
)

// TestImportSparse: a 2 KiB sparse entry of 2 GiB is refused under
// --max-layer-bytes 10000000 before it is written; a 64 MiB sparse file
// (hand-made and GNU tar's) imports, reads back with its zeros and takes
// few disk blocks in a bare repository.
func TestImportSparse(t *testing.T) {
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare")

	bomb := ct.SparseTar("bomb", 2<<30, map[int64][]byte{0: []byte("head")})
	if len(bomb) > 4096 {
		t.Fatalf("bomb tar is %d bytes", len(bomb))
	}
	handImage{Layers: [][]byte{bomb}, Gzip: true}.write(t, filepath.Join(dir, "bomb"))
	cmd := exec.Command(binary, "import", "--repo", rp, "--ref", "bomb", "--max-layer-bytes", "10000000", "oci:"+filepath.Join(dir, "bomb"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil || !strings.Contains(stderr.String(), `entry "bomb"`) || !strings.Contains(stderr.String(), "--max-layer-bytes") {
		t.Errorf("sparse bomb: %v, want an error naming the entry and --max-layer-bytes:\n%s", err, stderr.String())
	}
	// ru_oublock counts the bytes the importer dirtied, in 512-byte
	// blocks, whether or not they reached the disk.
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); !ok || ru.Oublock*512 > 4<<20 {
		t.Errorf("sparse bomb: the refused import wrote %d bytes (rusage %v)", ru.Oublock*512, ok)
	}

	const size = 64 << 20
	frags := map[int64][]byte{0: []byte("start"), 20 << 20: bytes.Repeat([]byte("y"), 70000), size - 4: []byte("end\n")}
	want := make([]byte, size)
	for o, b := range frags {
		copy(want[o:], b)
	}
	// GNU tar's own sparse format for a truncated file with the same data.
	src := filepath.Join(dir, "gnu")
	noErr(t, os.MkdirAll(src, 0o755))
	f, err := os.Create(filepath.Join(src, "gnu-sparse"))
	noErr(t, err)
	noErr(t, f.Truncate(size))
	for o, b := range frags {
		_, err := f.WriteAt(b, o)
		noErr(t, err)
	}
	noErr(t, f.Close())
	gnuTar := filepath.Join(dir, "gnu.tar")
	mustRun(t, "tar", "-C", src, "--sparse", "--format=posix", "--owner=0", "--group=0", "-cf", gnuTar, "gnu-sparse")
	gnu, err := os.ReadFile(gnuTar)
	noErr(t, err)
	if len(gnu) > 1<<20 || !bytes.Contains(gnu, []byte("GNU.sparse")) {
		t.Fatalf("GNU tar did not write a sparse entry (%d bytes)", len(gnu))
	}
	handImage{Layers: [][]byte{ct.SparseTar("sparse", size, frags), gnu}, Gzip: true}.write(t, filepath.Join(dir, "ok"))
	importImage(t, rp, "--ref", "sparse", "oci:"+filepath.Join(dir, "ok"))
	co := filepath.Join(dir, "co")
	om(t, "checkout", "--repo", rp, "sparse", co)
	sum := sha256.Sum256(want)
	for _, name := range []string{"sparse", "gnu-sparse"} {
		b, err := os.ReadFile(filepath.Join(co, name))
		noErr(t, err)
		if got := sha256.Sum256(b); len(b) != size || got != sum {
			t.Errorf("checkout: %s is %d bytes, sha256 %x; want %d bytes, %x", name, len(b), got, size, sum)
		}
	}
	// Both files have the same content and metadata: one object.
	objs := 0
	noErr(t, filepath.Walk(filepath.Join(rp, "objects"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !strings.HasSuffix(p, ".file") || fi.Size() != size {
			return err
		}
		objs++
		st := fi.Sys().(*syscall.Stat_t)
		if st.Blocks*512 > 1<<20 {
			t.Errorf("object %s: %d bytes in %d blocks of 512, want under 1 MiB of disk", p, st.Size, st.Blocks)
		}
		return nil
	}))
	if objs != 1 {
		t.Errorf("%d objects of %d bytes, want 1", objs, size)
	}
	fsckBoth(t, rp)
}

// TestImportDeepTreeWithinLimits: a tree at the default limits exactly,
// reached in part through symlinks of a lower layer (200 components, a
// path of 4094 bytes, a name of 255 bytes, a symlink target of 4095),
// imports, and real ostree fsck and checkout pass on it.
func TestImportDeepTreeWithinLimits(t *testing.T) {
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	deep := strings.TrimSuffix(strings.Repeat("d/", 150), "/")
	name255 := strings.Repeat("n", 255)
	long := strings.Repeat(name255+"/", 15)               // 3840 bytes
	long += strings.Repeat("m", 4094-len(long)-len("/f")) // then /f: 4094 bytes
	l1 := makeTar(t, linkEnt("deep", deep), linkEnt("long", long[:8*256]), linkEnt("target", strings.Repeat("t", 4095)))
	var l2 []tarEntry
	p := "deep/" + strings.TrimSuffix(strings.Repeat("e/", 49), "/") // 150 + 49 directories
	l2 = append(l2, fileEnt(p+"/f", "at depth 200"), fileEnt("long/"+long[8*256:]+"/f", "4094 bytes"), fileEnt(strings.Repeat("o", 255), "255"))
	handImage{Layers: [][]byte{l1, makeTar(t, l2...)}, Gzip: true}.write(t, filepath.Join(dir, "img"))
	importImage(t, rp, "--mode", "precomposed", "--ref", "deep", "oci:"+filepath.Join(dir, "img"))
	fsckBoth(t, rp)
	co := filepath.Join(dir, "co")
	ostreeCmd(t, "checkout", "--repo="+rp, "-U", "deep", co)
	want := map[string]string{
		deep + "/" + strings.TrimSuffix(strings.Repeat("e/", 49), "/") + "/f": "at depth 200",
		long + "/f":              "4094 bytes",
		strings.Repeat("o", 255): "255",
	}
	for rel, body := range want {
		if c := strings.Count(rel, "/") + 1; c > 200 || len(rel) > 4094 {
			t.Fatalf("test bug: %d components, %d bytes", c, len(rel))
		}
		// Opened one component at a time: the absolute path is longer
		// than PATH_MAX.
		got := readBelow(t, co, rel)
		if got != body {
			t.Errorf("ostree checkout: %d-byte path holds %q, want %q", len(rel), got, body)
		}
	}
	if tgt, err := os.Readlink(filepath.Join(co, "target")); err != nil || len(tgt) != 4095 {
		t.Errorf("ostree checkout: symlink target %d bytes (%v), want 4095", len(tgt), err)
	}
	// One more component or byte is refused.
	over := makeTar(t, fileEnt(p+"/g/f", "201"))
	handImage{Layers: [][]byte{l1, over}, Gzip: true}.write(t, filepath.Join(dir, "over"))
	if r := omRun("import", "--repo", rp, "--ref", "over", "oci:"+filepath.Join(dir, "over")); r.Code != 1 || !strings.Contains(r.Stderr, "--max-depth") {
		t.Errorf("201 components: want a --max-depth error:\n%s", r)
	}
}

// TestImportWhiteoutDirsLikeUmoci: directories named .wh.foo,
// .wh..wh..opq and .wh..wh.orph (and a .wh..wh.orph holding an entry)
// give the rootfs that umoci unpack gives, in the checkout and the mount.
func TestImportWhiteoutDirsLikeUmoci(t *testing.T) {
	dir := t.TempDir()
	l1 := makeTar(t, dirEnt("foo"), fileEnt("foo/lower", "l"), dirEnt("bar"), fileEnt("bar/lower", "l"),
		dirEnt("orph"), fileEnt("orph/lower", "l"), dirEnt("plnk"), fileEnt("plnk/lower", "l"), fileEnt("keep", "k"), dirEnt("qux"), fileEnt("qux/lower", "l"))
	l2 := makeTar(t,
		tarEntry{Name: ".wh.foo", Type: tar.TypeDir, Mode: 0o700},
		dirEnt("bar/.wh..wh..opq"), fileEnt("bar/new", "n"),
		dirEnt(".wh..wh.orph"),
		dirEnt("plnk/.wh..wh.plnk"), fileEnt("plnk/.wh..wh.plnk/inner", "i"),
		dirEnt("qux/.wh.lower"))
	img := filepath.Join(dir, "img")
	for i, l := range [][]byte{l1, l2} {
		noErr(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("l%d.tar", i)), l, 0o644))
	}
	mustRun(t, "bash", "-e", "-c", `cd "$1" && umoci init --layout img && umoci new --image img:t &&
umoci raw add-layer --image img:t l0.tar && umoci raw add-layer --image img:t l1.tar && umoci unpack --image img:t b`, "-", dir)
	ref := filepath.Join(dir, "b", "rootfs")
	// What umoci made: the whiteouts applied, no directory of their name
	// but the one an entry below made.
	var names []string
	noErr(t, filepath.Walk(ref, func(p string, _ os.FileInfo, err error) error {
		names = append(names, strings.TrimPrefix(p, ref))
		return err
	}))
	if got := strings.Join(names, " "); got != " /bar /bar/new /keep /orph /orph/lower /plnk /plnk/.wh..wh.plnk /plnk/.wh..wh.plnk/inner /plnk/lower /qux" {
		t.Fatalf("umoci unpack gave %s", got)
	}
	rp := initImageRepo(t, dir, "repo", "bare-user")
	importImage(t, rp, "--ref", "wh", "oci:"+img+":t")
	checkoutEquals(t, rp, "wh", ref, dir)
	mnt := mountRev(t, rp, "wh")
	checkTreesEqual(t, "mount vs umoci unpack", dumpTree(t, ref, treecmpPlain), dumpTree(t, mnt, treecmpPlain))
	fsckBoth(t, rp)
}

// readBelow reads root/rel, opening each component of rel with openat.
func readBelow(t *testing.T, root, rel string) string {
	t.Helper()
	fd, err := syscall.Open(root, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	noErr(t, err)
	parts := strings.Split(rel, "/")
	for _, c := range parts[:len(parts)-1] {
		next, err := syscall.Openat(fd, c, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		syscall.Close(fd)
		if err != nil {
			t.Fatalf("%s: component %q: %v", clip(rel, 200), c, err)
		}
		fd = next
	}
	ffd, err := syscall.Openat(fd, parts[len(parts)-1], syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	syscall.Close(fd)
	noErr(t, err)
	f := os.NewFile(uintptr(ffd), rel)
	defer f.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(f)
	noErr(t, err)
	return b.String()
}
