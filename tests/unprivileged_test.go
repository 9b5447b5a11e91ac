package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFSUnitTestsUnprivileged builds fs/'s unit tests, which need no
// kernel mount (they call the node methods over an in-memory store), and
// runs them as nobody (uid and gid 65534, no groups): they must not
// depend on root, /dev/fuse or a repository on disk.
func TestFSUnitTestsUnprivileged(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	dir := t.TempDir()
	// Writable by nobody, for the tests' own t.TempDir.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} { // t.TempDir's are 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "fs.test")
	build := exec.Command(goCmd, "test", "-c", "-o", bin, "./fs")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./fs: %v\n%s", err, out)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fs unit tests as uid 65534: %v\n%s", err, out)
	}
	for _, name := range []string{"TestNodeOperations", "TestErrnoMapping", "TestInodeLimiter", "TestHardlinkGroups"} {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass as uid 65534:\n%s", name, out)
		}
	}
}
