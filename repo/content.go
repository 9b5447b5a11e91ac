package repo

import (
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/cache"
)

// Content is the content of a regular file object, opened for reading.
// ReadAt follows io.ReaderAt (io.EOF at or past the end); Size is the
// content's length in bytes.
//
// The error contract, for every implementation (the local repository, a
// remote store, test fakes): errors name the object and wrap
// ErrObjectNotFound when the object does not exist, ErrCorrupt or
// ErrChecksumMismatch when its bytes are bad (permanent), ErrUnavailable
// when it cannot be read now but may later (transient), and the context's
// error when the caller's context ended first.
type Content interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// ContentFile is implemented by a Content whose bytes are those of an
// open file (the bare modes): a consumer may pread, seek or pass through
// the file's descriptor itself. The file belongs to the Content; Close
// closes it.
type ContentFile interface {
	Content
	File() *os.File
}

// OpenContent opens a regular file object's content, without verifying
// it (see VerifyContent). In the bare modes it opens the object file and
// reads no metadata, for callers that know it already (the mount); the
// result is a ContentFile. In archive mode it reads the object's header
// and inflates on demand: a read behind the last one restarts the
// stream, and small objects are inflated whole into the repository's
// inflate cache, shared by every Content of the repository.
func (r *Repo) OpenContent(ctx context.Context, c Checksum) (Content, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file %s: %w", c, err)
	}
	if r.mode == ModeArchive {
		f, err := r.OpenFile(c)
		if err != nil {
			return nil, err
		}
		if f.Meta.Mode&ModeFmt != ModeRegular {
			f.Close()
			return nil, fmt.Errorf("file %s: not a regular file: %w", c, ErrUnsupported)
		}
		ic, err := r.inflateCache()
		if err != nil {
			f.Close()
			return nil, err
		}
		return &archiveContent{f: f, cache: ic}, nil
	}
	rel := r.objectRel(ObjFile, c)
	fd, err := unix.Openat(int(r.objects.Fd()), rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, notFound(ObjFile, c, err)
	}
	return objectFile{os.NewFile(uintptr(fd), rel)}, nil
}

// ContentFiles reports whether OpenContent returns a ContentFile for every
// regular file object: true in the bare modes.
func (r *Repo) ContentFiles() bool { return r.mode != ModeArchive }

// VerifyContent checks a content object against its checksum, as
// VerifyFile does.
func (r *Repo) VerifyContent(ctx context.Context, c Checksum) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file %s: %w", c, err)
	}
	return r.VerifyFile(c)
}

// Statfs reports the numbers of the filesystem that holds the repository.
func (r *Repo) Statfs() (unix.Statfs_t, error) {
	var st unix.Statfs_t
	err := unix.Fstatfs(int(r.objects.Fd()), &st)
	if err != nil {
		return st, fmt.Errorf("statfs %s: %w", r.path, err)
	}
	return st, nil
}

// objectFile is a bare-mode object file: its bytes are the content. A
// struct of one pointer, so that it is stored in an interface without an
// allocation.
type objectFile struct{ f *os.File }

func (o objectFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }
func (o objectFile) Close() error                            { return o.f.Close() }
func (o objectFile) File() *os.File                          { return o.f }

// Size stats the file: OpenContent does not, as its callers mostly know
// the size from the object's metadata.
func (o objectFile) Size() int64 {
	var st unix.Stat_t
	if err := unix.Fstat(int(o.f.Fd()), &st); err != nil {
		return 0
	}
	return st.Size
}

// DefaultInflateCacheBytes bounds the repository's cache of inflated
// archive-mode objects.
const DefaultInflateCacheBytes = 64 << 20

// smallFile is the size up to which archive-mode objects are inflated
// whole into the inflate cache; larger ones are streamed.
const smallFile = 4 << 20

// inflate holds the archive-mode inflate cache, made on first use.
type inflate struct {
	once  sync.Once
	cache *cache.Cache[[]byte]
	err   error
}

func (r *Repo) inflateCache() (*cache.Cache[[]byte], error) {
	r.inflate.once.Do(func() {
		r.inflate.cache, r.inflate.err = cache.New[[]byte](DefaultInflateCacheBytes)
	})
	return r.inflate.cache, r.inflate.err
}

// closeInflate stops the inflate cache, if it was made.
func (r *Repo) closeInflate() {
	r.inflate.once.Do(func() {})
	if r.inflate.cache != nil {
		r.inflate.cache.Close()
	}
}

// archiveContent reads a deflated (archive mode) object: small ones from
// the inflate cache, larger ones by streaming, restarting the stream when
// a read goes backwards.
type archiveContent struct {
	f     *File
	cache *cache.Cache[[]byte]

	mu  sync.Mutex
	r   io.Reader
	pos int64
}

func (a *archiveContent) Size() int64  { return a.f.Meta.Size }
func (a *archiveContent) Close() error { return a.f.Close() }

func (a *archiveContent) ReadAt(p []byte, off int64) (int, error) {
	size := a.f.Meta.Size
	if off >= size {
		return 0, io.EOF
	}
	if size <= smallFile {
		b, err := a.cache.GetOrLoad(context.Background(), string(a.f.Checksum[:]), func() ([]byte, int64, error) {
			b, err := io.ReadAll(io.LimitReader(a.f.Reader(), size+1))
			if err != nil {
				return nil, 0, fmt.Errorf("file %s: %w", a.f.Checksum, flateErr(err))
			}
			if int64(len(b)) != size {
				return nil, 0, fmt.Errorf("file %s: inflates to %d bytes, header says %d: %w", a.f.Checksum, len(b), size, ErrCorrupt)
			}
			return b, int64(len(b)) + 64, nil
		})
		if err != nil {
			return 0, err
		}
		n := copy(p, b[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.r == nil || off < a.pos {
		a.r, a.pos = a.f.Reader(), 0
	}
	if off > a.pos {
		n, err := io.CopyN(io.Discard, a.r, off-a.pos)
		a.pos += n
		if err != nil {
			a.r = nil
			return 0, fmt.Errorf("file %s: %w", a.f.Checksum, flateErr(err))
		}
	}
	want := p[:min(int64(len(p)), size-off)]
	n, err := io.ReadFull(a.r, want)
	a.pos += int64(n)
	if err != nil {
		a.r = nil
		return n, fmt.Errorf("file %s: %w", a.f.Checksum, flateErr(err))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// flateErr classifies an error of an inflate stream: bad or truncated
// deflate data is corruption (the object is shorter than its header
// says); anything else (an I/O error of the object file) is returned as
// it is.
func flateErr(err error) error {
	if isFlateError(err) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

func isFlateError(err error) bool {
	var ce flate.CorruptInputError
	return errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF)
}
