package repotest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
)

// Store is everything a consumer of objects may read: metadata objects
// (compose.ObjectReader) and content (fs.Objects). *repo.Repo, MemStore
// and Faulty implement it.
type Store interface {
	ReadCommit(ctx context.Context, c repo.Checksum) (*repo.Commit, error)
	ReadDirTree(ctx context.Context, c repo.Checksum) (*repo.DirTree, error)
	ReadDirMeta(ctx context.Context, c repo.Checksum) (*repo.DirMeta, error)
	ReadFileMeta(ctx context.Context, c repo.Checksum) (*repo.FileMeta, error)
	OpenContent(ctx context.Context, c repo.Checksum) (repo.Content, error)
	VerifyContent(ctx context.Context, c repo.Checksum) error
	ContentFiles() bool
}

var (
	_ Store = (*repo.Repo)(nil)
	_ Store = (*MemStore)(nil)
	_ Store = (*Faulty)(nil)
)

// MemStore is an object store in memory, for tests that need no
// repository on disk (and no privilege): objects are kept serialized, so
// reads parse and verify as a repository's do. Its contents are not
// files (ContentFiles is false). It is safe for concurrent use.
type MemStore struct {
	mu    sync.Mutex
	meta  map[repo.ObjectName][]byte
	files map[repo.Checksum]memFile
}

type memFile struct {
	meta repo.FileMeta
	data []byte
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{meta: map[repo.ObjectName][]byte{}, files: map[repo.Checksum]memFile{}}
}

func (s *MemStore) putMeta(t repo.ObjectType, b []byte) repo.Checksum {
	c := repo.SumBytes(b)
	s.mu.Lock()
	s.meta[repo.ObjectName{Type: t, Checksum: c}] = b
	s.mu.Unlock()
	return c
}

// PutDirTree stores a dirtree.
func (s *MemStore) PutDirTree(dt *repo.DirTree) repo.Checksum {
	return s.putMeta(repo.ObjDirTree, dt.Marshal())
}

// PutDirMeta stores a dirmeta.
func (s *MemStore) PutDirMeta(m *repo.DirMeta) repo.Checksum {
	return s.putMeta(repo.ObjDirMeta, m.Marshal())
}

// PutCommit stores a commit.
func (s *MemStore) PutCommit(cm *repo.Commit) (repo.Checksum, error) {
	b, err := cm.Marshal()
	if err != nil {
		return repo.Checksum{}, err
	}
	return s.putMeta(repo.ObjCommit, b), nil
}

// PutFile stores a content object: data is a regular file's content
// (a symlink's target is m.Target).
func (s *MemStore) PutFile(m repo.FileMeta, data []byte) (repo.Checksum, error) {
	if m.IsSymlink() {
		data = nil
	}
	m.Size = int64(len(data))
	c, err := repo.FileChecksum(&m, bytes.NewReader(data))
	if err != nil {
		return c, err
	}
	s.mu.Lock()
	s.files[c] = memFile{m, bytes.Clone(data)}
	s.mu.Unlock()
	return c, nil
}

// Delete removes an object of any type.
func (s *MemStore) Delete(c repo.Checksum) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, c)
	for _, t := range []repo.ObjectType{repo.ObjCommit, repo.ObjDirTree, repo.ObjDirMeta} {
		delete(s.meta, repo.ObjectName{Type: t, Checksum: c})
	}
}

func (s *MemStore) readMeta(ctx context.Context, t repo.ObjectType, c repo.Checksum) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", t, c, err)
	}
	s.mu.Lock()
	b, ok := s.meta[repo.ObjectName{Type: t, Checksum: c}]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", t, c, repo.ErrObjectNotFound)
	}
	if repo.SumBytes(b) != c {
		return nil, fmt.Errorf("%s %s: %w", t, c, repo.ErrChecksumMismatch)
	}
	return b, nil
}

