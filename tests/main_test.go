package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

var (
	// binary is the ostree-mount binary TestMain builds.
	binary string
	// moduleRoot is the directory holding go.mod.
	moduleRoot string
	// workDir is TestMain's temporary directory, for fixtures shared by
	// several tests; it is removed at the end.
	workDir string
	// goCmd is the go command.
	goCmd string
)

// traceCommands ($E2E_TRACE non-empty) logs every command with its
// duration to stderr, to find where the time goes.
var traceCommands = os.Getenv("E2E_TRACE") != ""

// requiredTools are the commands the e2e tests run besides ostree-mount.
var requiredTools = []string{"ostree", "setfattr", "getfattr", "cp"}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "e2e tests: "+format+"\n", args...)
		return 1
	}
	if os.Geteuid() != 0 {
		return fail("must run as root (chown, bare repositories, device nodes): sudo make e2e")
	}
	for _, tool := range requiredTools {
		if _, err := exec.LookPath(tool); err != nil {
			return fail("%s not found in PATH (%v): run `make deps` as root to install the test dependencies", tool, err)
		}
	}
	var err error
	if goCmd, err = exec.LookPath("go"); err != nil {
		if gr := os.Getenv("GOROOT"); gr != "" {
			goCmd = filepath.Join(gr, "bin", "go")
		} else {
			return fail("go command not found: %v", err)
		}
	}
	// The recipes of the format document assume umask 022.
	unix.Umask(0o022)

	out, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if gomod := strings.TrimSpace(string(out)); err == nil && gomod != "" && gomod != os.DevNull {
		moduleRoot = filepath.Dir(gomod)
	} else if moduleRoot, err = filepath.Abs(".."); err != nil {
		return fail("cannot find the module root: %v", err)
	}

	if workDir, err = os.MkdirTemp("", "ostree-mount-e2e-"); err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(workDir)
	defer stopServers() // before workDir goes

	// t.TempDir() lives next to workDir: user xattrs must work there.
	probe := filepath.Join(workDir, "xattr-probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		return fail("%v", err)
	}
	if err := unix.Setxattr(probe, "user.probe", []byte("1"), 0); err != nil {
		return fail("the filesystem of %s does not support user xattrs (%v); set TMPDIR to a directory on ext4, xfs or btrfs", os.TempDir(), err)
	}

	binary = filepath.Join(workDir, "ostree-mount")
	// As the Makefile builds it: static, without urfave/cli's docs.
	build := exec.Command(goCmd, "build", "-trimpath", "-tags", "urfave_cli_no_docs", "-o", binary, "./cmd/ostree-mount")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		return fail("go build ./cmd/ostree-mount in %s: %v\n%s", moduleRoot, err, out)
	}
	return m.Run()
}

// cmdResult is the outcome of one command.
type cmdResult struct {
	Args   []string
	Stdout string
	Stderr string
	// Code is the exit status; -1 if the command did not start or was
	// killed by a signal.
	Code int
	Err  error
	Dur  time.Duration
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n/2] + fmt.Sprintf("\n[... %d bytes ...]\n", len(s)-n) + s[len(s)-n/2:]
}

func (r cmdResult) String() string {
	return fmt.Sprintf("command: %s\nexit code: %d (%v), %s\nstdout:\n%s\nstderr:\n%s",
		quoteArgs(r.Args), r.Code, r.Err, r.Dur.Round(time.Millisecond), clip(r.Stdout, 4000), clip(r.Stderr, 4000))
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		a = clip(a, 200)
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$*?") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// run runs a command to completion, capturing its output; it never fails
// the test.
func run(name string, args ...string) cmdResult {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cmdResult{Args: append([]string{name}, args...), Err: err, Dur: time.Since(start), Code: -1}
	r.Stdout, r.Stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.Code = 0
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	}
	if traceCommands {
		fmt.Fprintf(os.Stderr, "e2e: %6dms exit %d: %s\n", r.Dur.Milliseconds(), r.Code, clip(quoteArgs(r.Args), 300))
	}
	return r
}

// mustRun runs a command and fails the test unless it exits 0.
func mustRun(t testing.TB, name string, args ...string) cmdResult {
	t.Helper()
	r := run(name, args...)
	if r.Code != 0 {
		t.Fatalf("command failed:\n%s", r)
	}
	return r
}

// mustFail runs a command and fails the test if it exits 0.
func mustFail(t testing.TB, name string, args ...string) cmdResult {
	t.Helper()
	r := run(name, args...)
	if r.Code == 0 {
		t.Fatalf("command succeeded but must fail:\n%s", r)
	}
	if r.Code < 0 {
		t.Fatalf("command did not exit normally:\n%s", r)
	}
	return r
}

// om runs ostree-mount and returns its stdout; it fails the test unless
// the command exits 0.
func om(t testing.TB, args ...string) string {
	t.Helper()
	return mustRun(t, binary, args...).Stdout
}

// omRun runs ostree-mount without judging the outcome.
func omRun(args ...string) cmdResult { return run(binary, args...) }

// omFail runs ostree-mount and fails the test if it exits 0.
func omFail(t testing.TB, args ...string) cmdResult {
	t.Helper()
	return mustFail(t, binary, args...)
}

// ostreeCmd runs ostree and returns its stdout; it fails the test unless
// the command exits 0.
func ostreeCmd(t testing.TB, args ...string) string {
	t.Helper()
	return mustRun(t, "ostree", args...).Stdout
}

// ostreeRun runs ostree without judging the outcome.
func ostreeRun(args ...string) cmdResult { return run("ostree", args...) }

// dumpTree is treecmp.Dump that fails the test on error.
func dumpTree(t testing.TB, root string, opts treecmp.Options) []string {
	t.Helper()
	lines, err := treecmp.Dump(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// checkTreesEqual fails the test if two dumps differ, showing the diff.
func checkTreesEqual(t testing.TB, what string, want, got []string) {
	t.Helper()
	if d := treecmp.Diff(want, got); d != "" {
		t.Errorf("%s: trees differ (- want, + got):\n%s", what, clip(d, 8000))
	}
}

// goTreeOnce copies the Go distribution once for all tests that use it.
var goTreeOnce struct {
	sync.Once
	dir string
	err error
}

// goTree returns a private copy of the Go distribution (cp -a of
// `go env GOROOT`), shared by the tests; they must not modify it.
func goTree(t testing.TB) string {
	t.Helper()
	goTreeOnce.Do(func() {
		out, err := exec.Command(goCmd, "env", "GOROOT").Output()
		if err != nil {
			goTreeOnce.err = fmt.Errorf("go env GOROOT: %w", err)
			return
		}
		src := strings.TrimSpace(string(out))
		dst := filepath.Join(workDir, "gotree")
		start := time.Now()
		if r := run("cp", "-a", src, dst); r.Code != 0 {
			goTreeOnce.err = fmt.Errorf("copy of the Go tree failed:\n%s", r)
			return
		}
		goTreeOnce.dir = dst
		fmt.Fprintf(os.Stderr, "e2e: copied %s to %s in %s\n", src, dst, time.Since(start).Round(time.Millisecond))
	})
	if goTreeOnce.err != nil {
		t.Fatal(goTreeOnce.err)
	}
	return goTreeOnce.dir
}
