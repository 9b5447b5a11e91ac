package compose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// Metadata keys of the commits this package writes.
const (
	KeyMode      = "ostree-mount.mode"       // layered, precomposed or squashed (manifest commits)
	KeyManifest  = "ostree-mount.manifest"   // manifest JSON
	KeyConfig    = "ostree-mount.config"     // config JSON
	KeyDigest    = "ostree-mount.digest"     // manifest digest
	KeySource    = "ostree-mount.source"     // the import source
	KeyDiffID    = "ostree-mount.diff-id"    // layer commits: diff_id
	KeyChainID   = "ostree-mount.chain-id"   // layer commits that depend on their base
	KeyXattrs    = "ostree-mount.has-xattrs" // manifest commits: whether any entry has xattrs
	KeyHardlinks = "ostree-mount.hardlinks"  // a{ss}: path -> first path of its hardlink group
	// KeyTarSplit (layer commits' detached metadata, ay): the zstd
	// record of the layer tar's bytes that OSTree drops (package image).
	KeyTarSplit = "ostree-mount.tar-split"
)

// Storage modes of a manifest commit.
const (
	ModeLayered     = "layered"
	ModePrecomposed = "precomposed"
	ModeSquashed    = "squashed"
)

// ErrNotExist is wrapped by lookups of missing paths.
var ErrNotExist = errors.New("no such file or directory")

// ErrNotDir is wrapped when a path component is not a directory.
var ErrNotDir = errors.New("not a directory")

// Attr is the metadata of a composed entry, as stat reports it.
type Attr struct {
	Mode     uint32 // full st_mode
	UID, GID uint32
	Rdev     uint64
	Size     int64
	Target   string // symlink target
	Xattrs   []repo.Xattr
}

// IsDir reports whether a describes a directory.
func (a *Attr) IsDir() bool { return a.Mode&repo.ModeFmt == repo.ModeDir }

// layerDir is one layer's directory that contributes to a composed one.
type layerDir struct {
	layer      int // index of the layer in the tree, base 0
	tree, meta repo.Checksum
}

// Entry is one name in a composed directory.
type Entry struct {
	Name string
	Attr
	// Object is the content object of a file, symlink or special file.
	Object repo.Checksum
	// Layer is the index of the layer that provides a non-directory.
	Layer int
	// dirs are the contributing layer directories, base first (directories only).
	dirs []layerDir
	// key identifies the composed directory (directories only).
	key string
	// nsub is the number of subdirectories, counted when the parent was
	// composed (hasNsub); the root's is counted when asked.
	nsub    int
	hasNsub bool
	// err is why the entry's own metadata could not be read (a damaged
	// object, see Damaged): the entry is listed, by name and type when
	// known, but its stat and contents fail with err.
	err error
}

// Err returns why the entry's metadata could not be read, or nil. Such an
// entry is still listed in its directory; everything that needs its
// metadata or content fails with this error.
func (e *Entry) Err() error { return e.err }

// Damaged reports whether err says that an object is missing or corrupt.
// Such an error is permanent and concerns that object alone: a directory
// holding the object is still composed, with the error kept on the entry
// that needs it. Other errors (descriptors, memory, cancellation, an
// object that is unavailable for now: repo.ErrUnavailable, whatever else
// it wraps) concern the process or the moment and fail the operation,
// which a retry may then pass.
func Damaged(err error) bool {
	if errors.Is(err, repo.ErrUnavailable) {
		return false
	}
	return errors.Is(err, repo.ErrObjectNotFound) || errors.Is(err, repo.ErrCorrupt) || errors.Is(err, repo.ErrChecksumMismatch)
}

// Key identifies a directory's composed content: directories with equal
// keys have equal entries. It is empty for non-directories.
func (e *Entry) Key() string { return e.key }

// Dir is a composed directory.
type Dir struct {
	Entries []*Entry // sorted by name (strcmp order)
	size    int64
}

// Lookup finds an entry by name.
func (d *Dir) Lookup(name string) (*Entry, bool) {
	i := sort.Search(len(d.Entries), func(i int) bool { return d.Entries[i].Name >= name })
	if i < len(d.Entries) && d.Entries[i].Name == name {
		return d.Entries[i], true
	}
	return nil, false
}