func parsed[T any](b []byte, err error, t repo.ObjectType, c repo.Checksum, parse func([]byte) (T, error)) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	v, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", t, c, err)
	}
	return v, nil
}

// ReadCommit reads a commit.
func (s *MemStore) ReadCommit(ctx context.Context, c repo.Checksum) (*repo.Commit, error) {
	b, err := s.readMeta(ctx, repo.ObjCommit, c)
	return parsed(b, err, repo.ObjCommit, c, repo.ParseCommit)
}

// ReadDirTree reads a dirtree.
func (s *MemStore) ReadDirTree(ctx context.Context, c repo.Checksum) (*repo.DirTree, error) {
	b, err := s.readMeta(ctx, repo.ObjDirTree, c)
	return parsed(b, err, repo.ObjDirTree, c, repo.ParseDirTree)
}

// ReadDirMeta reads a dirmeta.
func (s *MemStore) ReadDirMeta(ctx context.Context, c repo.Checksum) (*repo.DirMeta, error) {
	b, err := s.readMeta(ctx, repo.ObjDirMeta, c)
	return parsed(b, err, repo.ObjDirMeta, c, repo.ParseDirMeta)
}

func (s *MemStore) file(ctx context.Context, c repo.Checksum) (memFile, error) {
	if err := ctx.Err(); err != nil {
		return memFile{}, fmt.Errorf("file %s: %w", c, err)
	}
	s.mu.Lock()
	f, ok := s.files[c]
	s.mu.Unlock()
	if !ok {
		return f, fmt.Errorf("file %s: %w", c, repo.ErrObjectNotFound)
	}
	return f, nil
}

// ReadFileMeta reads a content object's metadata.
func (s *MemStore) ReadFileMeta(ctx context.Context, c repo.Checksum) (*repo.FileMeta, error) {
	f, err := s.file(ctx, c)
	if err != nil {
		return nil, err
	}
	m := f.meta
	return &m, nil
}

// OpenContent opens a regular file's content.
func (s *MemStore) OpenContent(ctx context.Context, c repo.Checksum) (repo.Content, error) {
	f, err := s.file(ctx, c)
	if err != nil {
		return nil, err
	}
	if f.meta.Mode&repo.ModeFmt != repo.ModeRegular {
		return nil, fmt.Errorf("file %s: not a regular file: %w", c, repo.ErrUnsupported)
	}
	return memContent{bytes.NewReader(f.data)}, nil
}

// VerifyContent checks a content object against its checksum.
func (s *MemStore) VerifyContent(ctx context.Context, c repo.Checksum) error {
	f, err := s.file(ctx, c)
	if err != nil {
		return err
	}
	if got, err := repo.FileChecksum(&f.meta, bytes.NewReader(f.data)); err != nil || got != c {
		return fmt.Errorf("file %s: %w", c, repo.ErrChecksumMismatch)
	}
	return nil
}

// ContentFiles is false: contents are in memory.
func (s *MemStore) ContentFiles() bool { return false }

type memContent struct{ r *bytes.Reader }

func (m memContent) ReadAt(p []byte, off int64) (int, error) { return m.r.ReadAt(p, off) }
func (m memContent) Size() int64                             { return m.r.Size() }
func (m memContent) Close() error                            { return nil }

// Node is an entry of a tree PutTree builds.
type Node struct {
	Path     string // slash-separated, no leading slash
	Mode     uint32 // full st_mode; 0: a regular file 0644
	UID, GID uint32
	Data     string // a regular file's content
	Target   string // a symlink's target
	Xattrs   []repo.Xattr
}

