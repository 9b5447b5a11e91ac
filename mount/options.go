package mount

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/fs"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Options describes a mount. It is what Mount takes, and what a client
// sends to the mount service (the fields tagged "-" stay with the caller).
type Options struct {
	// Repo is the path of the repository (absolute, for the service).
	Repo string `json:"repo"`
	// Commit is the checksum to mount; when empty, Rev is resolved.
	Commit string `json:"commit,omitempty"`
	// Rev is what the user named; it also names the mount's source.
	Rev        string `json:"rev"`
	Mountpoint string `json:"mountpoint"`
	// CacheSize is the size in bytes of the composed-metadata cache.
	CacheSize int64 `json:"cache_size"`
	// LogFile is where a background mount logs; when empty, a file named
	// after the mountpoint (logName) under /run/ostree-mount as root,
	// under $XDG_RUNTIME_DIR/ostree-mount otherwise (defaultLogPath).
	LogFile string `json:"log_file,omitempty"`
	// FS is how the filesystem serves. Name, Logger, Device, DeviceNumber,
	// State, Resume and SpareP are set by this package.
	FS fs.Options `json:"fs"`

	// Foreground serves the mount in this process until it is unmounted.
	Foreground bool `json:"-"`
	// Socket is the mount service that a background mount as root asks
	// first ("": none).
	Socket string `json:"-"`
	// Log is where a foreground mount logs (nil: standard error).
	Log io.Writer `json:"-"`
}

// fsOptions returns the filesystem's options, those this package owns
// reset: a request cannot make a process serve a descriptor of its own.
func (o *Options) fsOptions() fs.Options {
	f := o.FS
	f.Name = "ostree-mount:" + o.Rev
	f.Logger, f.Device, f.DeviceNumber, f.SpareP = nil, 0, 0, false
	f.State, f.Resume = "", false
	// OSTREE_MOUNT_WARM=0 turns off the warming of listed directories'
	// files, for benchmarks that measure what it gains.
	if os.Getenv("OSTREE_MOUNT_WARM") == "0" {
		f.NoWarm = true
	}
	return f
}

func (o *Options) logWriter() io.Writer {
	if o.Log != nil {
		return o.Log
	}
	return os.Stderr
}

// commit returns the commit to mount: o.Commit, or else o.Rev resolved.
func (o *Options) commit(r *repo.Repo) (repo.Checksum, error) {
	if o.Commit == "" {
		return r.Resolve(o.Rev)
	}
	sum, err := repo.ParseChecksum(o.Commit)
	if err != nil {
		return repo.Checksum{}, fmt.Errorf("mount: commit: %w", err)
	}
	return sum, nil
}

func (o *Options) encode() string {
	b, err := json.Marshal(o)
	if err != nil {
		panic(err) // plain data
	}
	return string(b)
}

// CheckCacheSize refuses a cache larger than the machine's memory: the
// cache allocates its counters in proportion to its size (about 1 %), so
// a daemon given such a size would die of it after the mount exists.
func CheckCacheSize(n int64) error {
	if n <= 0 {
		return fmt.Errorf("cache size %d: must be positive", n)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return nil // not known: not checked
	}
	if ram := uint64(si.Totalram) * uint64(si.Unit); ram > 0 && uint64(n) > ram {
		return fmt.Errorf("%d bytes is more than this machine's memory (%d bytes)", n, ram)
	}
	return nil
}

// prefetchWorkers is how many directories a mount composes ahead of a
// walk; OSTREE_MOUNT_PREFETCH overrides it (0 disables), for benchmarks.
func prefetchWorkers() int {
	if v, err := strconv.Atoi(os.Getenv("OSTREE_MOUNT_PREFETCH")); err == nil && v >= 0 {
		return v
	}
	return 4
}

// defaultLogPath is where a mount's daemon logs without LogFile: under
// /run/ostree-mount as root, under $XDG_RUNTIME_DIR/ostree-mount
// otherwise (a user cannot write /run).
func defaultLogPath(mnt string) string {
	dir := logDir(os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR"))
	if dir == "" {
		return os.DevNull
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return os.DevNull
	}
	return filepath.Join(dir, logName(mnt))
}

// logDir is the directory of default logs for a process of effective uid
// euid whose $XDG_RUNTIME_DIR is xdg ("": none, logs are discarded).
func logDir(euid int, xdg string) string {
	if euid == 0 {
		return "/run/ostree-mount"
	}
	if xdg == "" || !filepath.IsAbs(xdg) {
		return ""
	}
	return filepath.Join(xdg, "ostree-mount")
}
