package tests

// The object store never hands out privilege (issue 11, items 1 and 9): a
// repository holding an untrusted image offers no other user a setuid,
// setgid or capability-carrying object, nor one they can write; the mount
// shows the true modes and honours setuid only with --suid; side-channel
// xattrs mean something only in commits that import made.

import (
	encbin "encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// nobody is the unprivileged user the tests act as.
const nobody = "65534"

// asNobody runs a shell script as uid/gid 65534 without supplementary
// groups.
func asNobody(script string, args ...string) cmdResult {
	return run("setpriv", append([]string{"--reuid=" + nobody, "--regid=" + nobody, "--clear-groups", "--", "sh", "-c", script, "sh"}, args...)...)
}

// openPath makes every directory from dir up to (not including) the
// system's temporary directory searchable by everyone, so that only the
// repository's own permissions keep other users out.
func openPath(t *testing.T, dir string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); d != top && d != "/" && strings.HasPrefix(d, top); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		noErr(t, err)
		noErr(t, os.Chmod(d, st.Mode().Perm()|0o055))
	}
}

// capDACReadSearch is a security.capability value (vfs_cap_data revision
// 2, effective) granting CAP_DAC_READ_SEARCH: read any file.
func capDACReadSearch() string {
	b := make([]byte, 20)
	encbin.LittleEndian.PutUint32(b[0:], 0x02000001)
	encbin.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_DAC_READ_SEARCH)
	return string(b)
}

// privilegeImage writes an image holding a setuid-root copy of id(1), a
// copy carrying a file capability, and a world-writable file.
func privilegeImage(t *testing.T, dir string) string {
	t.Helper()
	id, err := os.ReadFile("/usr/bin/id")
	noErr(t, err)
	layer := makeTar(t,
		dirEnt("bin"),
		tarEntry{Name: "bin/suid-id", Body: string(id), Mode: 0o4755},
		tarEntry{Name: "bin/cap-id", Body: string(id) + "\n", Mode: 0o755, Xattrs: map[string]string{"security.capability": capDACReadSearch()}},
		dirEnt("etc"),
		tarEntry{Name: "etc/world", Body: "tamper with me\n", Mode: 0o666},
	)
	src := filepath.Join(dir, "privimg")
	handImage{Layers: [][]byte{layer}}.write(t, src)
	return "oci:" + src
}

// objectFiles lists the regular files under dir (objects or staging).
func objectFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	noErr(t, err)
	return out
}