// PutTree stores the dirtrees, dirmetas and content objects of a tree
// and returns its root's dirtree and dirmeta. Directories that only
// appear as a path's parents are 0755 root:root.
func (s *MemStore) PutTree(nodes ...Node) (tree, meta repo.Checksum, err error) {
	type dir struct {
		meta  repo.DirMeta
		files map[string]repo.Checksum
		dirs  map[string]*dir
	}
	newDir := func() *dir {
		return &dir{meta: repo.DirMeta{Mode: repo.ModeDir | 0o755}, files: map[string]repo.Checksum{}, dirs: map[string]*dir{}}
	}
	root := newDir()
	at := func(p string) *dir {
		d := root
		if p == "" {
			return d
		}
		for _, name := range strings.Split(p, "/") {
			sub, ok := d.dirs[name]
			if !ok {
				sub = newDir()
				d.dirs[name] = sub
			}
			d = sub
		}
		return d
	}
	for _, n := range nodes {
		mode := n.Mode
		if mode == 0 {
			mode = repo.ModeRegular | 0o644
		}
		if mode&repo.ModeFmt == repo.ModeDir {
			d := at(n.Path)
			d.meta = repo.DirMeta{UID: n.UID, GID: n.GID, Mode: mode, Xattrs: n.Xattrs}
			continue
		}
		parent, name := "", n.Path
		if i := strings.LastIndexByte(n.Path, '/'); i >= 0 {
			parent, name = n.Path[:i], n.Path[i+1:]
		}
		c, err := s.PutFile(repo.FileMeta{UID: n.UID, GID: n.GID, Mode: mode, Target: n.Target, Xattrs: n.Xattrs}, []byte(n.Data))
		if err != nil {
			return tree, meta, fmt.Errorf("%s: %w", n.Path, err)
		}
		at(parent).files[name] = c
	}
	var put func(d *dir) (repo.Checksum, repo.Checksum)
	put = func(d *dir) (repo.Checksum, repo.Checksum) {
		dt := &repo.DirTree{}
		for name, c := range d.files {
			dt.Files = append(dt.Files, repo.TreeFile{Name: name, Checksum: c})
		}
		for name, sub := range d.dirs {
			t, m := put(sub)
			dt.Dirs = append(dt.Dirs, repo.TreeDir{Name: name, Tree: t, Meta: m})
		}
		sort.Slice(dt.Files, func(i, j int) bool { return dt.Files[i].Name < dt.Files[j].Name })
		sort.Slice(dt.Dirs, func(i, j int) bool { return dt.Dirs[i].Name < dt.Dirs[j].Name })
		return s.PutDirTree(dt), s.PutDirMeta(&d.meta)
	}
	tree, meta = put(root)
	return tree, meta, nil
}

// Fault is what Faulty does to the reads of one object.
type Fault struct {
	// Block, when not nil, holds every read until it is closed or the
	// read's context ends (an object that arrives late).
	Block chan struct{}
	// Delay holds every read this long, or until its context ends.
	Delay time.Duration
	// Transient fails the next reads, this many, with repo.ErrUnavailable.
	Transient int
	// Missing fails every read with repo.ErrObjectNotFound.
	Missing bool
	// Corrupt flips the content's bytes: VerifyContent fails with
	// repo.ErrChecksumMismatch, and metadata reads of the object too.
	Corrupt bool
}

// Faulty wraps a Store and injects faults into the reads of chosen
// objects. It counts every read of every object.
type Faulty struct {
	Store

	mu     sync.Mutex
	faults map[repo.Checksum]*Fault
	reads  map[repo.Checksum]int
}

// NewFaulty wraps s.
func NewFaulty(s Store) *Faulty {
	return &Faulty{Store: s, faults: map[repo.Checksum]*Fault{}, reads: map[repo.Checksum]int{}}
}

// Set sets the fault of object c, replacing any.
func (f *Faulty) Set(c repo.Checksum, ft Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[c] = &ft
}

// Clear removes the fault of object c.
func (f *Faulty) Clear(c repo.Checksum) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.faults, c)
}

// Reads reports how many reads of object c were made (failed ones too).
func (f *Faulty) Reads(c repo.Checksum) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads[c]
}

