package fs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// The resume tests run servers in child processes (this test binary,
// re-executed with resumeHelperEnv set), so that one can be killed with
// SIGKILL while the test, like a supervisor, holds the mount's /dev/fuse
// descriptor and reads through the mount.
const resumeHelperEnv = "OSTREE_MOUNT_FS_RESUME_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(resumeHelperEnv) != "" {
		if err := resumeHelper(); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// resumeNodes is the tree the resume tests serve: deterministic, so that
// every process builds the same commit.
func resumeNodes() []repotest.Node {
	nodes := []repotest.Node{
		{Path: "d", Mode: repo.ModeDir | 0o755},
		{Path: "d/e", Mode: repo.ModeDir | 0o755},
		{Path: "slow", Data: "answered by the successor\n"},
		{Path: "big", Data: string(bigData())},
		{Path: "ln", Mode: repo.ModeSymlink | 0o777, Target: "d/e/f0"},
	}
	for i := range 20 {
		nodes = append(nodes, repotest.Node{Path: fmt.Sprintf("d/e/f%d", i), Data: fmt.Sprintf("file %d\n", i)})
	}
	return nodes
}

func bigData() []byte {
	b := make([]byte, 16<<20)
	for i := range b {
		b[i] = byte(i/4096 + i)
	}
	return b
}

// resumeTree builds resumeNodes' commit and tree over a store of files in
// dir.
func resumeTree(dir string) (*fileStore, *compose.Tree, map[string]repo.Checksum, error) {
	mem := repotest.NewMemStore()
	nodes := resumeNodes()
	tree, meta, err := mem.PutTree(nodes...)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := mem.PutCommit(&repo.Commit{RootTree: tree, RootMeta: meta, Subject: "resume"})
	if err != nil {
		return nil, nil, nil, err
	}
	st := &fileStore{Faulty: repotest.NewFaulty(mem), dir: dir}
	t, err := compose.Open(st, c, compose.Options{CacheBytes: 1 << 20})
	if err != nil {
		return nil, nil, nil, err
	}
	sums := map[string]repo.Checksum{}
	for _, n := range nodes {
		if n.Mode == 0 {
			fm := repo.FileMeta{Mode: repo.ModeRegular | 0o644}
			if sums[n.Path], err = repo.FileChecksum(&fm, stringReader(n, &fm)); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	return st, t, sums, nil
}

// blockingStore holds the opening of one object until the process ends,
// telling the test (on standard output) when a read reached it.
type blockingStore struct {
	*fileStore
	block repo.Checksum
}

func (s *blockingStore) OpenContent(ctx context.Context, c repo.Checksum) (repo.Content, error) {
	if c == s.block {
		fmt.Println("blocked")
		select {} // killed here
	}
	return s.fileStore.OpenContent(ctx, c)
}

// resumeHelper serves the mount on descriptor 3, as its environment says.
func resumeHelper() error {
	env := func(k string) string { return os.Getenv(resumeHelperEnv + "_" + k) }
	st, tree, sums, err := resumeTree(env("CONTENT"))
	if err != nil {
		return err
	}
	var objs Objects = st
	if env("BLOCK") != "" {
		objs = &blockingStore{fileStore: st, block: sums[env("BLOCK")]}
	}
	devnum, _ := strconv.ParseUint(env("DEVNUM"), 10, 64)
	noResend = env("NORESEND") != ""
	srv, err := Mount(env("MNT"), objs, tree, Options{
		Device:       3,
		DeviceNumber: devnum,
		State:        env("STATE"),
		Resume:       env("RESUME") != "",
		Passthrough:  env("PASSTHROUGH") != "",
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	fmt.Println("serving")
	srv.Wait()
	fmt.Fprintf(os.Stderr, "revived=%d stale=%d\n", srv.Revived(), srv.Stale())
	return nil
}

// helperProc is a server in a child process.
type helperProc struct {
	cmd    *exec.Cmd
	out    *bufio.Reader
	stderr *bytes.Buffer
}

func startHelper(t *testing.T, dev *os.File, vars map[string]string) *helperProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), resumeHelperEnv+"=1")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, resumeHelperEnv+"_"+k+"="+v)
	}
	cmd.ExtraFiles = []*os.File{dev}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &helperProc{cmd: cmd, out: bufio.NewReader(out), stderr: &bytes.Buffer{}}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	h.expect(t, "serving")
	return h
}

// expect reads the helper's next line, which must be want.
func (h *helperProc) expect(t *testing.T, want string) {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := h.out.ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case got := <-line:
		if got != want {
			t.Fatalf("helper said %q, want %q; its log:\n%s", got, want, h.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("helper did not say %q within 30 s; its log:\n%s", want, h.stderr)
	}
}

func (h *helperProc) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = h.cmd.Wait()
}

// A server killed with SIGKILL while it serves a read, and while the
// kernel holds node IDs and an open file it gave, is replaced by a
// successor that takes the live descriptor over: the read it never
// answered is answered (the kernel resends it), the open file reads on,
// the names the kernel cached resolve through IDs the successor revives
// from the journal, and a walk of the whole tree gives the same bytes.
// As on a kernel without FUSE_NOTIFY_RESEND, the read in flight fails
// with EIO instead, and everything else is the same.
func TestResumeAfterKill(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	t.Run("resend", func(t *testing.T) { testResumeAfterKill(t, true, false) })
	t.Run("no resend", func(t *testing.T) { testResumeAfterKill(t, false, false) })
	t.Run("passthrough", func(t *testing.T) { testResumeAfterKill(t, true, true) })
}

