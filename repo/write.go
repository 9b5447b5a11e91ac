package repo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/klauspost/compress/flate"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Transaction stages objects and refs and makes them visible together on
// Commit. It holds the repository's shared lock from Begin to Commit or
// Abort, so a prune (which takes the exclusive lock) never sees a
// half-made commit and never deletes an object the transaction decided to
// reuse. Its write methods are safe for concurrent use.
//
// Objects are written as anonymous files (O_TMPFILE) in a staging
// directory under tmp/, linked there under their final name when complete,
// and renamed into objects/ at Commit: no object is ever visible in
// objects/ half-written. A process killed mid-transaction leaves only its
// staging directory, which the next Begin (or fsck) removes.
type Transaction struct {
	r       *Repo
	unlock  func()
	name    string   // staging directory name under tmp/
	dir     *os.File // staging directory
	lockf   *os.File // tmp/<name>-lock, OFD-locked while we live
	mu      sync.Mutex
	staged  map[ObjectName]bool
	subdirs map[string]bool
	refs    []refUpdate
	metas   map[Checksum][]byte // detached metadata to write
	// fileMetas holds, in bare-user repositories, what ReadFileMeta
	// would read back from the file objects this transaction wrote (at
	// most maxFileMetas): an import's metadata index then costs no
	// open, getxattr and stat per file.
	fileMetas map[Checksum]*FileMeta
	// With core.fsync, every syncBatch bytes of small files written start
	// a syncfs in the background (one at a time), so that Commit's syncfs
	// finds most of the data on disk: unsynced counts the bytes since.
	unsynced atomic.Int64
	syncing  atomic.Bool
	bgSync   sync.WaitGroup
	done     bool
}

// syncBatch is how many bytes of small files start a background syncfs.
const syncBatch = 64 << 20

// wrote counts n bytes of a small file written, and starts a background
// syncfs once syncBatch of them are unsynced and none is running. Its
// error is not kept: Commit's own syncfs reports any.
func (tx *Transaction) wrote(n int64) {
	if !tx.r.fsync || tx.unsynced.Add(n) < syncBatch || !tx.syncing.CompareAndSwap(false, true) {
		return
	}
	tx.unsynced.Store(0)
	tx.bgSync.Add(1)
	go func() {
		defer tx.bgSync.Done()
		_ = unix.Syncfs(int(tx.dir.Fd()))
		tx.syncing.Store(false)
	}()
}

// maxFileMetas bounds Transaction.fileMetas (some 100 MiB).
const maxFileMetas = 1 << 20

// keepFileMeta records the metadata of file object c, written from m, as
// it reads back: user.ostreemeta's round trip, the size or target.
func (tx *Transaction) keepFileMeta(c Checksum, m *FileMeta) {
	if tx.r.mode != ModeBareUser {
		return
	}
	fm, err := parseOstreeMeta(marshalOstreeMeta(m))
	if err != nil {
		return
	}
	if m.IsSymlink() {
		fm.Target = m.Target
	} else {
		fm.Size = m.Size
	}
	if fm.Validate() != nil {
		return
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.fileMetas == nil {
		tx.fileMetas = map[Checksum]*FileMeta{}
	}
	if len(tx.fileMetas) < maxFileMetas {
		tx.fileMetas[c] = fm
	}
}

type refUpdate struct {
	name   RefName
	commit Checksum // zero: delete
}

func bootID() string {
	if id := os.Getenv("OSTREE_BOOTID"); id != "" {
		return id
	}
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])[:6]
}