// hit applies c's fault to one read: an error, or whether to corrupt.
func (f *Faulty) hit(ctx context.Context, kind string, c repo.Checksum) (corrupt bool, err error) {
	f.mu.Lock()
	f.reads[c]++
	ft, ok := f.faults[c]
	var fault Fault
	if ok {
		fault = *ft
		if ft.Transient > 0 {
			ft.Transient--
		}
	}
	f.mu.Unlock()
	if !ok {
		return false, nil
	}
	if fault.Block != nil {
		select {
		case <-fault.Block:
		case <-ctx.Done():
			return false, fmt.Errorf("%s %s: %w", kind, c, ctx.Err())
		}
	}
	if fault.Delay > 0 {
		t := time.NewTimer(fault.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false, fmt.Errorf("%s %s: %w", kind, c, ctx.Err())
		}
	}
	switch {
	case fault.Missing:
		return false, fmt.Errorf("%s %s: %w", kind, c, repo.ErrObjectNotFound)
	case fault.Transient > 0:
		return false, fmt.Errorf("%s %s: fetch failed: %w", kind, c, repo.ErrUnavailable)
	}
	return fault.Corrupt, nil
}

func mismatch(kind string, c repo.Checksum) error {
	return fmt.Errorf("%s %s: %w", kind, c, repo.ErrChecksumMismatch)
}

// ReadCommit reads a commit, with c's fault.
func (f *Faulty) ReadCommit(ctx context.Context, c repo.Checksum) (*repo.Commit, error) {
	if bad, err := f.hit(ctx, "commit", c); err != nil || bad {
		return nil, errOr(err, mismatch("commit", c))
	}
	return f.Store.ReadCommit(ctx, c)
}

// ReadDirTree reads a dirtree, with c's fault.
func (f *Faulty) ReadDirTree(ctx context.Context, c repo.Checksum) (*repo.DirTree, error) {
	if bad, err := f.hit(ctx, "dirtree", c); err != nil || bad {
		return nil, errOr(err, mismatch("dirtree", c))
	}
	return f.Store.ReadDirTree(ctx, c)
}

// ReadDirMeta reads a dirmeta, with c's fault.
func (f *Faulty) ReadDirMeta(ctx context.Context, c repo.Checksum) (*repo.DirMeta, error) {
	if bad, err := f.hit(ctx, "dirmeta", c); err != nil || bad {
		return nil, errOr(err, mismatch("dirmeta", c))
	}
	return f.Store.ReadDirMeta(ctx, c)
}

// ReadFileMeta reads a content object's metadata, with c's fault (a
// corrupt content object's metadata still reads).
func (f *Faulty) ReadFileMeta(ctx context.Context, c repo.Checksum) (*repo.FileMeta, error) {
	if _, err := f.hit(ctx, "file", c); err != nil {
		return nil, err
	}
	return f.Store.ReadFileMeta(ctx, c)
}

// OpenContent opens a content, with c's fault: a corrupt one reads its
// bytes flipped.
func (f *Faulty) OpenContent(ctx context.Context, c repo.Checksum) (repo.Content, error) {
	bad, err := f.hit(ctx, "file", c)
	if err != nil {
		return nil, err
	}
	ct, err := f.Store.OpenContent(ctx, c)
	if err != nil || !bad {
		return ct, err
	}
	return flipped{ct}, nil
}

// VerifyContent verifies a content, with c's fault.
func (f *Faulty) VerifyContent(ctx context.Context, c repo.Checksum) error {
	bad, err := f.hit(ctx, "file", c)
	if err != nil {
		return err
	}
	if bad {
		return mismatch("file", c)
	}
	return f.Store.VerifyContent(ctx, c)
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// flipped reads a content with every byte inverted; it is never a file.
type flipped struct{ c repo.Content }

func (f flipped) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.c.ReadAt(p, off)
	for i := range p[:n] {
		p[i] ^= 0xff
	}
	return n, err
}
func (f flipped) Size() int64  { return f.c.Size() }
func (f flipped) Close() error { return f.c.Close() }

var _ io.ReaderAt = flipped{}