// With passthrough, a file opened before the kill is the kernel's own
// (its backing file): it reads on while no server runs at all.
func testResumeAfterKill(t *testing.T, resend, passthrough bool) {
	content, state, mnt := t.TempDir(), t.TempDir(), t.TempDir()
	_, _, _, err := resumeTree(content)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := OpenDevice()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	devnum, err := MountDevice(dev, mnt, Options{Name: "ostree-mount:resume-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) }()
	vars := map[string]string{"CONTENT": content, "STATE": state, "MNT": mnt, "DEVNUM": strconv.FormatUint(devnum, 10), "BLOCK": "slow"}
	if passthrough {
		vars["PASSTHROUGH"] = "1"
	}
	first := startHelper(t, dev, vars)

	// The kernel learns nodes from the first server: a walk, an open
	// file read at its start, a cached directory.
	want := map[string][]byte{}
	for _, n := range resumeNodes() {
		if n.Mode == 0 {
			want[n.Path] = []byte(n.Data)
		}
	}
	// A file read and closed first: the server refuses the close's FLUSH
	// (ENOSYS) and the kernel sends no more. Else the exec that starts
	// the successor, closing this process's descriptors of files on the
	// mount (big), would wait on a FLUSH that only the successor can
	// answer.
	if b, err := os.ReadFile(filepath.Join(mnt, "d/e/f3")); err != nil || !bytes.Equal(b, want["d/e/f3"]) {
		t.Fatalf("read d/e/f3: %q, %v", b, err)
	}
	big, err := os.Open(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(big, head); err != nil || !bytes.Equal(head, want["big"][:4096]) {
		t.Fatalf("read big: %v", err)
	}
	// A second open of the file while it is open: with passthrough, the
	// same backing file (the kernel refuses another).
	if b, err := os.ReadFile(filepath.Join(mnt, "big")); err != nil || !bytes.Equal(b, want["big"]) {
		t.Fatalf("read big while it is open: %d bytes, %v", len(b), err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "d/e/f3")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}

	// A read the first server takes and never answers.
	slow := make(chan error, 1)
	go func() {
		b, err := os.ReadFile(filepath.Join(mnt, "slow"))
		if err == nil && !bytes.Equal(b, want["slow"]) {
			err = fmt.Errorf("read %q", b)
		}
		slow <- err
	}()
	first.expect(t, "blocked")
	first.kill(t)
	select {
	case err := <-slow:
		t.Fatalf("the read in flight ended with the server's death: %v", err)
	default:
	}

	if passthrough {
		mid := make([]byte, 8192)
		if _, err := big.ReadAt(mid, 8<<20); err != nil || !bytes.Equal(mid, want["big"][8<<20:8<<20+8192]) {
			t.Errorf("read of a passed-through file with no server: %v", err)
		}
	}
	delete(vars, "BLOCK")
	vars["RESUME"] = "1"
	if !resend {
		vars["NORESEND"] = "1"
	}
	second := startHelper(t, dev, vars)
	select {
	case err := <-slow:
		if resend && err != nil {
			t.Errorf("the read in flight at the kill, resent to the successor: %v", err)
		}
		// Without a resend the successor fails the READ in flight with
		// EIO (its log says so, below); the kernel's page cache then
		// reads the page again, from the successor, so the reader may
		// get its bytes all the same.
		if !resend && err != nil && !errors.Is(err, syscall.EIO) {
			t.Errorf("the read in flight at the kill, without a resend: %v, want EIO or the file", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the read in flight at the kill was never answered; successor's log:\n%s", second.stderr)
	}

	// The open file reads on, past what the page cache holds (a READ of a
	// node the first server gave).
	tail := make([]byte, 8192)
	if _, err := big.ReadAt(tail, 12<<20); err != nil || !bytes.Equal(tail, want["big"][12<<20:12<<20+8192]) {
		t.Errorf("read of the file held open across the kill: %v", err)
	}
	// Names under directories the first server gave.
	if b, err := os.ReadFile(filepath.Join(mnt, "d/e/f7")); err != nil || !bytes.Equal(b, want["d/e/f7"]) {
		t.Errorf("read d/e/f7 after the kill: %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "ln")); err != nil || target != "d/e/f0" {
		t.Errorf("readlink after the kill: %q, %v", target, err)
	}
	// Everything, read again.
	for p, data := range want {
		b, err := os.ReadFile(filepath.Join(mnt, p))
		if err != nil || !bytes.Equal(b, data) {
			t.Errorf("read %s after the kill: %d bytes, %v\n%s", p, len(b), err, second.stderr)
		}
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "d/e"))
	if err != nil || len(ents) != 20 {
		t.Errorf("list d/e after the kill: %d entries, %v", len(ents), err)
	}

	big.Close()
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	if err := second.cmd.Wait(); err != nil {
		t.Fatalf("successor: %v\n%s", err, second.stderr)
	}
	want1 := "the kernel resends"
	if !resend {
		want1 = "failed=1"
	}
	if !strings.Contains(second.stderr.String(), want1) {
		t.Errorf("the successor's log does not say %q:\n%s", want1, second.stderr)
	}
	var revived, stale int
	fmt.Sscanf(second.stderr.String()[strings.LastIndex(second.stderr.String(), "revived="):], "revived=%d stale=%d", &revived, &stale)
	if revived == 0 || stale != 0 {
		t.Errorf("successor revived %d nodes and found %d stale, want some and none:\n%s", revived, stale, second.stderr)
	}
}
