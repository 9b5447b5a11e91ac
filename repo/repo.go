package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Mode is a repository storage mode.
type Mode int

// Repository modes.
const (
	ModeBare Mode = iota
	ModeBareUser
	ModeBareUserOnly
	ModeArchive
)

// ParseMode parses a mode name as `ostree init --mode` and the config file
// spell it. "archive" and "archive-z2" are the same mode.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "bare":
		return ModeBare, nil
	case "bare-user":
		return ModeBareUser, nil
	case "bare-user-only":
		return ModeBareUserOnly, nil
	case "archive", "archive-z2":
		return ModeArchive, nil
	}
	return 0, fmt.Errorf("repository mode %q: want bare, bare-user, bare-user-only or archive: %w", s, ErrUnsupported)
}

// String returns the name written to the config file.
func (m Mode) String() string {
	switch m {
	case ModeBare:
		return "bare"
	case ModeBareUser:
		return "bare-user"
	case ModeBareUserOnly:
		return "bare-user-only"
	case ModeArchive:
		return "archive-z2"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// fileExt is the extension of content objects in this mode.
func (m Mode) fileExt() string {
	if m == ModeArchive {
		return "filez"
	}
	return "file"
}

// Repo is an open OSTree repository. It is safe for concurrent use.
type Repo struct {
	path    string
	dir     *os.File // the repository directory, for *at calls
	objects *os.File // objects/
	mode    Mode
	cfg     *Config
	lock    *repoLock
	fsync   bool
	level   int // archive zlib level
	clock   func() time.Time
	subdirs sync.Map // objects/XX directories known to exist
	inflate inflate  // archive mode: the inflate cache of OpenContent
}

// Options are settings for Init.
type InitOptions struct {
	Mode         Mode
	CollectionID string
}

// Init creates a repository at path, as `ostree init` does. An existing
// repository with the same mode is opened as it is.
func Init(path string, opts InitOptions) (*Repo, error) {
	if r, err := Open(path); err == nil {
		if r.mode != opts.Mode {
			r.Close()
			return nil, fmt.Errorf("init %s: repository exists with mode %s, not %s: %w", path, r.mode, opts.Mode, ErrExists)
		}
		return r, nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	for _, d := range []string{"objects", "tmp", "tmp/cache", "extensions", "state", "refs", "refs/heads", "refs/mirrors", "refs/remotes"} {
		perm := os.FileMode(0o755)
		if opts.Mode == ModeBare && privateDir(d) {
			perm = 0o700 // see doc.go, "Exposure"
		}
		if err := os.Mkdir(filepath.Join(path, d), perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("init %s: %w", path, err)
		}
		if perm == 0o700 {
			// Mkdir's mode went through the umask, which only narrows it;
			// a directory that already existed keeps its mode otherwise.
			if err := os.Chmod(filepath.Join(path, d), perm); err != nil {
				return nil, fmt.Errorf("init %s: %w", path, err)
			}
		}
	}
	cfg := &Config{}
	cfg.Set("core", "repo_version", "1")
	cfg.Set("core", "mode", opts.Mode.String())
	if opts.CollectionID != "" {
		if err := ValidateCollectionID(opts.CollectionID); err != nil {
			return nil, fmt.Errorf("init %s: %w", path, err)
		}
		cfg.Set("core", "collection-id", opts.CollectionID)
	}
	// The config file is written last and atomically: it is what makes the
	// directory a repository.
	if err := writeFileAtomic(filepath.Join(path, "config"), cfg.Bytes(), 0o644, true); err != nil {
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return Open(path)
}

// Open opens an existing repository.
func Open(path string) (*Repo, error) {
	b, err := os.ReadFile(filepath.Join(path, "config"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open %s: no config file: %w", path, ErrNotRepo)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", path, ErrNotRepo, err)
	}
	if v, _ := cfg.Get("core", "repo_version"); v != "1" {
		return nil, fmt.Errorf("open %s: repo_version %q, want 1: %w", path, v, ErrNotRepo)
	}
	if v, ok := cfg.Get("core", "archive"); ok && v == "true" {
		return nil, fmt.Errorf("open %s: legacy archive=true repositories are not supported: %w", path, ErrUnsupported)
	}
	ms, ok := cfg.Get("core", "mode")
	if !ok {
		ms = "bare"
	}
	mode, err := ParseMode(ms)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r := &Repo{path: path, mode: mode, cfg: cfg, clock: time.Now}
	if r.fsync, err = cfg.Bool("core", "fsync", true); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	lvl, err := cfg.Int("archive", "zlib-level", 6)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.level = int(lvl)
	timeout, err := cfg.Int("core", "lock-timeout-secs", 30)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.lock = &repoLock{path: filepath.Join(path, ".lock"), timeout: time.Duration(timeout) * time.Second}
	if timeout < 0 {
		r.lock.timeout = -1
	}
	if r.dir, err = os.Open(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if r.objects, err = os.Open(filepath.Join(path, "objects")); err != nil {
		r.dir.Close()
		return nil, fmt.Errorf("open %s: %w: %w", path, ErrNotRepo, err)
	}
	return r, nil
}

// Close releases the repository's file descriptors.
func (r *Repo) Close() error {
	r.closeInflate()
	r.objects.Close()
	return r.dir.Close()
}

// Path returns the repository directory.
func (r *Repo) Path() string { return r.path }

// Mode returns the storage mode.
func (r *Repo) Mode() Mode { return r.mode }

// Config returns the parsed config file.
func (r *Repo) Config() *Config { return r.cfg }

// CollectionID returns core.collection-id, or "".
func (r *Repo) CollectionID() string {
	v, _ := r.cfg.Get("core", "collection-id")
	return v
}

// SetClock replaces the clock used for default timestamps and age checks.
func (r *Repo) SetClock(now func() time.Time) { r.clock = now }

// Lock takes the repository lock. Transactions take a shared lock and
// prune an exclusive one; callers only need this for their own scans.
func (r *Repo) Lock(ctx context.Context, kind LockKind) (func(), error) {
	return r.lock.Lock(ctx, kind)
}

// objectExt returns the file extension of objects of type t.
func (r *Repo) objectExt(t ObjectType) string {
	switch t {
	case ObjFile:
		return r.mode.fileExt()
	case ObjDirTree:
		return "dirtree"
	case ObjDirMeta:
		return "dirmeta"
	case ObjCommit:
		return "commit"
	case ObjTombstone:
		return "tombstone-commit"
	case ObjCommitMeta:
		return "commitmeta"
	case ObjPayloadLink:
		return "payload-link"
	}
	return "unknown"
}

// objectRel returns the object's path relative to objects/.
func (r *Repo) objectRel(t ObjectType, c Checksum) string {
	h := c.String()
	return h[:2] + "/" + h[2:] + "." + r.objectExt(t)
}

// ObjectPath returns the absolute path of an object.
func (r *Repo) ObjectPath(t ObjectType, c Checksum) string {
	return filepath.Join(r.path, "objects", r.objectRel(t, c))
}

// HasObject reports whether the object exists.
func (r *Repo) HasObject(t ObjectType, c Checksum) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(int(r.objects.Fd()), r.objectRel(t, c), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return false, fmt.Errorf("%s %s: %w", t, c.Str(), err)
}

// parseObjectName splits "XX/rest.ext" names found under objects/.
func parseObjectName(prefix, name string) (Checksum, string, bool) {
	base, ext, ok := strings.Cut(name, ".")
	if !ok || len(prefix)+len(base) != 64 {
		return Checksum{}, "", false
	}
	c, err := ParseChecksum(prefix + base)
	if err != nil || !IsValidChecksum(prefix+base) {
		return Checksum{}, "", false
	}
	return c, ext, true
}

// objectTypeForExt maps an object file extension to its type in this mode.
func (r *Repo) objectTypeForExt(ext string) (ObjectType, bool) {
	switch ext {
	case r.mode.fileExt():
		return ObjFile, true
	case "dirtree":
		return ObjDirTree, true
	case "dirmeta":
		return ObjDirMeta, true
	case "commit":
		return ObjCommit, true
	case "commitmeta":
		return ObjCommitMeta, true
	case "tombstone-commit":
		return ObjTombstone, true
	case "payload-link":
		return ObjPayloadLink, true
	}
	return 0, false
}

// ObjectName is an object's type and checksum.
type ObjectName struct {
	Type     ObjectType
	Checksum Checksum
}

// ListObjects calls fn for every loose object in objects/, in directory
// order. Unknown files are skipped.
func (r *Repo) ListObjects(fn func(ObjectName) error) error {
	for i := 0; i < 256; i++ {
		prefix := fmt.Sprintf("%02x", i)
		ents, err := os.ReadDir(filepath.Join(r.path, "objects", prefix))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("list objects: %w", err)
		}
		for _, e := range ents {
			c, ext, ok := parseObjectName(prefix, e.Name())
			if !ok {
				continue
			}
			t, ok := r.objectTypeForExt(ext)
			if !ok {
				continue
			}
			if err := fn(ObjectName{t, c}); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers see the old or the new file, never a
// part.
func writeFileAtomic(path string, data []byte, perm os.FileMode, sync bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if sync {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if sync {
		return syncDir(dir)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