// Tree composes a commit's tree, directory by directory. For a layered
// manifest commit it overlays the layer commits of its related list by
// the OCI rules; for any other commit it serves the commit's own tree,
// decoding only this package's side channels. It is safe for concurrent
// use, and never walks more than the directories asked for.
type Tree struct {
	r       ObjectReader
	commit  repo.Checksum
	info    *repo.Commit
	layered bool
	root    *Entry
	caches  *Caches
	bg      sync.WaitGroup // background index loads (loadedIndex)
	// links holds, per layer, the hardlink groups its tar made (path ->
	// group leader). For a plain commit (not an image) it is nil and
	// identical file objects count as hardlinks, as in ostree checkouts.
	links []map[string]string
	image bool
	// trusted says, per layer, whether its commit was made by import, the
	// only commits whose side channels (special.go) are honoured.
	trusted []bool

	prefetch *prefetcher // nil: no prefetching

	groupsOnce sync.Once
	groups     []map[string][]string // per layer: group leader -> member paths

	// indexes holds, per layer (one for a plain commit), the metadata
	// index its commit names (index.go), loaded on first use.
	indexes []*indexSlot
	log     func(format string, args ...any)
}

// Options configure Open.
type Options struct {
	// Caches hold composed directories, subdirectory counts, hardlink
	// groups' link counts and dirmetas; a set may be shared between trees
	// (keys are content-derived). If nil, the tree makes its own of
	// CacheBytes (0: DefaultCacheBytes).
	Caches     *Caches
	CacheBytes int64
	// Prefetch is the number of workers that compose the subdirectories
	// of a listed directory ahead of need (see Tree.Prefetch); 0
	// disables prefetching.
	Prefetch int
	// Logf, if set, is told what the tree could not use and worked
	// around (an unreadable metadata index).
	Logf func(format string, args ...any)
	// NoIndex makes the tree read every file's metadata from its object,
	// ignoring metadata indexes.
	NoIndex bool
}

// Open prepares the composition of commit c. It reads only the commit and
// the layer commits' headers.
//
// r is usually the *repo.Repo; an importer passes its *repo.Transaction,
// which also reads what it has staged.
func Open(r ObjectReader, c repo.Checksum, o Options) (*Tree, error) {
	cm, err := r.ReadCommit(context.Background(), c)
	if err != nil {
		return nil, err
	}
	mode, isImage := cm.Metadata.String(KeyMode)
	if mode != ModeLayered {
		t, err := newTree(r, c, cm, false, []layerDir{{0, cm.RootTree, cm.RootMeta}}, []bool{ImportMade(cm)}, o)
		if err != nil {
			return nil, err
		}
		if !o.NoIndex {
			t.indexes = []*indexSlot{indexFor(c, cm)}
		}
		if isImage {
			t.image = true
			t.links = []map[string]string{readLinks(cm)}
		}
		return t, nil
	}
	var layers []repo.Checksum
	for _, rel := range cm.Related {
		layers = append(layers, rel.Commit)
	}
	return openLayers(r, c, cm, layers, o)
}

// OpenLayers composes the given layer commits, base first, as a layered
// manifest commit naming them would be.
func OpenLayers(r ObjectReader, layers []repo.Checksum, o Options) (*Tree, error) {
	return openLayers(r, repo.Checksum{}, nil, layers, o)
}

func openLayers(r ObjectReader, c repo.Checksum, cm *repo.Commit, layers []repo.Checksum, o Options) (*Tree, error) {
	roots := make([]layerDir, 0, len(layers))
	links := make([]map[string]string, 0, len(layers))
	trusted := make([]bool, 0, len(layers))
	indexes := make([]*indexSlot, 0, len(layers))
	for i, l := range layers {
		lc, err := r.ReadCommit(context.Background(), l)
		if err != nil {
			return nil, fmt.Errorf("layer commit %s: %w", l.Str(), err)
		}
		roots = append(roots, layerDir{i, lc.RootTree, lc.RootMeta})
		links = append(links, readLinks(lc))
		trusted = append(trusted, ImportMade(lc))
		indexes = append(indexes, indexFor(l, lc))
	}
	t, err := newTree(r, c, cm, true, roots, trusted, o)
	if err != nil {
		return nil, err
	}
	t.image, t.links = true, links
	if !o.NoIndex {
		t.indexes = indexes
	}
	return t, nil
}

