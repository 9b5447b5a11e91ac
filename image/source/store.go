package source

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// A fileStore serves the files of an image: a directory, or the members of
// an archive. Names are slash-separated, relative and already validated.
type fileStore interface {
	// open returns the named regular file and its size. A missing file gives
	// an error wrapping fs.ErrNotExist.
	open(name string) (io.ReadCloser, int64, error)
	// exists reports whether name resolves to a regular file.
	exists(name string) bool
	close() error
}

// dirStore serves files below a directory through os.Root, so neither ".."
// nor symlinks can lead outside it.
type dirStore struct {
	root *os.Root
}

func openDirStore(dir string) (*dirStore, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &dirStore{root: r}, nil
}

func (d *dirStore) open(name string) (io.ReadCloser, int64, error) {
	// O_NONBLOCK: a FIFO or a device opens at once, and is refused below
	// from the open file's own type, so it cannot be swapped in between.
	f, err := d.root.OpenFile(filepath.FromSlash(name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: not a regular file (%s)", name, fi.Mode().Type())
	}
	return f, fi.Size(), nil
}

func (d *dirStore) exists(name string) bool {
	fi, err := d.root.Stat(filepath.FromSlash(name))
	return err == nil && fi.Mode().IsRegular()
}

func (d *dirStore) close() error { return d.root.Close() }

// Limits on the archive index.
const (
	maxArchiveEntries = 1 << 20
	maxLinkHops       = 255
	maxLinkTarget     = 4096    // longer link targets are not followed
	maxResolveSteps   = 1 << 16 // path components processed per lookup
)

type entryType uint8

const (
	entryFile entryType = iota
	entryDir
	entrySymlink
	entryHardlink
	entryOther // device, fifo, sparse file…: present but not servable
)

// tarEntry is one member of an archive. File data is contiguous in a tar, so
// a regular file is served as the section [off, off+size) of the archive.
type tarEntry struct {
	typ       entryType
	off, size int64
	link      string // symlink target or hardlink name, as stored
	why       string // for entryOther: what it is
}

// archiveStore serves the members of a tar archive without extracting it.
type archiveStore struct {
	f       *os.File
	entries map[string]*tarEntry // cleaned name → last entry of that name
}

// openArchiveStore opens file and indexes its tar headers once.
func openArchiveStore(ctx context.Context, file, where string) (*archiveStore, error) {
	if file == "" {
		return nil, fmt.Errorf("source: %s: %w: empty file name", where, ErrInvalid)
	}
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0) // see dirStore.open
	if err != nil {
		return nil, fileErr(where, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileErr(where, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("source: %s: %w: not a regular file (%s)", where, ErrInvalid, fi.Mode().Type())
	}
	entries, err := indexTar(ctx, f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("source: %s: %w", where, err)
	}
	return &archiveStore{f: f, entries: entries}, nil
}

// cleanMemberName normalizes a tar member name ("./a", "/a", "a/" → "a");
// ok is false for names that leave the archive root.
func cleanMemberName(n string) (string, bool) {
	n = strings.TrimLeft(n, "/")
	c := path.Clean(n)
	if c == "." {
		return "", true
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}

// indexTar scans the tar headers of f (size bytes) and records where each
// member's data is. archive/tar reads headers with exact-size reads and skips
// data by seeking, so after Next the file offset is the start of the data.
func indexTar(ctx context.Context, f *os.File, size int64) (map[string]*tarEntry, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	tr := tar.NewReader(f)
	entries := make(map[string]*tarEntry)
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if n >= maxArchiveEntries {
			return nil, fmt.Errorf("%w: archive has more than %d members", ErrInvalid, maxArchiveEntries)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading tar header of member %d: %v", ErrInvalid, n, err)
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		name, ok := cleanMemberName(hdr.Name)
		if !ok || name == "" {
			continue // outside the archive root, or the root itself
		}
		e := &tarEntry{}
		switch hdr.Typeflag {
		case tar.TypeReg:
			e.typ, e.off, e.size = entryFile, off, hdr.Size
			for k := range hdr.PAXRecords {
				if strings.HasPrefix(k, "GNU.sparse.") {
					e.typ, e.why = entryOther, "sparse file"
				}
			}
			if e.typ == entryFile && (hdr.Size < 0 || off > size-hdr.Size) {
				return nil, fmt.Errorf("%w: member %q (%d bytes at offset %d) extends beyond the end of the archive (%d bytes)", ErrInvalid, hdr.Name, hdr.Size, off, size)
			}
		case tar.TypeDir:
			e.typ = entryDir
		case tar.TypeSymlink, tar.TypeLink:
			e.typ, e.link = entrySymlink, hdr.Linkname
			if hdr.Typeflag == tar.TypeLink {
				e.typ = entryHardlink
			}
			if len(hdr.Linkname) > maxLinkTarget {
				e.typ, e.why = entryOther, "link with an overlong target"
			}
		case tar.TypeGNUSparse:
			e.typ, e.why = entryOther, "sparse file"
		default:
			e.typ, e.why = entryOther, fmt.Sprintf("tar type %q", hdr.Typeflag)
		}
		entries[name] = e
	}
	return entries, nil
}

// resolve follows symlinks and hardlinks inside the archive namespace: ".."
// stops at the archive root and absolute targets start from it, so no name
// can refer to anything outside the archive.
func (a *archiveStore) resolve(name string) (*tarEntry, string, error) {
	comps := strings.Split(name, "/")
	var resolved []string
	hops, steps := 0, 0
	for len(comps) > 0 {
		if steps++; steps > maxResolveSteps {
			return nil, "", fmt.Errorf("%s: path too complex to resolve in the archive", name)
		}
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		cur := c
		if len(resolved) > 0 {
			cur = strings.Join(resolved, "/") + "/" + c
		}
		e := a.entries[cur]
		if e != nil && (e.typ == entrySymlink || e.typ == entryHardlink) {
			hops++
			if hops > maxLinkHops {
				return nil, "", fmt.Errorf("%s: too many levels of links in the archive", name)
			}
			if e.typ == entryHardlink || strings.HasPrefix(e.link, "/") {
				// Hardlink names are relative to the archive root.
				resolved = resolved[:0]
			}
			comps = append(strings.Split(e.link, "/"), comps...)
			continue
		}
		resolved = append(resolved, c)
	}
	final := strings.Join(resolved, "/")
	e := a.entries[final]
	if e == nil {
		if final != name {
			return nil, "", fmt.Errorf("%s (resolved to %s): %w", name, final, fs.ErrNotExist)
		}
		return nil, "", fmt.Errorf("%s: %w in the archive", name, fs.ErrNotExist)
	}
	return e, final, nil
}

func (a *archiveStore) open(name string) (io.ReadCloser, int64, error) {
	e, final, err := a.resolve(name)
	if err != nil {
		return nil, 0, err
	}
	switch e.typ {
	case entryFile:
	case entryDir:
		return nil, 0, fmt.Errorf("%s: is a directory in the archive", final)
	default:
		return nil, 0, fmt.Errorf("%s: archive member is a %s, not a regular file", final, e.why)
	}
	return io.NopCloser(io.NewSectionReader(a.f, e.off, e.size)), e.size, nil
}

func (a *archiveStore) exists(name string) bool {
	e, _, err := a.resolve(name)
	return err == nil && e.typ == entryFile
}

func (a *archiveStore) close() error { return a.f.Close() }

// readSmallFile reads a whole file of st into memory, refusing more than
// maxJSONSize bytes.
func readSmallFile(st fileStore, name string) ([]byte, error) {
	rc, size, err := st.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxJSONSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d-byte limit for JSON documents", ErrInvalid, name, size, maxJSONSize)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxJSONSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxJSONSize {
		return nil, fmt.Errorf("%w: %s is more than the %d-byte limit for JSON documents", ErrInvalid, name, maxJSONSize)
	}
	return b, nil
}

// errNotExist reports whether err means a missing file.
func errNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
