package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
)

// Kill injection: strace runs a command and SIGKILLs it on entry to one
// chosen rename or unlink, selected by its path argument (-P) and, when
// several calls name that path, by its occurrence (when=K). The counter of
// when= is kept per thread, so the occurrence is counted only among the
// calls naming the path, and those come from one goroutine at a time here.

// syscallCall is one traced call: its syscall and its last path argument.
type syscallCall struct {
	Syscall string
	Path    string
	Nth     int // 1-based occurrence among the traced calls naming Path
}

func (c syscallCall) String() string { return fmt.Sprintf("%s(%q) #%d", c.Syscall, c.Path, c.Nth) }

var straceLine = regexp.MustCompile(`^(?:\[pid\s+)?\d*\]?\s*(renameat2|renameat|rename|unlinkat|unlink)\((.*)$`)
var straceString = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// needStrace fails the test if strace is missing.
func needStrace(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatalf("strace not found (%v): run `make deps` as root", err)
	}
}

// traceCalls runs the command under strace and returns its calls of the
// syscalls, in order. The command must succeed.
func traceCalls(t *testing.T, syscalls string, name string, args ...string) []syscallCall {
	t.Helper()
	log := filepath.Join(t.TempDir(), "strace.log")
	mustRun(t, "strace", append([]string{"-f", "-qq", "-s", "4096", "-e", "trace=" + syscalls, "-e", "signal=none", "-o", log, name}, args...)...)
	b, err := os.ReadFile(log)
	noErr(t, err)
	var calls []syscallCall
	seen := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		// "NNN syscall(args) = R", possibly "<unfinished ...>": the path
		// arguments are printed on entry.
		if i := strings.IndexByte(line, ' '); i > 0 && strings.Trim(line[:i], "0123456789") == "" {
			line = line[i+1:]
		}
		m := straceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		strs := straceString.FindAllStringSubmatch(m[2], -1)
		if len(strs) == 0 {
			continue
		}
		var paths []string
		for _, s := range strs {
			paths = append(paths, s[1])
		}
		p := paths[len(paths)-1]
		if strings.Contains(p, `\`) {
			t.Fatalf("escaped path in strace output, cannot select it with -P: %s", line)
		}
		named := map[string]bool{}
		for _, q := range paths {
			if !named[q] {
				named[q] = true
				seen[m[1]+"\x00"+q]++
			}
		}
		calls = append(calls, syscallCall{Syscall: m[1], Path: p, Nth: seen[m[1]+"\x00"+p]})
	}
	if len(calls) == 0 {
		t.Fatalf("strace saw no %s calls of %s %q", syscalls, name, args)
	}
	return calls
}

// inRepo moves a call traced in repository from to repository to: refs
// are named by absolute paths, objects relative to objects/.
func (c syscallCall) inRepo(from, to string) syscallCall {
	if rest, ok := strings.CutPrefix(c.Path, from+"/"); ok {
		c.Path = to + "/" + rest
	}
	return c
}

// killAtCall runs the command under strace, which SIGKILLs it on entry
// to the call c. The command must die of SIGKILL.
func killAtCall(t *testing.T, c syscallCall, name string, args ...string) {
	t.Helper()
	injectAt(t, injection{c, false}, name, args...)
}

// injection is a kill point, or with fail an error point: the call fails
// with EIO and the command goes on to its end, as it does on a real I/O
// error (and, for a prune, its other workers finish what they started).
type injection struct {
	call syscallCall
	fail bool
}

func (in injection) String() string {
	if in.fail {
		return "EIO at " + in.call.String()
	}
	return "kill at " + in.call.String()
}

// injectAt runs the command under strace with the injection. A killed
// command must die of SIGKILL, a failed one exit with an error.
func injectAt(t *testing.T, in injection, name string, args ...string) {
	t.Helper()
	c := in.call
	what := "signal=SIGKILL"
	if in.fail {
		what = "error=EIO"
	}
	sargs := []string{"-f", "-qq", "-o", "/dev/null", "-e", "trace=" + c.Syscall, "-P", c.Path,
		"-e", fmt.Sprintf("inject=%s:%s:when=%d", c.Syscall, what, c.Nth), name}
	r := run("strace", append(sargs, args...)...)
	switch {
	case in.fail && r.Code <= 0:
		t.Fatalf("%s: the command did not fail:\n%s", in, r)
	// strace ends as its tracee did: by SIGKILL, which run reports as -1.
	case !in.fail && (r.Code != -1 || !strings.Contains(r.Err.Error(), "killed")):
		t.Fatalf("%s: the command was not killed:\n%s", in, r)
	}
}

// injections are a kill at every call and an EIO at every call on a
// commit object.
func injections(calls []syscallCall) []injection {
	var out []injection
	for _, c := range calls {
		out = append(out, injection{c, false})
	}
	for _, c := range calls {
		if strings.HasSuffix(c.Path, ".commit") {
			out = append(out, injection{c, true})
		}
	}
	return out
}

// fsckAfter checks that both fsck's accept the repository after an
// injection; it reports and returns false if not.
func fsckAfter(t *testing.T, rp string, in fmt.Stringer) bool {
	t.Helper()
	ok := true
	if r := ostreeRun("fsck", "--repo="+rp); r.Code != 0 {
		t.Errorf("ostree fsck after the %s:\n%s", in, r)
		ok = false
	}
	if r := omRun("fsck", "--repo", rp); r.Code != 0 {
		t.Errorf("ostree-mount fsck after the %s:\n%s", in, r)
		ok = false
	}
	return ok
}

// crashImage writes a small three-layer image: each layer has a few files,
// a symlink and directories, and the top one a whiteout. Its manifest
// commit's checksum sorts between those of its layer commits: an import
// that renamed commits in checksum order would put the image before one
// of its layers, and a prune that deleted them in that order would delete
// a layer before the image. A label in the config is varied until it
// does; its fixed creation time makes the commit the same on every
// import.
func crashImage(t *testing.T) string {
	t.Helper()
	layers := [][]byte{
		makeTar(t, dirEnt("etc"), fileEnt("etc/os-release", "base\n"), dirEnt("bin"), fileEnt("bin/sh", "#!/bin/true\n"), linkEnt("bin/ash", "sh")),
		makeTar(t, dirEnt("etc"), fileEnt("etc/hostname", "crash\n"), dirEnt("usr/share"), fileEnt("usr/share/doc", "doc\n")),
		makeTar(t, dirEnt("etc"), fileEnt("etc/.wh.hostname", ""), fileEnt("top", "top\n"), dirEnt("var/lib"), fileEnt("var/lib/state", "s\n")),
	}
	base := t.TempDir()
	for nonce := 0; nonce < 100; nonce++ {
		dir := filepath.Join(base, fmt.Sprintf("img%d", nonce))
		handImage{Layers: layers, Gzip: true, EditConfig: func(c map[string]any) {
			c["created"] = "2020-01-01T00:00:00Z"
			c["config"] = map[string]any{"Labels": map[string]string{"nonce": fmt.Sprint(nonce)}}
		}}.write(t, dir)
		rp := filepath.Join(base, fmt.Sprintf("repo%d", nonce))
		om(t, "init", "--repo", rp)
		img, _ := importImage(t, rp, "--ref", "img", "oci:"+dir)
		below, above := false, false
		for _, rel := range relatedEntries(t, rp, img) {
			below = below || rel[1] < img
			above = above || rel[1] > img
		}
		os.RemoveAll(rp)
		if below && above {
			return "oci:" + dir
		}
	}
	t.Fatalf("no label of 100 puts the image commit between its layer commits")
	return ""
}

// TestImportKillAtEveryRename kills an import at each of its renames (the
// staging renames, every object's rename into objects/, the refs), and
// fails each rename of a commit object with EIO: both fsck's must accept
// what is left, and the import run again must complete.
// Each kill point starts from an empty
// repository.
func TestImportKillAtEveryRename(t *testing.T) {
	needStrace(t)
	src := crashImage(t)
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	om(t, "init", "--repo", probe)
	calls := traceCalls(t, "renameat2,renameat,rename", binary, "import", "--repo", probe, "--ref", "img", src)
	commits := 0
	for _, c := range calls {
		if strings.HasSuffix(c.Path, ".commit") {
			commits++
		}
	}
	if commits < 4 {
		t.Fatalf("the import renamed %d commit objects, want 3 layers and a manifest: %v", commits, calls)
	}
	points := injections(calls)
	t.Logf("%d renames (%d of commits): %d injection points", len(calls), commits, len(points))
	start := time.Now()
	for i, in := range points {
		rp := filepath.Join(dir, fmt.Sprintf("r%d", i))
		om(t, "init", "--repo", rp)
		in.call = in.call.inRepo(probe, rp)
		injectAt(t, in, binary, "import", "--repo", rp, "--ref", "img", src)
		if !fsckAfter(t, rp, in) {
			continue
		}
		if s := stagingDirs(t, rp); len(s) != 0 {
			t.Errorf("after the %s and fsck, staging directories remain: %q", in, s)
		}
		r := omRun("import", "--repo", rp, "--ref", "img", src)
		if r.Code != 0 {
			t.Errorf("import after the %s:\n%s", in, r)
			continue
		}
		if got := strings.TrimSpace(r.Stdout); got != readRefFile(t, rp, "refs/heads/img") || !hex64.MatchString(got) {
			t.Errorf("import after the %s printed %q, and ref img holds %q", in, got, readRefFile(t, rp, "refs/heads/img"))
		}
		fsckAfter(t, rp, in)
		os.RemoveAll(rp)
	}
	t.Logf("%d injection points in %s", len(points), time.Since(start).Round(time.Millisecond))
}

// TestPruneKillAtEveryUnlink kills a prune that deletes a whole image
// (manifest commit, layer commits, trees, files, weak refs) at each of its
// unlinks, and fails each unlink of a commit object with EIO: both fsck's must accept what is left, and the prune run again
// must complete and leave nothing of the image.
func TestPruneKillAtEveryUnlink(t *testing.T) {
	needStrace(t)
	src := crashImage(t)
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template")
	om(t, "init", "--repo", tmpl)
	// A second image that stays, sharing nothing with the first.
	keep := filepath.Join(t.TempDir(), "keep")
	handImage{Layers: [][]byte{makeTar(t, fileEnt("kept", "kept\n"))}, Gzip: true}.write(t, keep)
	om(t, "import", "--repo", tmpl, "--ref", "keep", "oci:"+keep)
	om(t, "import", "--repo", tmpl, "--ref", "img", src)
	om(t, "refs", "--repo", tmpl, "--delete", "img")
	copyRepo := func(to string) {
		mustRun(t, "cp", "-a", tmpl, to)
	}
	probe := filepath.Join(dir, "probe")
	copyRepo(probe)
	calls := traceCalls(t, "unlinkat,unlink", binary, "prune", "--repo", probe)
	after := repoObjects(t, probe)
	commits := 0
	for _, c := range calls {
		if strings.HasSuffix(c.Path, ".commit") {
			commits++
		}
	}
	if commits < 4 {
		t.Fatalf("the prune deleted %d commit objects, want 3 layers and a manifest: %v", commits, calls)
	}
	points := injections(calls)
	t.Logf("%d unlinks (%d of commits): %d injection points", len(calls), commits, len(points))
	start := time.Now()
	for i, in := range points {
		rp := filepath.Join(dir, fmt.Sprintf("r%d", i))
		copyRepo(rp)
		in.call = in.call.inRepo(probe, rp)
		injectAt(t, in, binary, "prune", "--repo", rp)
		if !fsckAfter(t, rp, in) {
			continue
		}
		if r := omRun("prune", "--repo", rp); r.Code != 0 {
			t.Errorf("prune after the %s:\n%s", in, r)
			continue
		}
		fsckAfter(t, rp, in)
		if got := repoObjects(t, rp); len(got) != len(after) {
			t.Errorf("prune after the %s left %d objects, an uninterrupted prune %d", in, len(got), len(after))
		}
		os.RemoveAll(rp)
	}
	t.Logf("%d injection points in %s", len(points), time.Since(start).Round(time.Millisecond))
}

// lockHeld reports whether some process holds a lock on the file.
func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	noErr(t, unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk))
	return lk.Type != unix.F_UNLCK
}

// newStaging returns the staging directories of the repository that are
// not in old.
func newStaging(t *testing.T, rp string, old []string) []string {
	t.Helper()
	var out []string
	for _, d := range stagingDirs(t, rp) {
		if !strings.HasSuffix(d, "-lock") && !slices.Contains(old, d) {
			out = append(out, d)
		}
	}
	return out
}

// TestDeadStagingCleaned: an import killed by SIGKILL leaves its staging
// directory; `ostree-mount fsck` removes it and says so, and so does the
// start of the next transaction (here: an import, and a Begin of the Go
// API). Neither touches the staging directory of a live transaction:
// ostree commit blocked reading its tarball from a FIFO (libostree's
// lock), and a transaction open in this process (ours). Both then
// complete.
func TestDeadStagingCleaned(t *testing.T) {
	needStrace(t)
	src := crashImage(t)
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	om(t, "init", "--repo", probe)
	var first syscallCall
	for _, c := range traceCalls(t, "renameat2,renameat,rename", binary, "import", "--repo", probe, "--ref", "img", src) {
		if strings.HasSuffix(c.Path, ".commit") {
			first = c
			break
		}
	}
	rp := filepath.Join(dir, "repo")
	om(t, "init", "--repo", rp)
	kill := func() string {
		t.Helper()
		before := stagingDirs(t, rp)
		killAtCall(t, first, binary, "import", "--repo", rp, "--ref", "img", src)
		d := newStaging(t, rp, before)
		if len(d) != 1 {
			t.Fatalf("the killed import left staging directories %q, want one", d)
		}
		return d[0]
	}
	dead := kill()

	// libostree's live transaction: ostree commit reads its tar from a FIFO
	// we hold open, so it waits with its staging directory locked. Another
	// boot id keeps it from reusing our dead directory, as it would.
	fifo := filepath.Join(dir, "tar.fifo")
	noErr(t, unix.Mkfifo(fifo, 0o600))
	before := stagingDirs(t, rp)
	ost := exec.Command("ostree", "commit", "--repo="+rp, "-b", "held", "--tree=tar="+fifo)
	ost.Env = append(os.Environ(), "OSTREE_BOOTID=11111111-2222-3333-4444-555555555555")
	var ostOut strings.Builder
	ost.Stdout, ost.Stderr = &ostOut, &ostOut
	noErr(t, ost.Start())
	ostDone := make(chan error, 1)
	go func() { ostDone <- ost.Wait() }()
	fw, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for ostree's open
	noErr(t, err)
	defer fw.Close()
	var ostStaging string
	for deadline := time.Now().Add(20 * time.Second); ostStaging == ""; {
		if d := newStaging(t, rp, before); len(d) == 1 && lockHeld(t, filepath.Join(rp, "tmp", d[0]+"-lock")) {
			ostStaging = d[0]
			break
		}
		select {
		case err := <-ostDone:
			t.Fatalf("ostree commit ended (%v) before it was seen holding a staging directory:\n%s", err, ostOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ostree commit holds no staging directory after 20 s: tmp has %q", stagingDirs(t, rp))
		}
		time.Sleep(5 * time.Millisecond)
	}

	out := om(t, "fsck", "--repo", rp)
	if !strings.Contains(out, "removed tmp/"+dead) {
		t.Errorf("fsck does not report removing the dead staging directory %s:\n%s", dead, out)
	}
	if s := stagingDirs(t, rp); slices.Contains(s, dead) || !slices.Contains(s, ostStaging) || !slices.Contains(s, ostStaging+"-lock") {
		t.Errorf("after fsck, tmp holds %q: want %s (ostree's, live) without %s (dead)", s, ostStaging, dead)
	}

	// Our live transaction, and a second dead one: Begin removes the dead one.
	dead = kill()
	r, err := repo.Open(rp)
	noErr(t, err)
	defer r.Close()
	before = stagingDirs(t, rp)
	tx, err := r.Begin(context.Background())
	noErr(t, err)
	defer tx.Abort()
	ours := newStaging(t, rp, before)
	if s := stagingDirs(t, rp); slices.Contains(s, dead) || len(ours) != 1 || !slices.Contains(s, ostStaging) {
		t.Fatalf("after Begin, tmp holds %q: want %s (ostree's) and one new of ours, without %s (dead)", s, ostStaging, dead)
	}
	if _, err := tx.WriteDirMeta(&repo.DirMeta{Mode: 0o40755}); err != nil {
		t.Fatal(err)
	}

	// A third dead one goes at the start of the next import.
	dead = kill()
	om(t, "import", "--repo", rp, "--ref", "img", src)
	if s := stagingDirs(t, rp); slices.Contains(s, dead) || !slices.Contains(s, ostStaging) || !slices.Contains(s, ours[0]) {
		t.Errorf("after an import, tmp holds %q: want %s (ostree's) and %s (ours) without %s (dead)", s, ostStaging, ours[0], dead)
	}

	// The live transactions complete.
	noErr(t, tx.Commit())
	// Written by tar(1): ostree 2022.7 made "an empty tree" of
	// makeTar's two entries here.
	held := t.TempDir()
	noErr(t, os.WriteFile(filepath.Join(held, "f"), []byte("held\n"), 0o644))
	tarBuf := []byte(mustRun(t, "tar", "-C", held, "-cf", "-", ".").Stdout)
	_, err = fw.Write(tarBuf)
	noErr(t, err)
	noErr(t, fw.Close())
	select {
	case err := <-ostDone:
		if err != nil {
			t.Fatalf("ostree commit, whose staging directory must have been left alone, failed: %v\n%s", err, ostOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("ostree commit did not end 30 s after its tarball was written")
	}
	fsckBoth(t, rp)
	if s := stagingDirs(t, rp); len(s) != 0 {
		t.Errorf("staging directories left at the end: %q", s)
	}
}