func newTree(r ObjectReader, c repo.Checksum, cm *repo.Commit, layered bool, roots []layerDir, trusted []bool, o Options) (*Tree, error) {
	t := &Tree{r: r, commit: c, info: cm, caches: o.Caches, layered: layered, trusted: trusted, log: o.Logf}
	if t.caches == nil {
		size := o.CacheBytes
		if size <= 0 {
			size = DefaultCacheBytes
		}
		var err error
		if t.caches, err = NewCaches(size); err != nil {
			return nil, err
		}
	}
	if o.Prefetch > 0 {
		t.prefetch = newPrefetcher(t, o.Prefetch)
	}
	root := &Entry{Name: "/", dirs: roots}
	root.key = t.dirKey(roots)
	if err := t.dirAttr(context.Background(), root); err != nil {
		return nil, err
	}
	t.root = root
	return t, nil
}

// Prefetch asks for the subdirectories of d, a directory being listed,
// to be composed in the background, when the tree was opened with
// prefetch workers. A walk that lists a directory usually descends into
// its subdirectories next.
func (t *Tree) Prefetch(d *Dir) {
	if t.prefetch != nil {
		t.prefetchBelow(d, 1)
	}
}

func (t *Tree) prefetchBelow(d *Dir, level int) {
	var dirs []*Entry
	for _, e := range d.Entries {
		if e.IsDir() {
			if _, ok := t.caches.dirs.Get(e.key); !ok {
				dirs = append(dirs, e)
			}
		}
	}
	if len(dirs) > 0 {
		t.prefetch.push(dirs, level)
	}
}

// Close stops prefetching; the tree stays usable.
func (t *Tree) Close() {
	if t.prefetch != nil {
		t.prefetch.close()
	}
	t.bg.Wait()
}

// Commit returns the commit being composed.
func (t *Tree) Commit() (repo.Checksum, *repo.Commit) { return t.commit, t.info }

// Layered reports whether the tree overlays layers.
func (t *Tree) Layered() bool { return t.layered }

// Reader returns what the tree reads objects from.
func (t *Tree) Reader() ObjectReader { return t.r }

// Root returns the root directory's entry.
func (t *Tree) Root() *Entry { return t.root }

