package tests

// Hostile images (oci-layers.md §3): hand-made layer tars and image
// metadata. For every case, nothing outside the repository changes (a
// canary directory next to the repository, the host paths the attack
// names, the importer's working directory), and a refused import leaves
// the repository exactly as it was: no new ref, commit or object, no
// staging directory. Accepted cases are checked in the checkout.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	encbin "encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// attackEnv is a repository with its surroundings.
type attackEnv struct {
	dir    string // holds repo, canary and cwd
	repo   string
	cwd    string // the importer's working directory, dir/cwd/a/b
	victim string // a host directory the attacks name: /tmp/om-victim-*
	vrel   string // victim without its leading '/', as it lands in an image
	coDir  string // checkouts go here, outside dir
}

// hostFiles are host files attacks name, compared before and after.
var hostFiles = []string{"/etc/passwd", "/etc/shadow"}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	a := &attackEnv{dir: t.TempDir(), coDir: t.TempDir()}
	a.repo = initImageRepo(t, a.dir, "repo", "bare-user")
	a.cwd = filepath.Join(a.dir, "cwd", "a", "b")
	noErr(t, os.MkdirAll(a.cwd, 0o755))
	canary := filepath.Join(a.dir, "canary")
	noErr(t, os.MkdirAll(filepath.Join(canary, "sub"), 0o755))
	noErr(t, os.WriteFile(filepath.Join(canary, "precious"), []byte("canary\n"), 0o644))
	noErr(t, os.WriteFile(filepath.Join(canary, "sub", "x"), []byte("x\n"), 0o600))
	noErr(t, os.Symlink("../precious", filepath.Join(canary, "sub", "link")))
	v, err := os.MkdirTemp("/tmp", "om-victim-")
	noErr(t, err)
	t.Cleanup(func() { os.RemoveAll(v) })
	a.victim, a.vrel = v, strings.TrimPrefix(v, "/")
	noErr(t, os.WriteFile(filepath.Join(v, "host-victim"), []byte("host file\n"), 0o600))
	noErr(t, os.WriteFile(filepath.Join(v, "passwd"), []byte("host passwd\n"), 0o644))
	noErr(t, os.MkdirAll(filepath.Join(v, "dir"), 0o755))
	noErr(t, os.WriteFile(filepath.Join(v, "dir", "f"), []byte("host dir file\n"), 0o644))
	// A first image, so that the repository has refs, commits and
	// objects that a failed import must leave alone.
	src := filepath.Join(a.dir, "src", "base")
	handImage{Layers: [][]byte{makeTar(t, dirEnt("etc"), fileEnt("etc/os-release", "base\n"))}, Gzip: true}.write(t, src)
	importImage(t, a.repo, "--ref", "base", "oci:"+src)
	return a
}

// outside dumps everything outside the repository's objects, refs and
// tmp: the environment's directory (canary, cwd, the repository's other
// files), the victim directory (with mtimes and hardlinks) and the host
// files.
func (a *attackEnv) outside(t *testing.T) []string {
	t.Helper()
	// The repository's objects, refs and tmp are what imports change;
	// they are checked by state. Its other files (config, .lock, state,
	// and anything a traversal would drop there) must not change.
	opts := treecmp.Options{MTime: true, Hardlinks: true, Rewrite: func(e *treecmp.Entry) bool {
		for _, p := range []string{"repo/objects", "repo/refs", "repo/tmp", "src"} {
			if e.Path == p || strings.HasPrefix(e.Path, p+"/") {
				return false
			}
		}
		if e.Path == "repo" {
			e.HasMTime = false // a finished transaction touches it, as libostree does
		}
		return true
	}}
	lines := dumpTree(t, a.dir, opts)
	for _, l := range dumpTree(t, a.victim, treecmp.Options{MTime: true, Hardlinks: true}) {
		lines = append(lines, "victim:"+l)
	}
	for _, f := range hostFiles {
		if _, err := os.Lstat(f); err != nil {
			continue
		}
		// No mtime: the host may legitimately touch its own files.
		for _, l := range dumpTree(t, f, treecmp.Options{}) {
			lines = append(lines, f+":"+l)
		}
	}
	return lines
}