func TestObjectStoreHandsOutNoPrivilege(t *testing.T) {
	for _, tc := range []struct{ name, mode, init string }{
		{"bare", "bare", "ostree-mount"},
		{"bare-ostree-init", "bare", "ostree"},
		{"bare-user", "bare-user", "ostree-mount"},
		{"bare-user-ostree-init", "bare-user", "ostree"},
		{"archive", "archive", "ostree-mount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			openPath(t, dir)
			repoPath := filepath.Join(dir, "repo")
			if tc.init == "ostree" {
				ostreeCmd(t, "init", "--repo="+repoPath, "--mode="+tc.mode)
			} else {
				om(t, "init", "--repo", repoPath, "--mode", tc.mode)
			}
			importImage(t, repoPath, "--ref", "priv", privilegeImage(t, dir))
			fsckBoth(t, repoPath)
			if r := asNobody(`cat "$1/config" >/dev/null`, repoPath); r.Code != 0 {
				t.Fatalf("control: uid %s cannot read the repository's config, so the test proves nothing:\n%s", nobody, r)
			}
			objs := objectFiles(t, filepath.Join(repoPath, "objects"))
			// What nobody can do with each object.
			script := `for p; do
				if [ -e "$p" ]; then echo "reach $p"; fi
				if [ -w "$p" ]; then echo "write $p"; fi
				if [ -u "$p" ] || [ -g "$p" ] || [ -k "$p" ]; then echo "setid $p"; fi
				if [ -x "$p" ] && [ -f "$p" ]; then out=$("$p" -u 2>/dev/null) && echo "ran $p euid=$out"; fi
			done; true`
			r := asNobody(script, objs...)
			if r.Code != 0 {
				t.Fatalf("probe as %s:\n%s", nobody, r)
			}
			var setid, caps []string
			for _, p := range objs {
				st, err := os.Lstat(p)
				noErr(t, err)
				if st.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
					setid = append(setid, p)
				}
				if tc.mode != "bare" && st.Mode()&0o022 != 0 {
					t.Errorf("%s object %s is %v: writable by group or others", tc.mode, p, st.Mode())
				}
				if _, err := unix.Lgetxattr(p, "security.capability", make([]byte, 64)); err == nil {
					caps = append(caps, p)
				}
			}
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				switch {
				case line == "":
				case strings.HasPrefix(line, "reach "):
					if tc.mode == "bare" {
						t.Errorf("uid %s reaches a bare object: %s", nobody, line)
					}
				case strings.HasPrefix(line, "ran "):
					if tc.mode == "bare" || strings.HasSuffix(line, "euid=0") {
						t.Errorf("uid %s ran an object: %s", nobody, line)
					}
				default:
					t.Errorf("uid %s: %s", nobody, line)
				}
			}
			if tc.mode == "bare" {
				// The danger is real (bare keeps true metadata), and only
				// reachability keeps it from others.
				if len(setid) == 0 || len(caps) == 0 {
					t.Errorf("bare objects: setuid %v, capability %v: expected the image's own metadata", setid, caps)
				}
				for _, d := range []string{"objects", "tmp"} {
					st, err := os.Stat(filepath.Join(repoPath, d))
					noErr(t, err)
					if st.Mode().Perm() != 0o700 {
						t.Errorf("%s is %04o, want 0700", d, st.Mode().Perm())
					}
				}
				if r := asNobody(`ls "$1/tmp"`, repoPath); r.Code == 0 {
					t.Errorf("uid %s lists tmp/ of a bare repository:\n%s", nobody, r)
				}
				// Real ostree keeps working in a repository made private.
				tree := filepath.Join(dir, "tree")
				noErr(t, os.MkdirAll(tree, 0o755))
				noErr(t, os.WriteFile(filepath.Join(tree, "f"), []byte("f\n"), 0o644))
				ostreeCmd(t, "commit", "--repo="+repoPath, "-b", "plain", tree)
				ostreeCmd(t, "checkout", "--repo="+repoPath, "plain", filepath.Join(dir, "co"))
				ostreeCmd(t, "checkout", "--repo="+repoPath, "priv", filepath.Join(dir, "co-priv"))
				fsckBoth(t, repoPath)
			} else if len(setid) > 0 || len(caps) > 0 {
				t.Errorf("%s objects: setuid/setgid %v, security.capability %v: want none", tc.mode, setid, caps)
			}
			if r := omRun("fsck", "--repo", repoPath); r.Code != 0 || strings.Contains(r.Stderr, "warning:") {
				t.Errorf("fsck of a repository that keeps the rule:\n%s", r)
			}
			if tc.mode == "archive" {
				return
			}

			// The mount shows the true mode; setuid works only with --suid.
			mnt := mountRev(t, repoPath, "priv", "--allow-other")
			suid := filepath.Join(mnt, "bin", "suid-id")
			r = asNobody(`stat -c %a "$1" && "$1" -u`, suid)
			if r.Code != 0 || r.Stdout != "4755\n"+nobody+"\n" {
				t.Errorf("nosuid mount, as %s: stat and run %s: want 4755 and euid %s:\n%s", nobody, suid, nobody, r)
			}
			if r := asNobody(`printf x >> "$1"`, filepath.Join(mnt, "etc", "world")); r.Code == 0 {
				t.Errorf("uid %s wrote to the mount's etc/world", nobody)
			}
			unmount(t, mnt)
			mnt = mountRev(t, repoPath, "priv", "--allow-other", "--suid")
			r = asNobody(`"$1" -u`, filepath.Join(mnt, "bin", "suid-id"))
			if r.Code != 0 || r.Stdout != "0\n" {
				t.Errorf("--suid mount, as %s: the setuid-root id gives %q, want euid 0:\n%s", nobody, r.Stdout, r)
			}
			unmount(t, mnt)
		})
	}
}