// dirKey identifies a composed directory in the cache, which trees share:
// the same objects compose differently in a layered tree, and with or
// without side channels.
func (t *Tree) dirKey(dirs []layerDir) string {
	h := sha256.New()
	if t.layered {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	for _, d := range dirs {
		trust := byte(0)
		if t.isTrusted(d.layer) {
			trust = 1
		}
		h.Write([]byte{byte(d.layer >> 8), byte(d.layer), trust})
		h.Write(d.tree[:])
		h.Write(d.meta[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// dirMeta reads a dirmeta through the cache.
func (t *Tree) dirMeta(ctx context.Context, c repo.Checksum) (*repo.DirMeta, error) {
	return t.caches.metas.GetOrLoad(ctx, string(c[:]), func() (*repo.DirMeta, int64, error) {
		m, err := t.r.ReadDirMeta(ctx, c)
		if err != nil {
			return nil, 0, err
		}
		return m, 64 + int64(xattrBytes(m.Xattrs)), nil
	})
}

func xattrBytes(xs []repo.Xattr) int {
	n := 0
	for _, x := range xs {
		n += len(x.Name) + len(x.Value) + 16
	}
	return n
}

// ImportMade reports whether import made commit cm (a layer commit or a
// manifest commit), the only commits whose side-channel xattrs
// (special.go) mean anything. `ostree-mount commit` refuses metadata keys
// in this package's namespace, so a commit of a user's tree is never
// taken for one.
func ImportMade(cm *repo.Commit) bool {
	for _, k := range []string{KeyMode, KeyDiffID, KeyXattrs} {
		if _, ok := cm.Metadata.Get(k); ok {
			return true
		}
	}
	return false
}

// isTrusted reports whether layer i's side channels are honoured.
func (t *Tree) isTrusted(i int) bool { return i < len(t.trusted) && t.trusted[i] }

// implicitKind returns "" for an explicit directory, else the value of
// its ImplicitXattr: "1" (an implicit parent) or "w" (one holding only
// whiteouts).
func implicitKind(m *repo.DirMeta) string {
	for _, x := range m.Xattrs {
		if x.Name == ImplicitXattr {
			return string(x.Value)
		}
	}
	return ""
}

// dirAttr sets a directory entry's attributes: those of its topmost
// explicit layer directory, or 0755 root:root if every one is implicit.
func (t *Tree) dirAttr(ctx context.Context, e *Entry) error {
	e.Attr = Attr{Mode: repo.ModeDir | 0o755}
	for i := len(e.dirs) - 1; i >= 0; i-- {
		m, err := t.dirMeta(ctx, e.dirs[i].meta)
		if err != nil {
			return err
		}
		trusted := t.isTrusted(e.dirs[i].layer)
		if t.layered && trusted && implicitKind(m) != "" {
			continue
		}
		own := m.Xattrs
		if trusted {
			own, _, _ = splitPrivate(m.Xattrs)
		}
		e.Attr = Attr{Mode: m.Mode, UID: m.UID, GID: m.GID, Xattrs: own}
		break
	}
	return nil
}

// whiteoutOnly reports whether every layer directory of e holds nothing
// but whiteouts, so that the directory does not exist in the image.
func (t *Tree) whiteoutOnly(ctx context.Context, e *Entry) (bool, error) {
	var first error
	for _, d := range e.dirs {
		m, err := t.dirMeta(ctx, d.meta)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if !t.isTrusted(d.layer) || implicitKind(m) != "w" {
			return false, nil
		}
	}
	return first == nil, first
}

// fileAttr reads a content object's attributes. They are not cached on
// their own: the composed directory that holds them is, and a cache
// insertion per file would cost more than the read it saves.
func (t *Tree) fileAttr(ctx context.Context, c repo.Checksum, layer int) (*Attr, error) {
	fm, err := t.fileMeta(ctx, c, layer)
	if err != nil {
		return nil, err
	}
	if !t.isTrusted(layer) {
		// A user's own file: its xattrs are data, whatever their names.
		a := &Attr{Mode: fm.Mode, UID: fm.UID, GID: fm.GID, Size: fm.Size, Target: fm.Target, Xattrs: fm.Xattrs}
		if fm.IsSymlink() {
			a.Size = int64(len(fm.Target))
		}
		return a, nil
	}
	a, err := attrFromFile(fm)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", c, err)
	}
	return a, nil
}

// fileMeta reads a content object's metadata: from the metadata index of
// the layer that provides it when there is one (no object read, and for a
// remote no fetch), else from the object.
func (t *Tree) fileMeta(ctx context.Context, c repo.Checksum, layer int) (*repo.FileMeta, error) {
	if layer < len(t.indexes) {
		if idx := t.loadIndex(t.indexes[layer]); idx != nil {
			fm, err := idx.Lookup(c)
			if err != nil {
				return nil, fmt.Errorf("layer %d: %w", layer, err)
			}
			if fm != nil {
				return fm, nil
			}
		}
	}
	return t.r.ReadFileMeta(ctx, c)
}

func attrFromFile(fm *repo.FileMeta) (*Attr, error) {
	own, special, _ := splitPrivate(fm.Xattrs)
	a := &Attr{Mode: fm.Mode, UID: fm.UID, GID: fm.GID, Size: fm.Size, Target: fm.Target, Xattrs: own}
	if fm.IsSymlink() {
		a.Size = int64(len(fm.Target))
	}
	if special != nil && fm.Mode&repo.ModeFmt == repo.ModeRegular {
		s, err := ParseSpecial(special)
		if err != nil {
			return nil, err
		}
		a.Mode = s.Mode() | fm.Mode&0o7777
		a.Rdev = s.Rdev()
		a.Size = 0
	}
	return a, nil
}

// ReadDir composes directory e. A caller whose ctx ends stops waiting;
// the composition, which other callers may be waiting on, goes on without
// its cancellation.
func (t *Tree) ReadDir(ctx context.Context, e *Entry) (*Dir, error) {
	if e.err != nil {
		return nil, e.err
	}
	if !e.IsDir() {
		return nil, fmt.Errorf("%s: %w", e.Name, ErrNotDir)
	}
	return t.caches.dirs.GetOrLoad(ctx, e.key, func() (*Dir, int64, error) {
		d, err := t.compose(context.WithoutCancel(ctx), e.dirs)
		if err != nil {
			return nil, 0, err
		}
		return d, d.size, nil
	})
}

// dirTree reads a dirtree object of a layer, through the small cache of
// recent ones, from the layer's metadata index when it is loaded and
// holds it (a cold directory then costs no read), else from the object.
func (t *Tree) dirTree(ctx context.Context, c repo.Checksum, layer int) (*repo.DirTree, error) {
	if dt, ok := t.caches.dts.get(c); ok {
		return dt, nil
	}
	fromIndex := func(idx *Index) *repo.DirTree {
		if idx == nil {
			return nil
		}
		dt, err := idx.LookupTree(c)
		if err != nil {
			t.logf("layer %d: %v; reading the object instead", layer, err)
			return nil
		}
		if dt != nil {
			t.caches.dts.add(c, dt)
		}
		return dt
	}
	var slot *indexSlot
	if layer < len(t.indexes) {
		slot = t.indexes[layer]
		idx := t.loadedIndex(slot)
		if idx == nil {
			// An object that would have to be fetched costs more than
			// waiting for the index, which the commit's metadata holds.
			if lr, ok := t.r.(LocalReader); ok && !lr.LocalObject(repo.ObjDirTree, c) {
				idx = t.loadIndex(slot)
			}
		}
		if dt := fromIndex(idx); dt != nil {
			return dt, nil
		}
	}
	dt, err := t.r.ReadDirTree(ctx, c)
	if err != nil {
		// The object cannot be had (a server down): the index may still
		// hold it.
		if slot != nil {
			if dt := fromIndex(t.loadIndex(slot)); dt != nil {
				return dt, nil
			}
		}
		return nil, err
	}
	t.caches.dts.add(c, dt)
	return dt, nil
}

// LocalReader is implemented by object readers that may have to fetch an
// object to read it (a lazy remote store). LocalObject reports whether it
// is held locally; a tree then prefers its metadata index to a fetch.
type LocalReader interface {
	LocalObject(t repo.ObjectType, c repo.Checksum) bool
}

// slot is a name of a directory being composed: a file from one layer, or
// a directory merged from several.
type slot struct {
	file  bool
	obj   repo.Checksum
	layer int
	dirs  []layerDir
	err   error // a damaged dirmeta hid whether the directory exists
}

// merge overlays the layer directories, base first, by the OCI rules:
//   - an opaque marker .wh..wh..opq hides every entry of lower layers,
//     and applies before the rest of its layer, wherever it sits;
//   - .wh.NAME hides NAME of lower layers only, never its own layer's;
//   - a directory over a directory merges; anything else replaces;
//   - whiteouts themselves never appear.
//
// It reads only dirtrees; directories that hold nothing but whiteouts in
// every layer are left out.
func (t *Tree) merge(ctx context.Context, dirs []layerDir) (map[string]*slot, error) {
	entries := map[string]*slot{}
	for _, ld := range dirs {
		dt, err := t.dirTree(ctx, ld.tree, ld.layer)
		if err != nil {
			return nil, err
		}
		if t.layered {
			if _, ok := dt.LookupFile(".wh..wh..opq"); ok {
				clear(entries)
			}
			for _, f := range dt.Files {
				if name, ok := strings.CutPrefix(f.Name, ".wh."); ok {
					delete(entries, name)
				}
			}
		}
		for _, f := range dt.Files {
			if t.layered && strings.HasPrefix(f.Name, ".wh.") {
				continue
			}
			entries[f.Name] = &slot{file: true, obj: f.Checksum, layer: ld.layer}
		}
		for _, d := range dt.Dirs {
			s, ok := entries[d.Name]
			if !ok || s.file {
				s = &slot{}
				entries[d.Name] = s
			}
			s.dirs = append(s.dirs, layerDir{ld.layer, d.Tree, d.Meta})
		}
	}
	if t.layered {
		for name, s := range entries {
			if s.file {
				continue
			}
			hide, err := t.whiteoutOnly(ctx, &Entry{dirs: s.dirs})
			if Damaged(err) {
				// Shown, so that the damage is seen where it is.
				s.err = fmt.Errorf("%s: %w", name, err)
				continue
			}
			if err != nil {
				return nil, err
			}
			if hide {
				delete(entries, name)
			}
		}
	}
	return entries, nil
}

// attrWorkers bounds the parallel metadata reads of one directory: a cold
// directory's files are spread over the object store, and the reads
// overlap well.
const attrWorkers = 8

// compose builds a directory's entries with their attributes, and counts
// each subdirectory's own subdirectories (its link count). A cold
// directory's objects are spread over the object store, so this reads
// them several at a time rather than one by one as a walk asks.
func (t *Tree) compose(ctx context.Context, dirs []layerDir) (*Dir, error) {
	entries, err := t.merge(ctx, dirs)
	if err != nil {
		return nil, err
	}
	out := &Dir{Entries: make([]*Entry, 0, len(entries))}
	for name, s := range entries {
		e := &Entry{Name: name}
		if s.file {
			e.Object, e.Layer = s.obj, s.layer
		} else {
			e.dirs = s.dirs
			e.key = t.dirKey(s.dirs)
			e.err = s.err
		}
		out.Entries = append(out.Entries, e)
	}
	if err := t.loadAttrs(ctx, out.Entries); err != nil {
		return nil, err
	}
	for _, e := range out.Entries {
		out.size += int64(len(e.Name)) + 200 + int64(len(e.Target)+xattrBytes(e.Xattrs)+len(e.dirs)*64)
	}
	sort.Slice(out.Entries, func(i, j int) bool { return out.Entries[i].Name < out.Entries[j].Name })
	return out, nil
}

// loadAttr fills in one new entry: a file's attributes from its object, a
// directory's from its dirmeta, with its subdirectory count.
//
// A damaged object fails only what needs it: a file whose object is
// damaged, or a directory whose dirmeta is, keeps the error (Entry.Err)
// and stays listed, a file with an unknown type (mode 0), a directory as
// a directory; a directory whose dirtrees are damaged keeps its
// attributes and has no subdirectory count (Subdirs fails, and its own
// listing does).
func (t *Tree) loadAttr(ctx context.Context, e *Entry) error {
	if e.err != nil {
		e.Attr = Attr{Mode: repo.ModeDir}
		return nil
	}
	if e.dirs == nil {
		a, err := t.fileAttr(ctx, e.Object, e.Layer)
		if Damaged(err) {
			e.Attr, e.err = Attr{}, fmt.Errorf("%s: %w", e.Name, err)
			return nil
		}
		if err != nil {
			return err
		}
		e.Attr = *a
		return nil
	}
	if err := t.dirAttr(ctx, e); err != nil {
		if Damaged(err) {
			e.Attr, e.err = Attr{Mode: repo.ModeDir}, fmt.Errorf("%s: %w", e.Name, err)
			return nil
		}
		return err
	}
	n, err := t.countSubdirs(ctx, e)
	if Damaged(err) {
		return nil // counted when asked, and failing then
	}
	if err != nil {
		return err
	}
	e.nsub, e.hasNsub = n, true
	return nil
}

// loadAttrs runs loadAttr over entries, several at a time: attrWorkers
// goroutines that take the next entry in turn (a goroutine per entry
// would cost an allocation per file of a cold walk). The first error
// cancels the rest.
func (t *Tree) loadAttrs(ctx context.Context, entries []*Entry) error {
	if len(entries) < 2 {
		for _, e := range entries {
			if err := t.loadAttr(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for w := 0; w < min(attrWorkers, len(entries)); w++ {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(entries) {
					return nil
				}
				if err := gctx.Err(); err != nil {
					return err
				}
				if err := t.loadAttr(gctx, entries[i]); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// Subdirs counts the subdirectories of directory e (for its link count)
// from dirtrees alone, without reading any file's metadata.
func (t *Tree) Subdirs(ctx context.Context, e *Entry) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.hasNsub {
		return e.nsub, nil
	}
	if d, ok := t.caches.dirs.Get(e.key); ok {
		n := 0
		for _, c := range d.Entries {
			if c.IsDir() {
				n++
			}
		}
		return n, nil
	}
	return t.caches.subdirs.GetOrLoad(ctx, e.key, func() (int, int64, error) {
		n, err := t.countSubdirs(context.WithoutCancel(ctx), e)
		return n, 48, err
	})
}

// countSubdirs counts directory e's subdirectories from its dirtrees.
func (t *Tree) countSubdirs(ctx context.Context, e *Entry) (int, error) {
	entries, err := t.merge(ctx, e.dirs)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range entries {
		if !s.file { // one whose dirmeta is damaged is listed, so counted
			n++
		}
	}
	return n, nil
}

// Lookup returns the entry at a slash-separated path, following no
// symlinks ("" and "/" are the root).
func (t *Tree) Lookup(ctx context.Context, p string) (*Entry, error) {
	e := t.root
	for _, name := range strings.Split(p, "/") {
		if name == "" || name == "." {
			continue
		}
		if !e.IsDir() {
			return nil, fmt.Errorf("%s: %w", p, ErrNotDir)
		}
		d, err := t.ReadDir(ctx, e)
		if err != nil {
			return nil, err
		}
		c, ok := d.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("%s: %w", p, ErrNotExist)
		}
		e = c
	}
	return e, nil
}

// readLinks decodes a commit's hardlink groups.
func readLinks(cm *repo.Commit) map[string]string {
	v, ok := cm.Metadata.Get(KeyHardlinks)
	if !ok {
		return nil
	}
	arr, ok := v.Value.([]any)
	if !ok {
		return nil
	}
	m := make(map[string]string, len(arr))
	for _, e := range arr {
		if de, ok := e.(gvariant.DictEntry); ok {
			k, _ := de.Key.(string)
			v, _ := de.Value.(string)
			m[k] = v
		}
	}
	return m
}

// linksVariant encodes hardlink groups as a{ss}, sorted by path.
func linksVariant(m map[string]string) gvariant.Variant {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	arr := make([]any, len(keys))
	for i, k := range keys {
		arr[i] = gvariant.DictEntry{Key: k, Value: m[k]}
	}
	return gvariant.Variant{Type: gvariant.MustParseType("a{ss}"), Value: arr}
}

// InodeKey identifies the inode of the non-directory e found at path p
// (slash-separated, no leading slash): entries with equal keys are
// hardlinks of each other. In an image, only paths that were hardlinks in
// a layer tar share a key, so the mount shows the hardlinks umoci unpack
// makes; "" means the path has an inode of its own. In a plain commit,
// regular files with the same object share one, as in an ostree checkout.
func (t *Tree) InodeKey(e *Entry, p string) string {
	if e.IsDir() {
		return ""
	}
	if !t.image {
		if e.Mode&repo.ModeFmt == repo.ModeRegular {
			return "o" + string(e.Object[:])
		}
		return ""
	}
	if e.Layer < len(t.links) {
		if leader, ok := t.links[e.Layer][p]; ok {
			return fmt.Sprintf("l%d:%s", e.Layer, leader)
		}
	}
	return ""
}

// LinkCount is the link count of the non-directory e at path p: the number
// of paths of its hardlink group that the composed image still shows (a
// member replaced or whited out by an upper layer no longer counts).
func (t *Tree) LinkCount(ctx context.Context, e *Entry, p string) (int, error) {
	if !t.image || e.IsDir() || e.Layer >= len(t.links) {
		return 1, nil
	}
	leader, ok := t.links[e.Layer][p]
	if !ok {
		return 1, nil
	}
	t.groupsOnce.Do(func() {
		t.groups = make([]map[string][]string, len(t.links))
		for i, m := range t.links {
			t.groups[i] = map[string][]string{}
			for member, l := range m {
				t.groups[i][l] = append(t.groups[i][l], member)
			}
		}
	})
	// The count depends on the whole composed tree: the key names its
	// root (content-derived), the layer and the group.
	return t.caches.links.GetOrLoad(ctx, fmt.Sprintf("%s:%d:%s", t.root.key, e.Layer, leader), func() (int, int64, error) {
		ctx := context.WithoutCancel(ctx)
		n := 0
		for _, m := range t.groups[e.Layer][leader] {
			me, err := t.Lookup(ctx, m)
			if errors.Is(err, ErrNotExist) || errors.Is(err, ErrNotDir) || Damaged(err) {
				continue // a member behind a damaged object is not seen
			}
			if err != nil {
				return 0, 0, err
			}
			if !me.IsDir() && me.Layer == e.Layer && me.Object == e.Object {
				n++
			}
		}
		return max(n, 1), 32, nil
	})
}