// repoState is what a refused import must not change.
type repoState struct {
	objects map[string]objStat
	strong  []string
	weak    []string
	tmp     []string
}

func (a *attackEnv) state(t *testing.T) repoState {
	t.Helper()
	var tmp []string
	entries, err := os.ReadDir(filepath.Join(a.repo, "tmp"))
	noErr(t, err)
	for _, e := range entries {
		tmp = append(tmp, e.Name())
	}
	return repoState{repoObjects(t, a.repo), strongRefs(t, a.repo), weakRefs(t, a.repo), tmp}
}

// importIn runs ostree-mount import from the environment's cwd.
func (a *attackEnv) importIn(args ...string) cmdResult {
	args = append([]string{"import", "--repo", a.repo}, args...)
	cmd := exec.Command(binary, args...)
	cmd.Dir = a.cwd
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cmdResult{Args: append([]string{binary}, args...), Err: err, Dur: time.Since(start), Code: -1, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.Code = 0
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	}
	return r
}

// attackCase is one hostile image.
type attackCase struct {
	name string
	// build writes the image under dir and returns the import source.
	build func(t *testing.T, a *attackEnv, dir string) string
	args  []string // extra import flags
	// fail, if set, is a regexp the error must match: the import must
	// be refused. Otherwise it must succeed and verify inspects the
	// checkout (entries by path).
	fail   string
	verify func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry)
}

// oneImage builds a gzipped OCI layout from layer tars.
func oneImage(layers ...func(a *attackEnv) []tarEntry) func(t *testing.T, a *attackEnv, dir string) string {
	return func(t *testing.T, a *attackEnv, dir string) string {
		var tars [][]byte
		for _, l := range layers {
			tars = append(tars, makeTar(t, l(a)...))
		}
		handImage{Layers: tars, Gzip: true}.write(t, dir)
		return "oci:" + dir
	}
}

func ents(e ...tarEntry) func(*attackEnv) []tarEntry {
	return func(*attackEnv) []tarEntry { return e }
}

// want* check one checkout entry.
func wantFile(t *testing.T, co map[string]treecmp.Entry, p, body string) {
	t.Helper()
	e, ok := co[p]
	if !ok || e.Type != 'f' || e.SHA256 != sha256Hex([]byte(body)) {
		t.Errorf("checkout: %s should be a file holding %q; got %+v (present %v)", p, body, e, ok)
	}
}

func wantLink(t *testing.T, co map[string]treecmp.Entry, p, target string) {
	t.Helper()
	if e, ok := co[p]; !ok || e.Type != 'l' || e.Target != target {
		t.Errorf("checkout: %s should be a symlink to %q; got %+v (present %v)", p, target, e, ok)
	}
}

func wantAbsent(t *testing.T, co map[string]treecmp.Entry, p string) {
	t.Helper()
	if e, ok := co[p]; ok {
		t.Errorf("checkout: %s should not exist; got %+v", p, e)
	}
}

func sha256Hex(b []byte) string { return strings.TrimPrefix(sha256Digest(b), "sha256:") }

// gzipBomb returns a gzip stream of a tar holding one file of size
// zero bytes (size a multiple of 1 MiB), built without compressing it all: at
// level 6 every sync-flushed MiB of zeros after the first compresses to
// the same bytes, which are repeated; the trailer's CRC and size are
// those of the whole stream, so it is a valid gzip of ~1 KB per MiB.
func gzipBomb(t *testing.T, size int64) []byte {
	t.Helper()
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	// WriteHeader writes the header block at once; the data follows.
	noErr(t, tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}))
	head := hdr.Bytes()
	const mib = 1 << 20
	chunk := make([]byte, mib)
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, 6)
	noErr(t, err)
	_, err = zw.Write(head)
	noErr(t, err)
	var marks []int
	for range 3 {
		_, err = zw.Write(chunk)
		noErr(t, err)
		noErr(t, zw.Flush())
		marks = append(marks, out.Len())
	}
	b := out.Bytes()
	rep := slices.Clone(b[marks[1]:marks[2]])
	if !bytes.Equal(b[marks[0]:marks[1]], rep) {
		t.Fatalf("gzip bomb: flushed MiBs of zeros do not compress identically")
	}
	res := slices.Clone(b)
	for i := int64(3); i < size/mib; i++ {
		res = append(res, rep...)
	}
	res = append(res, 0x03, 0x00) // final empty fixed-Huffman block
	crc := crc32.Update(0, crc32.IEEETable, head)
	for i := int64(0); i < size/mib; i++ {
		crc = crc32.Update(crc, crc32.IEEETable, chunk)
	}
	res = encbin.LittleEndian.AppendUint32(res, crc)
	res = encbin.LittleEndian.AppendUint32(res, uint32(int64(len(head))+size))
	return res
}