// A bare repository made by `ostree init` and filled by `ostree commit`
// exposes its objects; fsck names them, and the next write transaction
// closes the store.
func TestFsckWarnsOfExposedObjects(t *testing.T) {
	dir := t.TempDir()
	repoPath := filepath.Join(dir, "repo")
	ostreeCmd(t, "init", "--repo="+repoPath, "--mode=bare")
	tree := filepath.Join(dir, "tree")
	noErr(t, os.MkdirAll(tree, 0o755))
	id, err := os.ReadFile("/usr/bin/id")
	noErr(t, err)
	noErr(t, os.WriteFile(filepath.Join(tree, "suid"), id, 0o755))
	noErr(t, os.Chmod(filepath.Join(tree, "suid"), os.ModeSetuid|0o755))
	noErr(t, os.WriteFile(filepath.Join(tree, "world"), []byte("w\n"), 0o644))
	noErr(t, os.Chmod(filepath.Join(tree, "world"), 0o666))
	noErr(t, os.WriteFile(filepath.Join(tree, "plain"), []byte("p\n"), 0o644))
	ostreeCmd(t, "commit", "--repo="+repoPath, "-b", "x", tree)
	ls := strings.Fields(ostreeCmd(t, "ls", "--repo="+repoPath, "-C", "x", "/suid"))
	if len(ls) < 6 {
		t.Fatalf("ostree ls -C: %q", ls)
	}
	suidObj := "objects/" + objName(ls[4], "file")
	r := omRun("fsck", "--repo", repoPath)
	if r.Code != 0 {
		t.Fatalf("fsck failed; exposure must only warn:\n%s", r)
	}
	for _, want := range []string{
		"warning: objects: mode 0755",
		"warning: tmp: mode 0755",
		"warning: " + suidObj + ": mode 4755, uid 0: setuid",
		"world-writable",
		"chmod 0700 " + filepath.Join(repoPath, "objects") + " " + filepath.Join(repoPath, "tmp"),
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("fsck stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	if n := strings.Count(r.Stderr, ".file: mode"); n != 2 {
		t.Errorf("fsck named %d objects, want 2 (the setuid and the world-writable file):\n%s", n, r.Stderr)
	}
	// Any write transaction makes the store private.
	om(t, "commit", "--repo", repoPath, "-b", "y", tree)
	r = omRun("fsck", "--repo", repoPath)
	if r.Code != 0 || strings.Contains(r.Stderr, "warning:") {
		t.Errorf("fsck after a transaction:\n%s", r)
	}
	ostreeCmd(t, "fsck", "--repo="+repoPath)
}

// A user's file with ostree-mount's side-channel xattr is never a device.
func TestSideChannelXattrsOnlyFromImport(t *testing.T) {
	dir := t.TempDir()
	repoPath := initImageRepo(t, dir, "repo", "bare-user")
	tree := filepath.Join(dir, "tree")
	noErr(t, os.MkdirAll(filepath.Join(tree, "sub"), 0o755))
	mem := filepath.Join(tree, "sub", "mem")
	noErr(t, os.WriteFile(mem, []byte("not a device\n"), 0o666))
	noErr(t, os.Chmod(mem, 0o666))
	mustRun(t, "setfattr", "-n", "user.ostree-mount.special", "-v", "c 1:1", mem)
	mustRun(t, "setfattr", "-n", "user.ostree-mount.implicit", "-v", "w", filepath.Join(tree, "sub"))

	// A commit real ostree made of the same tree mounts as plain files.
	ostreeCmd(t, "commit", "--repo="+repoPath, "-b", "theirs", tree)
	mnt := mountRev(t, repoPath, "theirs")
	got := mustRun(t, "stat", "-c", "%F %a %s", filepath.Join(mnt, "sub", "mem")).Stdout
	if got != "regular file 666 13\n" {
		t.Errorf("stat of sub/mem in the mount of an ostree commit: %q, want \"regular file 666 13\"", got)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "sub", "mem")); err != nil || string(b) != "not a device\n" {
		t.Errorf("read sub/mem: %q, %v", b, err)
	}
	// The xattrs are the user's data there, shown as they are.
	if v, err := exec.Command("getfattr", "--only-values", "-n", "user.ostree-mount.special", filepath.Join(mnt, "sub", "mem")).Output(); err != nil || string(v) != "c 1:1" {
		t.Errorf("the user's xattr through the mount: %q, %v", v, err)
	}
	unmount(t, mnt)
	// Checked out as root, it stays a regular file.
	co := filepath.Join(dir, "co")
	om(t, "checkout", "--repo", repoPath, "theirs", co)
	if st, err := os.Lstat(filepath.Join(co, "sub", "mem")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("checkout of sub/mem: %v, %v; want a regular file", st, err)
	}
	// ostree-mount commit refuses them, naming the file.
	r := omFail(t, "commit", "--repo", repoPath, "-b", "mine", tree)
	if !strings.Contains(r.Stderr, "user.ostree-mount.") || !strings.Contains(r.Stderr, filepath.Join(tree, "sub")) {
		t.Errorf("commit refusal does not name the xattr and the file:\n%s", r)
	}
	if refs := strongRefs(t, repoPath); len(refs) != 1 {
		t.Errorf("a refused commit left refs: %v, want only theirs", refs)
	}
	// ... and the metadata keys that mark import's commits.
	clean := filepath.Join(dir, "clean")
	noErr(t, os.MkdirAll(clean, 0o755))
	for _, flag := range []string{"--add-metadata-string=ostree-mount.mode=squashed", "--add-metadata=ostree-mount.has-xattrs=true"} {
		if r := omFail(t, "commit", "--repo", repoPath, "-b", "marked", flag, clean); !strings.Contains(r.Stderr, "ostree-mount.") {
			t.Errorf("commit %s: refusal does not name the key:\n%s", flag, r)
		}
	}

	// With --no-xattrs there is nothing to refuse.
	om(t, "commit", "--repo", repoPath, "-b", "mine", "--no-xattrs", tree)
}