// Begin starts a transaction.
func (r *Repo) Begin(ctx context.Context) (*Transaction, error) {
	unlock, err := r.lock.Lock(ctx, LockShared)
	if err != nil {
		return nil, err
	}
	tx := &Transaction{r: r, unlock: unlock, staged: map[ObjectName]bool{}, subdirs: map[string]bool{}, metas: map[Checksum][]byte{}}
	tmp := filepath.Join(r.path, "tmp")
	tmpPerm := os.FileMode(0o755)
	if r.mode == ModeBare {
		tmpPerm = 0o700
	}
	if err := os.MkdirAll(tmp, tmpPerm); err != nil {
		unlock()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	// Objects of a bare repository carry their real modes and xattrs:
	// only their owner may reach them (doc.go, "Exposure").
	if err := r.protectBare(); err != nil {
		unlock()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	// A killed transaction's staging directory goes now, not at the next
	// Commit: one readdir of tmp/ when there is nothing to clean.
	r.cleanTmp("")
	for attempt := 0; ; attempt++ {
		tx.name = "staging-" + bootID() + "-" + randomSuffix()
		lf, err := os.OpenFile(filepath.Join(tmp, tx.name+"-lock"), os.O_CREATE|os.O_EXCL|os.O_RDWR|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, fs.ErrExist) && attempt < 100 {
			continue
		}
		if err != nil {
			unlock()
			return nil, fmt.Errorf("begin transaction: %w", err)
		}
		if err := ofdLock(lf, unix.F_WRLCK); err != nil {
			lf.Close()
			unlock()
			return nil, fmt.Errorf("begin transaction: lock staging: %w", err)
		}
		tx.lockf = lf
		break
	}
	sp := filepath.Join(tmp, tx.name)
	if err := os.Mkdir(sp, 0o775); err != nil {
		tx.release()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	if tx.dir, err = os.Open(sp); err != nil {
		tx.release()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	return tx, nil
}

// release removes the staging directory and drops the locks.
func (tx *Transaction) release() {
	tmp := filepath.Join(tx.r.path, "tmp")
	tx.bgSync.Wait()
	if tx.dir != nil {
		tx.dir.Close()
	}
	os.RemoveAll(filepath.Join(tmp, tx.name))
	if tx.lockf != nil {
		os.Remove(filepath.Join(tmp, tx.name+"-lock"))
		tx.lockf.Close()
	}
	tx.unlock()
	tx.done = true
}

// Abort discards everything the transaction staged.
func (tx *Transaction) Abort() error {
	if tx.done {
		return nil
	}
	tx.release()
	return nil
}

// has reports whether an object is already in objects/ or staged.
func (tx *Transaction) has(t ObjectType, c Checksum) (bool, error) {
	tx.mu.Lock()
	ok := tx.staged[ObjectName{t, c}]
	tx.mu.Unlock()
	if ok {
		return true, nil
	}
	return tx.r.HasObject(t, c)
}

// stagePath makes sure staging/XX exists and returns the object's path
// relative to the staging directory.
func (tx *Transaction) stagePath(t ObjectType, c Checksum) (string, error) {
	rel := tx.r.objectRel(t, c)
	sub := rel[:2]
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if !tx.subdirs[sub] {
		if err := unix.Mkdirat(int(tx.dir.Fd()), sub, 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("staging %s: %w", sub, err)
		}
		tx.subdirs[sub] = true
	}
	return rel, nil
}

func (tx *Transaction) markStaged(t ObjectType, c Checksum) {
	tx.mu.Lock()
	tx.staged[ObjectName{t, c}] = true
	tx.mu.Unlock()
}

// tmpFile opens an anonymous file in the staging directory. link gives it
// a name once it is complete.
type tmpFile struct {
	f     *os.File
	named string // fallback: a named temporary file
}

func (tx *Transaction) newTmpFile() (*tmpFile, error) {
	fd, err := unix.Openat(int(tx.dir.Fd()), ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return &tmpFile{f: os.NewFile(uintptr(fd), "tmpfile")}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("staging tmpfile: %w", err)
	}
	for i := 0; i < 100; i++ {
		name := "tmpobject." + randomSuffix()
		fd, err := unix.Openat(int(tx.dir.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("staging tmpfile: %w", err)
		}
		return &tmpFile{f: os.NewFile(uintptr(fd), name), named: name}, nil
	}
	return nil, fmt.Errorf("staging tmpfile: no free name")
}

// discard drops an unlinked or named temporary file.
func (t *tmpFile) discard(dfd int) {
	t.f.Close()
	if t.named != "" {
		_ = unix.Unlinkat(dfd, t.named, 0)
	}
}

// link names the complete file rel in the staging directory.
func (t *tmpFile) link(dfd int, rel string) error {
	var err error
	if t.named != "" {
		err = unix.Renameat(dfd, t.named, dfd, rel)
	} else {
		// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc works for anyone.
		err = unix.Linkat(int(t.f.Fd()), "", dfd, rel, unix.AT_EMPTY_PATH)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
			err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", t.f.Fd()), dfd, rel, unix.AT_SYMLINK_FOLLOW)
		}
		if errors.Is(err, unix.EEXIST) {
			err = nil // staged concurrently by another writer of this transaction
		}
	}
	t.f.Close()
	if err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	return nil
}

// WriteMeta stores a metadata object (dirtree, dirmeta, commit) given its
// serialized bytes and returns its checksum.
func (tx *Transaction) WriteMeta(t ObjectType, data []byte) (Checksum, error) {
	c := SumBytes(data)
	if ok, err := tx.has(t, c); err != nil || ok {
		return c, err
	}
	rel, err := tx.stagePath(t, c)
	if err != nil {
		return c, err
	}
	tf, err := tx.newTmpFile()
	if err != nil {
		return c, err
	}
	dfd := int(tx.dir.Fd())
	if _, err := tf.f.Write(data); err != nil {
		tf.discard(dfd)
		return c, fmt.Errorf("%s %s: %w", t, c.Str(), err)
	}
	if err := tf.f.Chmod(0o644); err != nil {
		tf.discard(dfd)
		return c, fmt.Errorf("%s %s: %w", t, c.Str(), err)
	}
	if err := tf.link(dfd, rel); err != nil {
		return c, err
	}
	tx.markStaged(t, c)
	return c, nil
}

// WriteDirMeta stores a dirmeta object.
func (tx *Transaction) WriteDirMeta(m *DirMeta) (Checksum, error) {
	return tx.WriteMeta(ObjDirMeta, m.Marshal())
}

// WriteDirTree stores a dirtree object.
func (tx *Transaction) WriteDirTree(t *DirTree) (Checksum, error) {
	return tx.WriteMeta(ObjDirTree, t.Marshal())
}

// WriteCommit stores a commit object.
func (tx *Transaction) WriteCommit(c *Commit) (Checksum, error) {
	b, err := c.Marshal()
	if err != nil {
		return Checksum{}, err
	}
	return tx.WriteMeta(ObjCommit, b)
}

// SetCommitMeta sets a commit's detached metadata, written at Commit.
func (tx *Transaction) SetCommitMeta(commit Checksum, m Metadata) error {
	b, err := MarshalMetadata(m)
	if err != nil {
		return fmt.Errorf("commitmeta %s: %w", commit.Str(), err)
	}
	tx.mu.Lock()
	tx.metas[commit] = b
	tx.mu.Unlock()
	return nil
}

// SetRef sets (or, with a zero checksum, deletes) a ref at Commit.
func (tx *Transaction) SetRef(name RefName, commit Checksum) {
	tx.mu.Lock()
	tx.refs = append(tx.refs, refUpdate{name, commit})
	tx.mu.Unlock()
}

// FileChecksum computes the checksum of a content object from its metadata
// and content, without writing anything.
func FileChecksum(m *FileMeta, content io.Reader) (Checksum, error) {
	if err := m.Validate(); err != nil {
		return Checksum{}, err
	}
	h := sha256.New()
	h.Write(m.hashedHeader())
	if !m.IsSymlink() && content != nil {
		if _, err := io.Copy(h, content); err != nil {
			return Checksum{}, err
		}
	}
	return Checksum(h.Sum(nil)), nil
}

// WriteFile stores a content object. For a regular file, content must
// yield exactly m.Size bytes; for a symlink it is ignored. It returns the
// object's checksum. The object is hashed while it is written, so content
// is read once.
func (tx *Transaction) WriteFile(m *FileMeta, content io.Reader) (Checksum, error) {
	if err := m.Validate(); err != nil {
		return Checksum{}, err
	}
	if m.Size < 0 {
		return Checksum{}, fmt.Errorf("file size %d: %w", m.Size, ErrCorrupt)
	}
	if tx.r.mode == ModeBareUserOnly {
		canonicalize(m)
	}
	if m.IsSymlink() {
		m.Size = 0
		if tx.r.mode == ModeBare || tx.r.mode == ModeBareUserOnly {
			return tx.writeSymlink(m)
		}
		content = strings.NewReader("")
	}
	dfd := int(tx.dir.Fd())
	tf, err := tx.newTmpFile()
	if err != nil {
		return Checksum{}, err
	}
	c, err := tx.fillFile(tf.f, m, content)
	if err != nil {
		tf.discard(dfd)
		return c, err
	}
	if ok, err := tx.has(ObjFile, c); err != nil || ok {
		tf.discard(dfd)
		return c, err
	}
	rel, err := tx.stagePath(ObjFile, c)
	if err != nil {
		tf.discard(dfd)
		return c, err
	}
	if err := tf.link(dfd, rel); err != nil {
		return c, err
	}
	tx.markStaged(ObjFile, c)
	tx.keepFileMeta(c, m)
	return c, nil
}

// countingWriter counts bytes.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// fillFile writes the object's bytes for this repository mode into f and
// returns the checksum.
func (tx *Transaction) fillFile(f *os.File, m *FileMeta, content io.Reader) (Checksum, error) {
	h := sha256.New()
	h.Write(m.hashedHeader())
	cnt := &countingWriter{}
	fd := int(f.Fd())
	var err error
	switch tx.r.mode {
	case ModeArchive:
		if _, err = f.Write(m.archiveHeader()); err != nil {
			return Checksum{}, fmt.Errorf("write object: %w", err)
		}
		if !m.IsSymlink() {
			zw, err := flate.NewWriter(f, tx.r.level)
			if err != nil {
				return Checksum{}, fmt.Errorf("deflate: %w", err)
			}
			if _, err := io.Copy(io.MultiWriter(zw, h, cnt), content); err != nil {
				return Checksum{}, fmt.Errorf("write object: %w", err)
			}
			if err := zw.Close(); err != nil {
				return Checksum{}, fmt.Errorf("write object: %w", err)
			}
		}
		err = f.Chmod(0o644)
	case ModeBareUser:
		if m.IsSymlink() {
			_, err = io.WriteString(f, m.Target+"\x00")
		} else {
			err = copyContent(f, m.Size, tx.r.fsync, content, h, cnt)
		}
		if err != nil {
			return Checksum{}, fmt.Errorf("write object: %w", err)
		}
		mode := uint32(0o644)
		if !m.IsSymlink() {
			mode = bareUserMode(m.Mode)
		}
		if err = unix.Fchmod(fd, mode); err == nil {
			err = unix.Fsetxattr(fd, "user.ostreemeta", marshalOstreeMeta(m), 0)
		}
	default: // bare, bare-user-only: content plus real metadata
		if err = copyContent(f, m.Size, tx.r.fsync, content, h, cnt); err != nil {
			return Checksum{}, fmt.Errorf("write object: %w", err)
		}
		if tx.r.mode == ModeBare {
			if err = unix.Fchown(fd, int(m.UID), int(m.GID)); err == nil {
				for _, x := range m.Xattrs {
					if err = unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
						err = fmt.Errorf("xattr %s: %w", x.Name, err)
						break
					}
				}
			}
		}
		if err == nil {
			err = unix.Fchmod(fd, m.Mode&0o7777)
		}
	}
	if err != nil {
		return Checksum{}, fmt.Errorf("write object: %w", err)
	}
	if !m.IsSymlink() && cnt.n != m.Size {
		return Checksum{}, fmt.Errorf("write object: content is %d bytes, expected %d: %w", cnt.n, m.Size, io.ErrUnexpectedEOF)
	}
	if m.Size < pipeMin {
		tx.wrote(cnt.n)
	}
	if tx.r.mode != ModeArchive {
		if err := futimensZero(fd); err != nil {
			return Checksum{}, fmt.Errorf("write object: mtime: %w", err)
		}
	}
	return Checksum(h.Sum(nil)), nil
}

// writeSymlink stores a symlink as a real symlink (bare, bare-user-only).
func (tx *Transaction) writeSymlink(m *FileMeta) (Checksum, error) {
	c, err := FileChecksum(m, nil)
	if err != nil {
		return c, err
	}
	if ok, err := tx.has(ObjFile, c); err != nil || ok {
		return c, err
	}
	rel, err := tx.stagePath(ObjFile, c)
	if err != nil {
		return c, err
	}
	dfd := int(tx.dir.Fd())
	tmp := "tmplink." + randomSuffix()
	if err := unix.Symlinkat(m.Target, dfd, tmp); err != nil {
		return c, fmt.Errorf("symlink object: %w", err)
	}
	fail := func(err error) (Checksum, error) {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return c, fmt.Errorf("symlink object: %w", err)
	}
	if tx.r.mode == ModeBare {
		if err := unix.Fchownat(dfd, tmp, int(m.UID), int(m.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fail(err)
		}
		p := filepath.Join(tx.dir.Name(), tmp)
		for _, x := range m.Xattrs {
			if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
				return fail(fmt.Errorf("xattr %s: %w", x.Name, err))
			}
		}
	}
	if err := unix.Renameat(dfd, tmp, dfd, rel); err != nil {
		return fail(err)
	}
	tx.markStaged(ObjFile, c)
	return c, nil
}

// Commit makes the staged objects, detached metadata and refs visible, in
// that order, and ends the transaction. Every object appears in objects/
// only after everything it names, so a process killed at any point of
// Commit leaves no commit that fsck would call broken:
//
//   - files, dirmetas and dirtrees first, then the detached metadata, then
//     the commits;
//   - the commits rank by rank, a commit after the commits of this
//     transaction that it names (its related list and its parent): an
//     image's manifest commit after its layer commits;
//   - the refs last.
//
// A kill stops the process between two renames, and the kernel already
// shows the earlier ones. Across a power loss POSIX orders nothing that is
// not synced, so with core.fsync the directories that received a rank are
// fsynced before the next rank is renamed (ext4 and xfs keep the order of
// metadata operations in their journal anyway; the syncs are for the
// others). An import costs one extra round of directory syncs: its layer
// commits, then its manifest commit.
func (tx *Transaction) Commit() error {
	if tx.done {
		return fmt.Errorf("commit transaction: already ended")
	}
	defer tx.release()
	r := tx.r
	if r.fsync {
		tx.bgSync.Wait()
		if err := unix.Syncfs(int(tx.dir.Fd())); err != nil {
			return fmt.Errorf("commit transaction: syncfs: %w", err)
		}
	}
	var objs, commits []ObjectName
	for n := range tx.staged {
		if n.Type == ObjCommit {
			commits = append(commits, n)
		} else {
			objs = append(objs, n)
		}
	}
	touched := map[string]bool{}
	if err := tx.moveObjects(objs, touched); err != nil {
		return err
	}
	// Detached metadata before its commit: a commit never appears without
	// it, and one left alone by a crash is inert.
	for c, b := range tx.metas {
		if err := tx.objectSubdir(r.objectRel(ObjCommitMeta, c)[:2], touched); err != nil {
			return err
		}
		if err := writeFileAtomic(r.ObjectPath(ObjCommitMeta, c), b, 0o644, r.fsync); err != nil {
			return fmt.Errorf("commit transaction: commitmeta %s: %w", c.Str(), err)
		}
	}
	for _, rank := range tx.commitRanks(commits) {
		// Everything the rank's commits name is in place: make it durable
		// first.
		if err := tx.syncObjectDirs(touched); err != nil {
			return err
		}
		touched = map[string]bool{}
		for _, n := range rank {
			if err := tx.moveObject(n, touched); err != nil {
				return err
			}
			_ = unix.Unlinkat(int(r.objects.Fd()), r.objectRel(ObjTombstone, n.Checksum), 0)
		}
	}
	if err := tx.syncObjectDirs(touched); err != nil {
		return err
	}
	for _, u := range tx.refs {
		var err error
		if u.commit.IsZero() {
			err = r.deleteRef(u.name)
		} else {
			err = r.writeRef(u.name, u.commit)
		}
		if err != nil {
			return fmt.Errorf("commit transaction: %w", err)
		}
	}
	r.cleanTmp(tx.name)
	return nil
}

func objectLess(a, b ObjectName) bool {
	if a.Type != b.Type {
		return a.Type < b.Type
	}
	return string(a.Checksum[:]) < string(b.Checksum[:])
}

// moveObjects renames the staged objects objs (no commits) into
// objects/, their objects/XX directories made first, and records the XX
// in touched. Nothing names them but the commits renamed after them, so
// their order does not matter: each of GOMAXPROCS workers renames the
// objects of its share of the XX directories, by name.
func (tx *Transaction) moveObjects(objs []ObjectName, touched map[string]bool) error {
	r := tx.r
	bySub := map[string][]ObjectName{}
	for _, n := range objs {
		sub := r.objectRel(n.Type, n.Checksum)[:2]
		if err := tx.objectSubdir(sub, touched); err != nil {
			return err
		}
		bySub[sub] = append(bySub[sub], n)
	}
	subs := make([]string, 0, len(bySub))
	for sub := range bySub {
		subs = append(subs, sub)
	}
	sort.Strings(subs)
	workers := min(runtime.GOMAXPROCS(0), len(subs))
	var g errgroup.Group
	for w := range workers {
		g.Go(func() error {
			for i := w; i < len(subs); i += workers {
				ns := bySub[subs[i]]
				sort.Slice(ns, func(i, j int) bool { return objectLess(ns[i], ns[j]) })
				for _, n := range ns {
					if err := tx.rename(n); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// moveObject renames one staged object into objects/, creating its
// objects/XX directory if needed, and records XX in touched.
func (tx *Transaction) moveObject(n ObjectName, touched map[string]bool) error {
	rel := tx.r.objectRel(n.Type, n.Checksum)
	if err := tx.objectSubdir(rel[:2], touched); err != nil {
		return err
	}
	return tx.rename(n)
}

// rename renames one staged object into its objects/XX directory, which
// exists.
func (tx *Transaction) rename(n ObjectName) error {
	r := tx.r
	sdfd, odfd := int(tx.dir.Fd()), int(r.objects.Fd())
	rel := r.objectRel(n.Type, n.Checksum)
	err := unix.Renameat2(sdfd, rel, odfd, rel, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		err = nil // written meanwhile by another transaction: same bytes
	}
	if err != nil {
		return fmt.Errorf("commit transaction: %s %s: %w", n.Type, n.Checksum.Str(), err)
	}
	return nil
}

// objectSubdir makes sure objects/sub exists and records it in touched.
func (tx *Transaction) objectSubdir(sub string, touched map[string]bool) error {
	r := tx.r
	if !touched[sub] {
		if _, ok := r.subdirs.Load(sub); !ok {
			if err := unix.Mkdirat(int(r.objects.Fd()), sub, 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("commit transaction: objects/%s: %w", sub, err)
			}
			r.subdirs.Store(sub, true)
		}
		touched[sub] = true
	}
	return nil
}

// commitRanks orders the staged commits so that each comes after the
// staged commits it names (related list, parent): rank 0 names none of
// them, rank k+1 names one of rank k. A staged commit that cannot be read
// back names nothing (its rename then fails or it is as good as absent).
func (tx *Transaction) commitRanks(commits []ObjectName) [][]ObjectName {
	deps := map[Checksum][]Checksum{}
	for _, n := range commits {
		b, err := tx.r.readObjectBytesIn(int(tx.dir.Fd()), ObjCommit, n.Checksum)
		if err != nil {
			continue
		}
		cm, err := ParseCommit(b)
		if err != nil {
			continue
		}
		deps[n.Checksum] = namedCommits(n.Checksum, cm, func(c Checksum) bool { return tx.staged[ObjectName{ObjCommit, c}] })
	}
	nodes := make([]Checksum, len(commits))
	for i, n := range commits {
		nodes[i] = n.Checksum
	}
	level := pathRanks(nodes, deps)
	var ranks [][]ObjectName
	for _, n := range commits {
		l := level[n.Checksum]
		for len(ranks) <= l {
			ranks = append(ranks, nil)
		}
		ranks[l] = append(ranks[l], n)
	}
	for _, rk := range ranks {
		sort.Slice(rk, func(i, j int) bool { return objectLess(rk[i], rk[j]) })
	}
	return ranks
}

func (tx *Transaction) syncObjectDirs(dirs map[string]bool) error {
	if !tx.r.fsync {
		return nil
	}
	for sub := range dirs {
		if err := syncDir(filepath.Join(tx.r.path, "objects", sub)); err != nil {
			return fmt.Errorf("commit transaction: sync objects/%s: %w", sub, err)
		}
	}
	return tx.r.objects.Sync()
}

// stagingGrace is how old a staging directory without a lock file, or a
// lock file without its directory, must be before cleanTmp takes it: the
// process making one makes the other microseconds later (libostree: the
// directory, then its lock; we: the lock, then the directory).
const stagingGrace = 10 * time.Minute

// cleanTmp removes the staging directories of dead processes, of any boot,
// and returns their names. A staging directory's owner holds an OFD write
// lock on tmp/<dir>-lock for as long as it lives (libostree and we alike),
// so one whose lock can be taken has no live owner, and nothing outside it
// names its objects. The lock is taken without blocking and held until
// the directory and its lock file are gone; a live owner's directory is
// never touched. keep, our own, is skipped.
func (r *Repo) cleanTmp(keep string) []string {
	tmp := filepath.Join(r.path, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return nil
	}
	dirs := map[string]bool{}
	for _, e := range ents {
		if e.IsDir() {
			dirs[e.Name()] = true
		}
	}
	old := func(name string) bool {
		st, err := os.Lstat(filepath.Join(tmp, name))
		return err == nil && time.Since(st.ModTime()) > stagingGrace
	}
	var removed []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "staging-") || name == keep {
			continue
		}
		dir, isLock := strings.CutSuffix(name, "-lock")
		switch {
		case isLock && (dir == keep || dirs[dir]):
			continue // handled with its directory
		case isLock:
			// A lock without its directory: left by a kill between the
			// two, or its directory is about to be made.
			if !e.Type().IsRegular() || !old(name) {
				continue
			}
		case !e.IsDir():
			continue
		}
		lockPath := filepath.Join(tmp, dir+"-lock")
		lf, err := os.OpenFile(lockPath, os.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if errors.Is(err, fs.ErrNotExist) && !isLock && old(dir) {
			// A directory without a lock: left by a kill between mkdir
			// and lock. Take it over.
			lf, err = os.OpenFile(lockPath, os.O_CREATE|os.O_EXCL|os.O_RDWR|unix.O_CLOEXEC, 0o600)
		}
		if err != nil {
			continue
		}
		if ofdLock(lf, unix.F_WRLCK) == nil && sameFile(lf, lockPath) {
			if err := os.RemoveAll(filepath.Join(tmp, dir)); err == nil {
				if !isLock {
					removed = append(removed, dir)
				}
				os.Remove(lockPath)
			}
		}
		lf.Close()
	}
	return removed
}

// sameFile reports whether f is still the file at path: a lock taken on a
// file its owner has just unlinked protects nothing.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

// CleanStaging removes the staging directories of dead processes (see
// Transaction) and returns their names under tmp/. It is safe while other
// processes write: a live transaction's directory is locked and kept.
func (r *Repo) CleanStaging() []string {
	return r.cleanTmp("")
}

// Repo returns the transaction's repository.
func (tx *Transaction) Repo() *Repo { return tx.r }

// futimensZero sets a file's atime and mtime to the epoch, as libostree
// does for objects: utimensat(fd, NULL, ...) is futimens.
func futimensZero(fd int) error {
	ts := [2]unix.Timespec{}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