func attackCases() []attackCase {
	lots := func(n int) []tarEntry {
		var e []tarEntry
		for i := range n {
			e = append(e, fileEnt(fmt.Sprintf("f%04d", i), ""))
		}
		return e
	}
	return []attackCase{
		// 1. traversal
		{name: "dotdot", build: oneImage(ents(fileEnt("../../x", "escaped"))), fail: `\.\.`},
		{name: "dotdot-inner", build: oneImage(ents(dirEnt("a"), fileEnt("a/../../x", "escaped"))), fail: `\.\.`},
		{name: "dotdot-symlink-name", build: oneImage(ents(linkEnt("../../lnk", "/"))), fail: `\.\.`},
		// 2. absolute path: made relative
		{name: "absolute", build: oneImage(func(a *attackEnv) []tarEntry {
			return []tarEntry{fileEnt(a.victim+"/abs", "abs in image"), fileEnt("/etc/passwd", "image passwd")}
		}), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantFile(t, co, a.vrel+"/abs", "abs in image")
			wantFile(t, co, "etc/passwd", "image passwd")
		}},
		// 3. symlink in path, same layer and across layers
		{name: "symlink-abs-same-layer", build: oneImage(func(a *attackEnv) []tarEntry {
			return []tarEntry{linkEnt("l", a.victim), fileEnt("l/passwd", "evil"), linkEnt("e", "/etc"), fileEnt("e/passwd", "evil etc")}
		}), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantLink(t, co, "l", a.victim)
			wantFile(t, co, a.vrel+"/passwd", "evil")
			wantLink(t, co, "e", "/etc")
			wantFile(t, co, "etc/passwd", "evil etc")
		}},
		{name: "symlink-abs-across-layers", build: oneImage(
			func(a *attackEnv) []tarEntry { return []tarEntry{linkEnt("l", "/etc"), linkEnt("v", a.victim+"/dir")} },
			ents(fileEnt("l/passwd", "evil"), fileEnt("v/f", "evil f"), dirEnt("v/sub"), fileEnt("v/sub/g", "g")),
		), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantLink(t, co, "l", "/etc")
			wantFile(t, co, "etc/passwd", "evil")
			wantFile(t, co, a.vrel+"/dir/f", "evil f")
			wantFile(t, co, a.vrel+"/dir/sub/g", "g")
		}},
		{name: "symlink-dotdot", build: oneImage(
			ents(dirEnt("d"), linkEnt("d/l", "../../../../.."), fileEnt("d/l/x", "clamped")),
			ents(linkEnt("up", "../../.."), fileEnt("up/y", "clamped too"), fileEnt("d/l/etc/z", "z")),
		), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantLink(t, co, "d/l", "../../../../..")
			wantFile(t, co, "x", "clamped")
			wantFile(t, co, "y", "clamped too")
			wantFile(t, co, "etc/z", "z")
		}},
		// 4. hardlinks out of the root
		{name: "hardlink-host-shadow", build: oneImage(ents(hardEnt("h", "/etc/shadow"))), fail: `does not exist`},
		{name: "hardlink-dotdot-shadow", build: oneImage(ents(hardEnt("h", "../../../../etc/shadow"))), fail: `\.\.`},
		{name: "hardlink-image-shadow", build: oneImage(
			ents(dirEnt("etc"), fileEnt("etc/shadow", "image shadow")),
			ents(hardEnt("h", "/etc/shadow"), hardEnt("h2", "etc/shadow")),
		), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantFile(t, co, "h", "image shadow")
			wantFile(t, co, "h2", "image shadow")
		}},
		// 5. hardlink to a symlink, with a chmod
		{name: "hardlink-to-symlink", build: oneImage(func(a *attackEnv) []tarEntry {
			return []tarEntry{linkEnt("s", a.victim+"/host-victim"), {Name: "h", Type: tar.TypeLink, Link: "s", Mode: 0o777}}
		}), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantLink(t, co, "s", a.victim+"/host-victim")
			wantLink(t, co, "h", a.victim+"/host-victim")
		}},
		// 6. root replaced by a symlink
		{name: "root-symlink", build: oneImage(func(a *attackEnv) []tarEntry {
			return []tarEntry{linkEnt(".", a.victim), fileEnt("host-victim", "overwritten")}
		}), fail: `root`},
		{name: "root-symlink-dotslash", build: oneImage(func(a *attackEnv) []tarEntry {
			return []tarEntry{linkEnt("./", a.victim), fileEnt("passwd", "overwritten")}
		}), fail: `root`},
		// 7. whiteout tricks
		{name: "whiteout-empty", build: oneImage(ents(dirEnt("x"), fileEnt("x/f", ""), fileEnt(".wh.", ""))), fail: `whiteout`},
		{name: "whiteout-dot", build: oneImage(ents(dirEnt("x"), fileEnt("x/f", "")), ents(fileEnt("x/.wh..", ""))), fail: `whiteout`},
		{name: "whiteout-dotdot", build: oneImage(ents(dirEnt("x"), dirEnt("x/y"), fileEnt("x/y/f", "")), ents(fileEnt("x/y/.wh...", ""))), fail: `whiteout`},
		{name: "whiteout-through-symlink", build: oneImage(
			func(a *attackEnv) []tarEntry {
				return []tarEntry{linkEnt("l", a.victim), fileEnt(a.vrel+"/host-victim", "image copy"), fileEnt(a.vrel+"/keep", "kept")}
			},
			ents(fileEnt("l/.wh.host-victim", "")),
		), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantAbsent(t, co, a.vrel+"/host-victim")
			wantFile(t, co, a.vrel+"/keep", "kept")
		}},
		{name: "opaque-through-symlink", build: oneImage(
			func(a *attackEnv) []tarEntry {
				return []tarEntry{linkEnt("l", a.victim), fileEnt(a.vrel+"/host-victim", "image copy"), fileEnt("other", "o")}
			},
			ents(fileEnt("l/.wh..wh..opq", "")),
		), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantAbsent(t, co, a.vrel+"/host-victim")
			if e, ok := co[a.vrel]; !ok || e.Type != 'd' {
				t.Errorf("checkout: %s should be an (emptied) directory; got %+v", a.vrel, e)
			}
			wantFile(t, co, "other", "o")
		}},
		{name: "whiteout-host-path", build: oneImage(
			ents(fileEnt("keep", "k")),
			func(a *attackEnv) []tarEntry {
				return []tarEntry{fileEnt(a.victim+"/.wh.host-victim", ""), fileEnt(a.victim+"/dir/.wh..wh..opq", "")}
			},
		), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantFile(t, co, "keep", "k")
			// A whiteout below a missing directory is a no-op that makes
			// no directory (oci-layers.md §2, "nodir/.wh.x").
			wantAbsent(t, co, strings.Split(a.vrel, "/")[0])
		}},
		{name: "root-opaque", build: oneImage(
			ents(dirEnt("a"), fileEnt("a/f", "lower"), fileEnt("b", "lower")),
			ents(fileEnt(".wh..wh..opq", ""), fileEnt("c", "upper")),
		), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantFile(t, co, "c", "upper")
			wantAbsent(t, co, "a")
			wantAbsent(t, co, "b")
			if len(co) != 2 {
				t.Errorf("checkout after a root opaque whiteout should hold only / and c: %v", sortedKeys(co))
			}
		}},
		// 8, 9. devices, setuid and file capabilities are data
		{name: "devices-setuid", build: oneImage(ents(
			dirEnt("dev"),
			tarEntry{Name: "dev/sda", Type: tar.TypeBlock, Major: 8, Minor: 0, Mode: 0o660, GID: 6},
			tarEntry{Name: "dev/mem", Type: tar.TypeChar, Major: 1, Minor: 1, Mode: 0o640, GID: 15},
			tarEntry{Name: "dev/wh", Type: tar.TypeChar, Major: 0, Minor: 0, Mode: 0o600},
			tarEntry{Name: "dev/big", Type: tar.TypeChar, Major: 300, Minor: 70000, Mode: 0o600},
			tarEntry{Name: "fifo", Type: tar.TypeFifo, Mode: 0o644},
			tarEntry{Name: "su", Body: "#!/bin/sh\n", Mode: 0o4755},
			tarEntry{Name: "sg", Body: "sg\n", Mode: 0o2711, UID: 70000, GID: 70001},
			tarEntry{Name: "cap", Body: "cap\n", Mode: 0o755, Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
		)), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			for _, w := range []struct {
				p            string
				typ          byte
				perm         uint32
				gid          uint32
				major, minor uint32
			}{{"dev/sda", 'b', 0o660, 6, 8, 0}, {"dev/mem", 'c', 0o640, 15, 1, 1}, {"dev/wh", 'c', 0o600, 0, 0, 0}, {"dev/big", 'c', 0o600, 0, 300, 70000}, {"fifo", 'p', 0o644, 0, 0, 0}} {
				e, ok := co[w.p]
				if !ok || e.Type != w.typ || e.Perm != w.perm || e.GID != w.gid || e.Major != w.major || e.Minor != w.minor || len(e.Xattrs) != 0 {
					t.Errorf("checkout: %s should be %c %d:%d mode %04o gid %d without xattrs; got %+v", w.p, w.typ, w.major, w.minor, w.perm, w.gid, e)
				}
			}
			if e := co["su"]; e.Perm != 0o4755 {
				t.Errorf("checkout: su mode %04o, want 4755", e.Perm)
			}
			if e := co["sg"]; e.Perm != 0o2711 || e.UID != 70000 || e.GID != 70001 {
				t.Errorf("checkout: sg %04o %d:%d, want 2711 70000:70001", e.Perm, e.UID, e.GID)
			}
			if e := co["cap"]; len(e.Xattrs) != 1 || e.Xattrs[0].Name != "security.capability" {
				t.Errorf("checkout: cap should keep its security.capability; got %+v", e.Xattrs)
			}
		}},
		// 10. xattr injection: side channels and overlayfs xattrs dropped
		{name: "xattr-injection", build: oneImage(
			ents(dirEnt("d"), fileEnt("d/lower", "lower")),
			ents(
				tarEntry{Name: "d", Type: tar.TypeDir, Xattrs: map[string]string{"trusted.overlay.opaque": "y", "user.overlay.opaque": "y"}},
				tarEntry{Name: "fake-dev", Body: "", Xattrs: map[string]string{"user.ostree-mount.special": "c 1 3", "user.keep": "yes"}},
				tarEntry{Name: "fake-implicit", Type: tar.TypeDir, Xattrs: map[string]string{"user.ostree-mount.implicit": "w"}},
				tarEntry{Name: "redir", Body: "r", Xattrs: map[string]string{"trusted.overlay.redirect": "/etc", "trusted.overlay.origin": "x", "security.selinux": "system_u:object_r:shadow_t:s0"}},
			),
		), verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantFile(t, co, "d/lower", "lower")
			if e := co["d"]; e.Type != 'd' || len(e.Xattrs) != 0 {
				t.Errorf("checkout: d should be a directory without xattrs; got %+v", e)
			}
			e := co["fake-dev"]
			if e.Type != 'f' || len(e.Xattrs) != 1 || e.Xattrs[0].Name != "user.keep" {
				t.Errorf("checkout: fake-dev should be a regular file with only user.keep; got %+v", e)
			}
			if e := co["fake-implicit"]; e.Type != 'd' || len(e.Xattrs) != 0 {
				t.Errorf("checkout: fake-implicit should be a plain directory; got %+v", e)
			}
			if e := co["redir"]; e.Type != 'f' || len(e.Xattrs) != 0 {
				t.Errorf("checkout: redir should have no xattrs; got %+v", e)
			}
		}},
		// 11. resource limits
		{name: "gzip-bomb", build: func(t *testing.T, a *attackEnv, dir string) string {
			bomb := gzipBomb(t, 1<<30)
			// The diff_id is not the content's (hashing 1 GiB is slow): the
			// limit must stop the import long before it is checked.
			handImage{Layers: [][]byte{[]byte("placeholder")}, Compressed: map[int][]byte{0: bomb}}.write(t, dir)
			return "oci:" + dir
		}, args: []string{"--max-layer-bytes", "100000000"}, fail: `(?i)limit`},
		{name: "too-many-entries", build: oneImage(ents(lots(300)...)), args: []string{"--max-entries", "100"}, fail: `(?i)limit`},
		{name: "long-path", build: oneImage(ents(fileEnt(strings.Repeat("p", 150)+"/"+strings.Repeat("q", 150), "long"))), args: []string{"--max-path-length", "100"}, fail: `(?i)limit`},
		// A 2 KiB PAX sparse entry of 2 GiB: the limit counts its holes.
		{name: "sparse-bomb", build: func(t *testing.T, a *attackEnv, dir string) string {
			handImage{Layers: [][]byte{ct.SparseTar("bomb", 2<<30, map[int64][]byte{0: []byte("head")})}, Gzip: true}.write(t, dir)
			return "oci:" + dir
		}, args: []string{"--max-layer-bytes", "10000000"}, fail: `(?i)limit`},
		// Ten symlinks to 2000-component paths, each below the previous,
		// and a file through all of them: an 11-component entry that
		// would be stored 20,001 deep.
		{name: "symlink-depth-bomb", build: oneImage(func(*attackEnv) []tarEntry {
			var e []tarEntry
			p, target := "", strings.TrimSuffix(strings.Repeat("d/", 2000), "/")
			for i := range 10 {
				p += fmt.Sprintf("s%d", i)
				e = append(e, linkEnt(p, target))
				p += "/"
			}
			return append(e, fileEnt(p+"f", "deep"))
		}), fail: `(?i)resolves to .*limit of 200 \(--max-depth\)`},
		{name: "symlink-path-length-bomb", build: oneImage(
			ents(linkEnt("l", strings.Repeat(strings.Repeat("n", 200)+"/", 15)), linkEnt("l/m", strings.Repeat(strings.Repeat("n", 200)+"/", 15))),
			ents(fileEnt("l/m/f", "long")),
		), fail: `(?i)resolves to .*limit of 4094 \(--max-path-length\)`},
		{name: "name-max", build: oneImage(ents(dirEnt("d"), fileEnt("d/"+strings.Repeat("n", 256), "x"))), fail: `entry "d/n+": name "n+\.\.\.n+" of 256 bytes is longer than NAME_MAX`},
		// More layers than --max-layers: refused before any layer is read
		// (layer 0's blob is not what the manifest says).
		{name: "too-many-layers", build: func(t *testing.T, a *attackEnv, dir string) string {
			var layers [][]byte
			for i := range 5 {
				layers = append(layers, makeTar(t, fileEnt(fmt.Sprintf("f%d", i), "x")))
			}
			handImage{Layers: layers, Blobs: map[int][]byte{0: []byte("not the layer")}}.write(t, dir)
			return "oci:" + dir
		}, args: []string{"--max-layers", "3"}, fail: `(?i)image has 5 layers, more than the limit of 3 \(--max-layers\)`},
		{name: "max-layers-exact", build: oneImage(ents(fileEnt("a", "1")), ents(fileEnt("b", "2")), ents(fileEnt("c", "3"))),
			args: []string{"--max-layers", "3"}, verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
				wantFile(t, co, "a", "1")
				wantFile(t, co, "c", "3")
			}},
		// 12. malformed tars
		{name: "bad-header-checksum", build: func(t *testing.T, a *attackEnv, dir string) string {
			l := makeTar(t, fileEnt("a", "aaa"), fileEnt("b", "bbb"))
			l[1024+148] ^= 0x01 // checksum field of the second header
			handImage{Layers: [][]byte{l}, Gzip: true}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)invalid layer|header`},
		{name: "size-beyond-eof", build: func(t *testing.T, a *attackEnv, dir string) string {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			noErr(t, tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 20}))
			_, err := tw.Write([]byte("short"))
			noErr(t, err)
			handImage{Layers: [][]byte{buf.Bytes()}, Gzip: true}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)invalid layer|EOF`},
		{name: "not-a-tar", build: func(t *testing.T, a *attackEnv, dir string) string {
			handImage{Layers: [][]byte{noiseBytes(7, 3000)}, Gzip: true}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)invalid layer`},
		{name: "unknown-typeflag", build: func(t *testing.T, a *attackEnv, dir string) string {
			l := makeTar(t, fileEnt("a", "aaa"))
			l[156] = 'Z'
			sum := 0
			copy(l[148:156], "        ")
			for _, c := range l[:512] {
				sum += int(c)
			}
			copy(l[148:156], fmt.Sprintf("%06o\x00 ", sum))
			handImage{Layers: [][]byte{l}, Gzip: true}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)unsupported tar entry type|invalid layer`},
		// 14. hostile metadata
		{name: "index-digest-path", build: func(t *testing.T, a *attackEnv, dir string) string {
			handImage{Layers: [][]byte{makeTar(t, fileEnt("f", "f"))}, EditIndex: func(idx map[string]any) {
				idx["manifests"].([]any)[0].(map[string]any)["digest"] = "sha256:../../../etc/passwd"
			}}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)invalid digest`},
		{name: "layer-digest-path", build: func(t *testing.T, a *attackEnv, dir string) string {
			handImage{Layers: [][]byte{makeTar(t, fileEnt("f", "f"))}, EditManifest: func(m map[string]any) {
				m["layers"].([]any)[0].(map[string]any)["digest"] = "sha256:../../../../../../etc/passwd"
			}}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)invalid digest`},
		{name: "docker-archive-layer-path", build: func(t *testing.T, a *attackEnv, dir string) string {
			noErr(t, os.MkdirAll(dir, 0o755))
			f := filepath.Join(dir, "d.tar")
			dockerArchive(t, f, [][]byte{makeTar(t, fileEnt("f", "f"))}, []string{"../../x"})
			return "docker-archive:" + f
		}, fail: `(?i)\.\.`},
		{name: "docker-archive-control", build: func(t *testing.T, a *attackEnv, dir string) string {
			noErr(t, os.MkdirAll(dir, 0o755))
			f := filepath.Join(dir, "d.tar")
			dockerArchive(t, f, [][]byte{makeTar(t, fileEnt("f", "docker f"))}, nil)
			return "docker-archive:" + f
		}, verify: func(t *testing.T, a *attackEnv, co map[string]treecmp.Entry) {
			wantFile(t, co, "f", "docker f")
		}},
		{name: "blob-digest-mismatch", build: func(t *testing.T, a *attackEnv, dir string) string {
			l := makeTar(t, fileEnt("f", "honest"))
			bad := makeTar(t, fileEnt("f", "forged"))
			handImage{Layers: [][]byte{l}, Blobs: map[int][]byte{0: bad}}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)digest mismatch`},
		{name: "blob-size-mismatch", build: func(t *testing.T, a *attackEnv, dir string) string {
			l := makeTar(t, fileEnt("f", "honest"))
			handImage{Layers: [][]byte{l}, Blobs: map[int][]byte{0: append(slices.Clone(l), make([]byte, 512)...)}}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)size mismatch|digest mismatch`},
		{name: "diff-id-mismatch", build: func(t *testing.T, a *attackEnv, dir string) string {
			l := makeTar(t, fileEnt("f", "content"))
			handImage{Layers: [][]byte{l}, Gzip: true, DiffIDs: []string{sha256Digest([]byte("something else"))}}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)diff_id`},
		{name: "manifest-and-index", build: func(t *testing.T, a *attackEnv, dir string) string {
			handImage{Layers: [][]byte{makeTar(t, fileEnt("f", "f"))}, EditManifest: func(m map[string]any) {
				m["manifests"] = []any{}
			}}.write(t, dir)
			return "oci:" + dir
		}, fail: `(?i)manifests`},
	}
}

// TestImportAttacks imports every hostile image of oci-layers.md §3
// into one repository.
func TestImportAttacks(t *testing.T) {
	a := newAttackEnv(t)
	for _, c := range attackCases() {
		t.Run(c.name, func(t *testing.T) {
			src := c.build(t, a, filepath.Join(a.dir, "src", c.name))
			outside := a.outside(t)
			before := a.state(t)
			ref := "attack/" + c.name
			r := a.importIn(append(append([]string{}, c.args...), "--ref", ref, src)...)
			if c.fail != "" {
				switch {
				case r.Code == 0:
					t.Errorf("hostile image was imported:\n%s", r)
				case r.Code != 1:
					t.Errorf("import exited %d, want 1 (an error, not a crash):\n%s", r.Code, r)
				case !regexp.MustCompile(c.fail).MatchString(r.Stderr):
					t.Errorf("import error does not match %q:\n%s", c.fail, r)
				}
				if strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine ") {
					t.Errorf("import panicked:\n%s", r)
				}
				after := a.state(t)
				if added := addedObjects(before.objects, after.objects); len(added) > 0 {
					t.Errorf("refused import added %d objects (%d commits): %v", len(added), countExt(after.objects, "commit")-countExt(before.objects, "commit"), added)
				}
				for k, st := range before.objects {
					if after.objects[k] != st {
						t.Errorf("refused import changed object %s", k)
					}
				}
				if !slices.Equal(after.strong, before.strong) || !slices.Equal(after.weak, before.weak) {
					t.Errorf("refused import changed refs: strong %v -> %v, weak %v -> %v", before.strong, after.strong, before.weak, after.weak)
				}
				if !slices.Equal(after.tmp, before.tmp) {
					t.Errorf("refused import left files in repo/tmp: %v -> %v", before.tmp, after.tmp)
				}
				for _, n := range after.tmp {
					if strings.HasPrefix(n, "staging-") {
						t.Errorf("refused import left a staging directory: tmp/%s", n)
					}
				}
			} else {
				if r.Code != 0 {
					t.Fatalf("import failed:\n%s", r)
				}
				co := filepath.Join(a.coDir, c.name)
				om(t, "checkout", "--repo", a.repo, ref, co)
				ents, err := treecmp.Walk(co, treecmp.Options{})
				noErr(t, err)
				byPath := map[string]treecmp.Entry{}
				for _, e := range ents {
					byPath[e.Path] = e
				}
				c.verify(t, a, byPath)
			}
			checkTreesEqual(t, "everything outside the repository", outside, a.outside(t))
		})
	}
	fsckBoth(t, a.repo)
}

// TestImportLimitErrorsNameTheLimit: an import refused for a limit says
// which limit and its value, so that the user knows which flag to raise.
func TestImportLimitErrorsNameTheLimit(t *testing.T) {
	a := newAttackEnv(t)
	for _, c := range attackCases() {
		if c.fail != `(?i)limit` {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			src := c.build(t, a, filepath.Join(a.dir, "src", c.name))
			r := a.importIn(append(append([]string{}, c.args...), "--ref", "limit/"+c.name, src)...)
			if r.Code == 0 {
				t.Fatalf("import succeeded:\n%s", r)
			}
			flag, value := c.args[0], c.args[1]
			if !strings.Contains(r.Stderr, value) && !strings.Contains(r.Stderr, strings.TrimPrefix(flag, "--")) {
				t.Errorf("the error names neither the limit's value %s nor its flag %s:\n%s", value, flag, r.Stderr)
			}
		})
	}
}
