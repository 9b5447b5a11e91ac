package mount

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
)

// TestHandoffFailureDetaches: a daemon that fails after the command
// mounted (here: it cannot adopt the pin, its cache size is bad, or its
// repository does not open)
// detaches the mount instead of leaving one that nothing serves.
func TestHandoffFailureDetaches(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	for _, tc := range []struct {
		name      string
		cacheSize int64
		pinPath   string
		want      string
	}{
		{"bad-pin", 64 << 20, "/nonexistent/not-a-pin", "adopt pin"},
		{"bad-cache-size", 0, "", "--cache-size"},
		{"bad-repo", 64 << 20, "", "repo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := t.TempDir()
			dev, err := fs.OpenDevice()
			if err != nil {
				t.Skipf("no FUSE: %v", err)
			}
			defer dev.Close()
			devnum, err := fs.MountDevice(dev, mnt, fs.Options{Name: "ostree-mount:test"})
			if err != nil {
				t.Skipf("mount: %v", err)
			}
			defer func() { _ = fs.DetachIfOurs(mnt, devnum) }()
			ctlR, ctlW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(ctlW, "mounted %d\n", devnum)
			ctlW.Close()
			// A pin file the daemon adopts (bad-cache-size), or a path
			// that is not one (bad-pin).
			pinPath := tc.pinPath
			if pinPath == "" {
				pinPath = t.TempDir() + "/" + strings.Repeat("a", 64) + ".pin"
			}
			pinF, err := os.OpenFile(pinPath, os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				pinF, err = os.CreateTemp(t.TempDir(), "pin")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer pinF.Close()
			// serveHandoff owns the descriptors it is given, as a daemon
			// owns those it inherits.
			dup := func(f *os.File) int {
				fd, err := unix.Dup(int(f.Fd()))
				if err != nil {
					t.Fatal(err)
				}
				return fd
			}
			h := &handoff{device: dup(dev), pinFD: dup(pinF), pinPath: pinPath, ctlFD: dup(ctlR)}
			ctlR.Close()
			o := Options{Repo: t.TempDir(), Rev: "test", Mountpoint: mnt, CacheSize: tc.cacheSize}
			err = serveHandoff(h, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serveHandoff: %v, want an error about %s", err, tc.want)
			}
			if _, ok, err := fs.MountedAt(mnt); err != nil || ok {
				t.Errorf("the failed daemon left its mount at %s (%v)", mnt, err)
			}
		})
	}
}
