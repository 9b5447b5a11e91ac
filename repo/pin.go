package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Pins live in <repo>/pins/, outside libostree's namespaces. A pin is a
// file named <commit>.<random>.pin holding the pinning process's OFD write
// lock for as long as that process keeps it open. Prune treats the commit
// of every locked pin as a root, and deletes pins nobody holds: the pin of
// a process that died, even by SIGKILL, is unlocked by the kernel when its
// file descriptions close.
const pinDir = "pins"

// Pin keeps a commit, and everything it reaches, alive against prune.
type Pin struct {
	Commit Checksum
	f      *os.File
	path   string
}

// Pin pins commit c until Release or the end of the process. The commit
// must exist; the check and the pin happen under the shared repository
// lock, so a concurrent prune either sees the pin or ran entirely before.
func (r *Repo) Pin(ctx context.Context, c Checksum) (*Pin, error) {
	unlock, err := r.lock.Lock(ctx, LockShared)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ok, err := r.HasObject(ObjCommit, c); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("commit %s: %w", c, ErrObjectNotFound)
		}
		return nil, fmt.Errorf("pin: %w", err)
	}
	dir := filepath.Join(r.path, pinDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	// Lock under a temporary name, then rename: prune only looks at *.pin,
	// so it never sees a pin before it is locked.
	base := c.String() + "." + randomSuffix()
	tmp := filepath.Join(dir, "."+base+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	if err := ofdLock(f, unix.F_WRLCK); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("pin: lock: %w", err)
	}
	fmt.Fprintf(f, "%s\n%d\n", c, os.Getpid())
	p := filepath.Join(dir, base+".pin")
	if err := os.Rename(tmp, p); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("pin: %w", err)
	}
	return &Pin{Commit: c, f: f, path: p}, nil
}

// File returns the pin's open, locked file. The lock belongs to the open
// file, not to the process: a process that inherits the descriptor
// holds the pin too, and keeps it after this one exits (see AdoptPin).
func (p *Pin) File() *os.File { return p.f }

// Path returns the pin's file name.
func (p *Pin) Path() string { return p.path }

// Disown closes this process's descriptor of the pin without removing
// it, once another process has inherited the descriptor and adopted it.
func (p *Pin) Disown() {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}

// AdoptPin takes over a pin that another process made and handed over as
// an inherited descriptor f of the pin file path; Release then removes
// it. It checks that f is that file and records this process as its
// owner.
func AdoptPin(f *os.File, path string) (*Pin, error) {
	base := filepath.Base(path)
	if len(base) < 64 || !strings.HasSuffix(base, ".pin") {
		return nil, fmt.Errorf("adopt pin %s: not a pin file name", path)
	}
	c, err := ParseChecksum(base[:64])
	if err != nil {
		return nil, fmt.Errorf("adopt pin %s: %w", path, err)
	}
	var fst, pst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return nil, fmt.Errorf("adopt pin %s: %w", path, err)
	}
	if err := unix.Stat(path, &pst); err != nil {
		return nil, fmt.Errorf("adopt pin %s: %w", path, err)
	}
	if fst.Dev != pst.Dev || fst.Ino != pst.Ino {
		return nil, fmt.Errorf("adopt pin %s: the inherited descriptor is another file", path)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%s\n%d\n", c, os.Getpid())), 0)
	}
	return &Pin{Commit: c, f: f, path: path}, nil
}

// Release removes the pin.
func (p *Pin) Release() error {
	if p.f == nil {
		return nil
	}
	err := os.Remove(p.path)
	p.f.Close()
	p.f = nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unpin %s: %w", p.Commit.Str(), err)
	}
	return nil
}

// PinInfo is a pin file found in the repository.
type PinInfo struct {
	Commit Checksum
	Path   string
	Live   bool // its owner still holds the lock
}

// ListPins returns every pin, telling live ones from dead ones by trying
// their locks. With removeDead, dead pins are deleted (prune does this
// under the exclusive lock).
func (r *Repo) ListPins(removeDead bool) ([]PinInfo, error) {
	dir := filepath.Join(r.path, pinDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	var out []PinInfo
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".pin") || len(name) < 64 {
			continue
		}
		c, err := ParseChecksum(name[:64])
		if err != nil {
			continue
		}
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // released meanwhile
			}
			return nil, fmt.Errorf("pin %s: %w", name, err)
		}
		live := ofdLock(f, unix.F_WRLCK) != nil
		if !live && removeDead {
			os.Remove(p)
		}
		f.Close()
		out = append(out, PinInfo{Commit: c, Path: p, Live: live})
	}
	return out, nil
}
