package repo

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// maxMetaObjectSize bounds the metadata objects the reader accepts; a
// commit with a 70 kB body is 70 kB, and large dirtrees are a few MB.
const maxMetaObjectSize = 256 << 20

func notFound(t ObjectType, c Checksum, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s %s: %w", t, c, ErrObjectNotFound)
	}
	return fmt.Errorf("%s %s: %w", t, c, err)
}

// ReadMetaObject returns the bytes of a dirtree, dirmeta or commit object,
// after checking that they hash to c.
func (r *Repo) ReadMetaObject(t ObjectType, c Checksum) ([]byte, error) {
	b, err := r.readObjectBytes(t, c)
	if err != nil {
		return nil, err
	}
	if t.IsMeta() && SumBytes(b) != c {
		return nil, fmt.Errorf("%s %s: %w", t, c, ErrChecksumMismatch)
	}
	return b, nil
}

func (r *Repo) readObjectBytes(t ObjectType, c Checksum) ([]byte, error) {
	return r.readObjectBytesIn(int(r.objects.Fd()), t, c)
}

func (r *Repo) readObjectBytesIn(dfd int, t ObjectType, c Checksum) ([]byte, error) {
	// Raw descriptors: an *os.File would cost a poller registration and a
	// finalizer per object, which shows in a cold walk.
	fd, err := unix.Openat(dfd, r.objectRel(t, c), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, notFound(t, c, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%s %s: %w", t, c, err)
	}
	if st.Size > maxMetaObjectSize {
		return nil, fmt.Errorf("%s %s: larger than %d bytes: %w", t, c, maxMetaObjectSize, ErrCorrupt)
	}
	b := make([]byte, st.Size)
	for off := 0; off < len(b); {
		n, err := unix.Pread(fd, b[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", t, c, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("%s %s: %w: %w", t, c, ErrCorrupt, io.ErrUnexpectedEOF)
		}
		off += n
	}
	return b, nil
}

// readParsed reads a metadata object with read and parses it, naming the
// object in any error.
func readParsed[T any](read func(ObjectType, Checksum) ([]byte, error), t ObjectType, c Checksum, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := read(t, c)
	if err != nil {
		return zero, err
	}
	v, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", t, c, err)
	}
	return v, nil
}

// ReadDirTree reads and verifies a dirtree object. The local reads
// honour ctx only before they start; see Content for the error contract.
func (r *Repo) ReadDirTree(ctx context.Context, c Checksum) (*DirTree, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", ObjDirTree, c, err)
	}
	return readParsed(r.ReadMetaObject, ObjDirTree, c, ParseDirTree)
}

// ReadDirMeta reads and verifies a dirmeta object.
func (r *Repo) ReadDirMeta(ctx context.Context, c Checksum) (*DirMeta, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", ObjDirMeta, c, err)
	}
	return readParsed(r.ReadMetaObject, ObjDirMeta, c, ParseDirMeta)
}

// ReadCommit reads and verifies a commit object.
func (r *Repo) ReadCommit(ctx context.Context, c Checksum) (*Commit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", ObjCommit, c, err)
	}
	return readParsed(r.ReadMetaObject, ObjCommit, c, ParseCommit)
}

// ReadCommitMeta reads a commit's detached metadata; it returns nil and no
// error when the commit has none.
func (r *Repo) ReadCommitMeta(c Checksum) (Metadata, error) {
	b, err := r.readObjectBytes(ObjCommitMeta, c)
	if errors.Is(err, ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := ParseMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("commitmeta %s: %w", c, err)
	}
	return m, nil
}

// File is an open content object.
type File struct {
	Meta     FileMeta
	Checksum Checksum
	f        *os.File // the object file; nil for symlinks stored as links
	data     int64    // archive: offset of the deflate stream
	archive  bool
}

// Close releases the object file.
func (f *File) Close() error {
	if f.f != nil {
		return f.f.Close()
	}
	return nil
}

// ObjectFile returns the open object file whose bytes are the content, for
// bare modes; nil in archive mode and for symlinks.
func (f *File) ObjectFile() *os.File {
	if f.archive || f.Meta.IsSymlink() {
		return nil
	}
	return f.f
}

// Reader returns the file content as a stream.
func (f *File) Reader() io.Reader {
	if f.Meta.IsSymlink() {
		return bytes.NewReader(nil)
	}
	if f.archive {
		return flate.NewReader(io.NewSectionReader(f.f, f.data, 1<<62))
	}
	return io.NewSectionReader(f.f, 0, f.Meta.Size)
}

// OpenFile opens a content object and reads its metadata as stored in the
// repository's mode. The content is not verified; see VerifyFile and
// CopyFile.
func (r *Repo) OpenFile(c Checksum) (*File, error) {
	return r.openFileIn(int(r.objects.Fd()), c)
}

