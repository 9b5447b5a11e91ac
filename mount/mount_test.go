package mount

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
)

func TestCheckCacheSize(t *testing.T) {
	if err := CheckCacheSize(64 << 20); err != nil {
		t.Errorf("64M: %v", err)
	}
	if err := CheckCacheSize(8589934591 << 30); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Errorf("8589934591G: %v, want an error about memory", err)
	}
}

func TestLogNameUnambiguous(t *testing.T) {
	seen := map[string]string{}
	for _, mnt := range []string{"/x-y", "/x/y", "/x\\x2dy", "/x/-y", "/", "/.x", "/x/.y", "/a b", "/x/y/"} {
		n := logName(filepath.Clean(mnt))
		if strings.Contains(n, "/") || n == ".log" || strings.HasPrefix(n, ".") {
			t.Errorf("logName(%q) = %q: not a plain file name", mnt, n)
		}
		if o, ok := seen[n]; ok && o != filepath.Clean(mnt) {
			t.Errorf("logName(%q) = logName(%q) = %q", mnt, o, n)
		}
		seen[n] = filepath.Clean(mnt)
	}
	if n := logName("/x/y"); n != "x-y.log" {
		t.Errorf("logName(/x/y) = %q, want x-y.log", n)
	}
	if _, err := exec.LookPath("systemd-escape"); err != nil {
		return
	}
	for _, mnt := range []string{"/mnt/x-y", "/x/y", "/a b", "/.x/y", "/x/.y", "/\u00e9", "/", "/a:b_c\\d"} {
		out, err := exec.Command("systemd-escape", "--path", mnt).Output()
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(string(out)) + ".log"; logName(mnt) != want {
			t.Errorf("logName(%q) = %q, systemd-escape --path says %q", mnt, logName(mnt), want)
		}
	}
}

func TestListenSocketReplacesOnlyStaleSockets(t *testing.T) {
	dir := t.TempDir()

	// A regular file is left alone.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ln, err := listenSocket(file); err == nil {
		ln.Close()
		t.Fatal("listenSocket replaced a regular file")
	} else if !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Fatalf("the regular file is now %q, %v", b, err)
	}

	// A live socket: already served.
	live := filepath.Join(dir, "live")
	l1, err := listenSocket(live)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	if ln, err := listenSocket(live); err == nil {
		ln.Close()
		t.Fatal("listenSocket took over a live socket")
	} else if !strings.Contains(err.Error(), "already served") {
		t.Errorf("live socket: %v", err)
	}

	// A stale socket (bound, nobody listening): replaced.
	stale := filepath.Join(dir, "stale")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: stale}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	ln, err := listenSocket(stale)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer ln.Close()
	conn, err := net.Dial("unix", stale)
	if err != nil {
		t.Fatalf("the new socket does not accept: %v", err)
	}
	conn.Close()
}

func TestUnmountRefusesForeignMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	err := Unmount(dir)
	if err == nil || !strings.Contains(err.Error(), "not an ostree-mount mount") || !strings.Contains(err.Error(), "tmpfs") {
		t.Errorf("unmount of a tmpfs: %v", err)
	}
	if _, ok, err := fs.MountedAt(dir); err != nil || !ok {
		t.Errorf("the tmpfs is gone (mounted %v, %v)", ok, err)
	}
}

// A user's default logs go under $XDG_RUNTIME_DIR, not /run (which only
// root may write); without it, nowhere.
func TestLogDir(t *testing.T) {
	for _, c := range []struct {
		euid      int
		xdg, want string
	}{
		{0, "/run/user/0", "/run/ostree-mount"},
		{1000, "/run/user/1000", "/run/user/1000/ostree-mount"},
		{1000, "", ""},
		{1000, "relative", ""},
	} {
		if got := logDir(c.euid, c.xdg); got != c.want {
			t.Errorf("logDir(%d, %q) = %q, want %q", c.euid, c.xdg, got, c.want)
		}
	}
}