func (r *Repo) openFileIn(dfd int, c Checksum) (*File, error) {
	rel := r.objectRel(ObjFile, c)
	switch r.mode {
	case ModeArchive:
		fd, err := unix.Openat(dfd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, notFound(ObjFile, c, err)
		}
		f := os.NewFile(uintptr(fd), rel)
		hdr := make([]byte, 4096)
		n, err := io.ReadFull(f, hdr)
		if err != nil && err != io.ErrUnexpectedEOF {
			f.Close()
			return nil, fmt.Errorf("file %s: %w", c, err)
		}
		hdr = hdr[:n]
		if n >= 8 {
			if hl := int(uint32(hdr[0])<<24 | uint32(hdr[1])<<16 | uint32(hdr[2])<<8 | uint32(hdr[3])); hl+8 > n && hl <= maxHeaderSize {
				hdr = make([]byte, hl+8)
				if _, err := f.ReadAt(hdr, 0); err != nil {
					f.Close()
					return nil, fmt.Errorf("file %s: header: %w: %w", c, ErrCorrupt, err)
				}
			}
		}
		m, off, err := parseArchiveHeader(hdr)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("file %s: %w", c, err)
		}
		return &File{Meta: *m, Checksum: c, f: f, data: int64(off), archive: true}, nil
	case ModeBareUser:
		fd, err := unix.Openat(dfd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, notFound(ObjFile, c, err)
		}
		f := os.NewFile(uintptr(fd), rel)
		meta, err := fgetxattr(fd, "user.ostreemeta")
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("file %s: user.ostreemeta: %w: %w", c, ErrCorrupt, err)
		}
		m, err := parseOstreeMeta(meta)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("file %s: %w", c, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("file %s: %w", c, err)
		}
		file := &File{Meta: *m, Checksum: c, f: f}
		switch m.Mode & ModeFmt {
		case ModeSymlink:
			b, err := io.ReadAll(io.LimitReader(f, 1<<20))
			f.Close()
			file.f = nil
			if err != nil {
				return nil, fmt.Errorf("file %s: %w", c, err)
			}
			if len(b) == 0 || b[len(b)-1] != 0 {
				return nil, fmt.Errorf("file %s: bare-user symlink not NUL-terminated: %w", c, ErrCorrupt)
			}
			file.Meta.Target = string(b[:len(b)-1])
		case ModeRegular:
			file.Meta.Size = st.Size
		default:
			f.Close()
			return nil, fmt.Errorf("file %s: mode %#o: %w", c, m.Mode, ErrCorrupt)
		}
		if err := file.Meta.Validate(); err != nil {
			file.Close()
			return nil, fmt.Errorf("file %s: %w (%w)", c, ErrCorrupt, err)
		}
		return file, nil
	default: // bare, bare-user-only: the stat data is the metadata
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, notFound(ObjFile, c, err)
		}
		m := FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
		if r.mode == ModeBareUserOnly {
			m.UID, m.GID = 0, 0
		}
		file := &File{Checksum: c}
		switch st.Mode & ModeFmt {
		case ModeSymlink:
			t, err := readlinkat(dfd, rel)
			if err != nil {
				return nil, fmt.Errorf("file %s: %w", c, err)
			}
			m.Target = t
			if r.mode == ModeBare {
				if m.Xattrs, err = listXattrs(fmt.Sprintf("/proc/self/fd/%d/%s", dfd, rel), true); err != nil {
					return nil, fmt.Errorf("file %s: %w", c, err)
				}
			}
		case ModeRegular:
			fd, err := unix.Openat(dfd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			if err != nil {
				return nil, notFound(ObjFile, c, err)
			}
			file.f = os.NewFile(uintptr(fd), rel)
			m.Size = st.Size
			if r.mode == ModeBare {
				if m.Xattrs, err = flistXattrs(fd); err != nil {
					file.Close()
					return nil, fmt.Errorf("file %s: %w", c, err)
				}
			}
		default:
			return nil, fmt.Errorf("file %s: object is not a regular file or symlink: %w", c, ErrCorrupt)
		}
		file.Meta = m
		return file, nil
	}
}

// ReadFileMeta returns a content object's metadata. In the bare modes it
// reads only the object's inode (stat, and the user.ostreemeta xattr in
// bare-user), without opening regular files.
func (r *Repo) ReadFileMeta(ctx context.Context, c Checksum) (*FileMeta, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file %s: %w", c, err)
	}
	if r.mode == ModeBareUser {
		rel := r.objectRel(ObjFile, c)
		var st unix.Stat_t
		if err := unix.Fstatat(int(r.objects.Fd()), rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, notFound(ObjFile, c, err)
		}
		dfd := int(r.objects.Fd())
		b, err := getXattr(xattrOps{get: func(n string, d []byte) (int, error) {
			return lgetxattrAt(dfd, r.path+"/objects", rel, n, d)
		}}, "user.ostreemeta")
		if err != nil {
			return nil, fmt.Errorf("file %s: user.ostreemeta: %w: %w", c, ErrCorrupt, err)
		}
		m, err := parseOstreeMeta(b)
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", c, err)
		}
		if m.Mode&ModeFmt == ModeRegular && st.Mode&ModeFmt == ModeRegular {
			m.Size = st.Size
			return m, nil
		}
		// Symlinks keep their target in the file: read it the long way.
	}
	f, err := r.OpenFile(c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := f.Meta
	return &m, nil
}

// CopyFile writes a content object's content to w and verifies the whole
// object against its checksum. On a mismatch, the error wraps
// ErrChecksumMismatch; what was written to w must then be discarded.
func (r *Repo) CopyFile(c Checksum, w io.Writer) (*FileMeta, error) {
	f, err := r.OpenFile(c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	h.Write(f.Meta.hashedHeader())
	n, err := io.Copy(io.MultiWriter(w, h), f.Reader())
	if err != nil {
		if isFlateError(err) {
			return nil, fmt.Errorf("file %s: %w: %w", c, ErrChecksumMismatch, err)
		}
		return nil, fmt.Errorf("file %s: %w", c, err)
	}
	if !f.Meta.IsSymlink() && n != f.Meta.Size {
		return nil, fmt.Errorf("file %s: content is %d bytes, header says %d: %w", c, n, f.Meta.Size, ErrChecksumMismatch)
	}
	if Checksum(h.Sum(nil)) != c {
		return nil, fmt.Errorf("file %s: %w", c, ErrChecksumMismatch)
	}
	m := f.Meta
	return &m, nil
}

// VerifyFile checks a content object against its checksum.
func (r *Repo) VerifyFile(c Checksum) error {
	_, err := r.CopyFile(c, io.Discard)
	return err
}
