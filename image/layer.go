package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Limits bound what one layer may make the importer do.
type Limits struct {
	MaxEntries int64 // tar entries per layer
	// MaxPathLen and MaxDepth bound the bytes and components of every
	// path stored: an entry's path as resolved inside the image root,
	// through symlinks of this layer and of the layers below.
	MaxPathLen int
	MaxDepth   int
	// MaxBytes bounds both the decompressed tar stream of a layer and the
	// sum of the logical sizes of its regular files: a sparse entry's
	// holes count, although they are neither read nor stored.
	MaxBytes       int64
	MaxSymlinkHops int // symlinks followed resolving one path
	// MaxLayers bounds the layers of an image, checked before any layer
	// is read; 0 means DefaultLimits.MaxLayers.
	MaxLayers int
}

// DefaultLimits are generous: far above real images, far below what
// exhausts a machine, and within what libostree and the kernel handle:
//   - MaxPathLen 4094: "/" + path + NUL fits PATH_MAX (4096), so every
//     path of the mount or a checkout can be named in one system call;
//   - MaxDepth 200: libostree refuses to traverse dirtrees nested deeper
//     than OSTREE_MAX_RECURSION (256); 200 stays below it with a margin,
//     whether a level is counted from the commit or from its root
//     dirtree, and with room for a tree to be committed below another;
//   - MaxLayers 500: the kernel's overlayfs stacks at most 500 lower
//     layers (OVL_MAX_STACK), so no image that an overlayfs runtime can
//     run is refused, while a hostile image cannot make the importer and
//     every mount compose thousands of layers.
var DefaultLimits = Limits{
	MaxEntries:     10_000_000,
	MaxPathLen:     4094,
	MaxDepth:       200,
	MaxBytes:       256 << 30,
	MaxSymlinkHops: 255,
	MaxLayers:      500,
}

// Fixed limits of Linux and libostree, not configurable: a longer name or
// symlink target could be stored but never checked out or mounted.
const (
	nameMax   = 255  // NAME_MAX: bytes of one path component
	targetMax = 4095 // PATH_MAX - 1: bytes of a symlink's target
)

// ErrLimit is wrapped when a layer exceeds a limit.
var ErrLimit = errors.New("limit exceeded")

// ErrBadLayer is wrapped for a layer that is malformed or hostile.
var ErrBadLayer = errors.New("invalid layer")

// lnode is a node of the layer being imported: a directory (explicit or
// implicit) or a file object (regular, symlink, special or whiteout).
type lnode struct {
	dir      bool
	explicit bool         // directory from an entry of this layer
	meta     repo.DirMeta // explicit directory's metadata
	kids     map[string]*lnode
	opaque   bool // holds .wh..wh..opq
	noLower  bool // nothing of lower layers lies beneath (new or replaced)
	sum      repo.Checksum
	same     *lnode // a hardlink: the object is that node's (written asynchronously)
	symlink  bool
	target   string
}

func newDir(noLower bool) *lnode {
	return &lnode{dir: true, kids: map[string]*lnode{}, noLower: noLower}
}

// LayerResult describes an imported layer tree.
type LayerResult struct {
	Tree, Meta repo.Checksum
	// BaseDependent is set when the tree depends on the layers below:
	// a path resolved through a lower layer's symlink, or a hardlink to a
	// lower layer's file. Such a layer is shared by chain ID, not diff_id.
	BaseDependent bool
	Entries       int64
	HasXattrs     bool
	// Hardlinks maps the path of every member of a hardlink group made by
	// this layer's tar to the group's first path (its target).
	Hardlinks map[string]string
	// TarSplit is the layer tar's record (tarsplit.go), for the layer
	// commit's detached metadata under compose.KeyTarSplit.
	TarSplit []byte
}

type layerImport struct {
	ctx      context.Context
	tx       *repo.Transaction
	lower    *compose.Tree
	lim      Limits
	root     *lnode
	whiteout repo.Checksum
	res      LayerResult
	links    map[string]string // resolved path -> group leader path
	pool     *writerPool
	logical  int64 // sum of the logical sizes of the regular files so far
	rec      *tarRecorder
	live     map[repo.Checksum]bool // file objects of the written tree
}

// writerPool writes small files in parallel with the reading of the
// tar: their content is read into memory, then hashed, written and linked
// by workers while the next entries are decompressed. The first write
// error cancels the pool's context.
type writerPool struct {
	g    *errgroup.Group
	ctx  context.Context // canceled by the first failed write
	bufs sync.Pool
}

// asyncMax is the largest file written by the pool; larger ones stream
// straight from the tar.
const asyncMax = 1 << 20

func newWriterPool(ctx context.Context, workers int) *writerPool {
	p := &writerPool{}
	p.g, p.ctx = errgroup.WithContext(ctx)
	p.g.SetLimit(workers)
	p.bufs.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	return p
}

// write stores buf as the file n with meta, once a worker is free; name
// is the tar entry, for errors.
func (p *writerPool) write(tx *repo.Transaction, n *lnode, meta repo.FileMeta, buf *[]byte, name string) {
	p.g.Go(func() error {
		defer func() {
			*buf = (*buf)[:0]
			p.bufs.Put(buf)
		}()
		if err := p.ctx.Err(); err != nil {
			return err
		}
		sum, err := tx.WriteFile(&meta, bytes.NewReader(*buf))
		if err != nil {
			return fmt.Errorf("entry %q: %w", name, err)
		}
		n.sum = sum
		return nil
	})
}

// failed returns the first write error once one happened, or the
// context's error once it is canceled; nil otherwise.
func (p *writerPool) failed() error {
	if p.ctx.Err() == nil {
		return nil
	}
	if err := p.g.Wait(); err != nil {
		return err
	}
	return p.ctx.Err()
}

// wait waits for the writes and returns the first error.
func (p *writerPool) wait() error { return p.g.Wait() }

// ImportLayer reads an uncompressed layer tar and stores it as a tree in
// OCI dialect: whiteouts stay as .wh. entries and opaque markers as
// .wh..wh..opq, so that the tree is the layer's changeset. Paths are
// resolved as umoci applies a layer onto the layers below (lower, nil for
// the base): a parent directory that is a symlink, in this layer or a
// lower one, is followed inside the image root. Nothing outside the
// repository is ever touched.
func ImportLayer(ctx context.Context, tx *repo.Transaction, lower *compose.Tree, r io.Reader, lim Limits) (*LayerResult, error) {
	li := &layerImport{ctx: ctx, tx: tx, lower: lower, lim: lim, root: newDir(lower == nil), links: map[string]string{}}
	li.pool = newWriterPool(ctx, max(2, runtime.GOMAXPROCS(0)))
	// On an early return too, no write outlives the import.
	defer li.pool.wait()
	li.rec = &tarRecorder{r: &limitReader{r: r, left: lim.MaxBytes, max: lim.MaxBytes}}
	tr := tar.NewReader(li.rec)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrLimit) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: tar entry %d: %w", ErrBadLayer, li.res.Entries+1, err)
		}
		li.res.Entries++
		if li.res.Entries > lim.MaxEntries {
			return nil, fmt.Errorf("more than the limit of %d entries (--max-entries): %w", lim.MaxEntries, ErrLimit)
		}
		if err := li.entry(hdr, tr); err != nil {
			return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if err := li.pool.failed(); err != nil {
			return nil, err
		}
	}
	// Drain what follows the end-of-archive marker, so the caller's digest
	// covers the whole blob (and the record keeps it).
	if _, err := io.Copy(io.Discard, li.rec); err != nil {
		return nil, err
	}
	if err := li.pool.wait(); err != nil {
		return nil, err
	}
	li.live = map[repo.Checksum]bool{}
	tree, meta, _, err := li.write(li.root)
	if err != nil {
		return nil, err
	}
	li.res.Tree, li.res.Meta = tree, meta
	if li.res.TarSplit, err = li.rec.finish(tx, li.live); err != nil {
		return nil, err
	}
	li.res.Hardlinks = li.liveLinks()
	return &li.res, nil
}

// limitReader fails once more than left bytes are read.
type limitReader struct {
	r    io.Reader
	left int64
	max  int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, fmt.Errorf("decompressed layer larger than the limit of %d bytes (--max-layer-bytes): %w", l.max, ErrLimit)
	}
	return n, err
}

// cleanPath splits a tar path into components: leading "/" and "./" go,
// "." components go, ".." is refused, and every component must be UTF-8
// and at most NAME_MAX bytes. A whiteout is measured by the path it
// names: .wh.NAME by NAME, an opaque marker by its directory.
func (li *layerImport) cleanPath(p string) ([]string, error) {
	var parts []string
	n := -1
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("path contains '..': %w", ErrBadLayer)
		}
		if !utf8.ValidString(c) {
			return nil, fmt.Errorf("name %q is not UTF-8, which OSTree cannot store: %w", c, ErrBadLayer)
		}
		parts = append(parts, c)
		n += len(c) + 1
	}
	for i, c := range parts {
		l := len(c)
		if i == len(parts)-1 {
			l = len(whitedOut(c))
		}
		if l > nameMax {
			return nil, fmt.Errorf("name %q of %d bytes is longer than NAME_MAX (%d bytes): %w", clip(c), len(c), nameMax, ErrBadLayer)
		}
	}
	depth := len(parts)
	if depth > 0 {
		last := parts[depth-1]
		if w := whitedOut(last); w == "" {
			n -= len(last) + 1 // an opaque marker: its directory
			depth--
		} else {
			n -= len(last) - len(w)
		}
	}
	if n > li.lim.MaxPathLen {
		return nil, fmt.Errorf("path of %d bytes is longer than the limit of %d (--max-path-length): %w", n, li.lim.MaxPathLen, ErrLimit)
	}
	if depth > li.lim.MaxDepth {
		return nil, fmt.Errorf("path of %d components is deeper than the limit of %d (--max-depth): %w", depth, li.lim.MaxDepth, ErrLimit)
	}
	return parts, nil
}

// whitedOut is the name a whiteout name stands for: NAME for .wh.NAME,
// "" for the opaque marker and other .wh..wh.* names; name otherwise.
func whitedOut(name string) string {
	w, ok := strings.CutPrefix(name, ".wh.")
	switch {
	case !ok:
		return name
	case strings.HasPrefix(w, ".wh."):
		return ""
	}
	return w
}

// checkStored bounds a path that is about to be stored: dir, a resolved
// directory path, and name in it.
func (li *layerImport) checkStored(dir []string, name string) error {
	n := len(name)
	for _, c := range dir {
		n += len(c) + 1
	}
	return li.checkResolved(dir, name, len(dir)+1, n)
}

// checkResolved fails when a resolved path, dir followed by name, of
// depth components and n bytes, exceeds the depth or length limit. The
// entry's own path may be short: symlinks (of this layer or of lower
// ones) can resolve it to anywhere inside the image root.
func (li *layerImport) checkResolved(dir []string, name string, depth, n int) error {
	if depth <= li.lim.MaxDepth && n <= li.lim.MaxPathLen {
		return nil
	}
	p := clip(strings.Join(append(dir[:len(dir):len(dir)], name), "/"))
	if depth > li.lim.MaxDepth {
		return fmt.Errorf("resolves to %q, %d components deep, deeper than the limit of %d (--max-depth): %w", p, depth, li.lim.MaxDepth, ErrLimit)
	}
	return fmt.Errorf("resolves to %q of %d bytes, longer than the limit of %d (--max-path-length): %w", p, n, li.lim.MaxPathLen, ErrLimit)
}

// clip shortens a long name or path for an error message.
func clip(s string) string {
	const keep = 64
	if len(s) <= 2*keep {
		return s
	}
	return s[:keep] + "..." + s[len(s)-keep:]
}

// lowerEntry looks a resolved path up in the layers below.
func (li *layerImport) lowerEntry(path []string) (*compose.Entry, error) {
	if li.lower == nil {
		return nil, nil
	}
	e, err := li.lower.Lookup(li.ctx, strings.Join(path, "/"))
	if errors.Is(err, compose.ErrNotExist) || errors.Is(err, compose.ErrNotDir) {
		return nil, nil
	}
	return e, err
}

// resolveDir resolves directory components in the merged view (this
// layer over the layers below) with the image root as "/": symlinks are
// followed, ".." stops at the root. With create, missing directories
// become implicit ones; without, a missing one returns nil.
func (li *layerImport) resolveDir(parts []string, create bool) (*lnode, []string, error) {
	stack := []*lnode{li.root}
	var path []string
	plen := -1 // bytes of path joined with "/", less one
	queue := append([]string(nil), parts...)
	hops := 0
	follow := func(target string, fromLower bool) error {
		hops++
		if hops > li.lim.MaxSymlinkHops {
			return fmt.Errorf("too many levels of symbolic links: %w", ErrBadLayer)
		}
		if fromLower {
			li.res.BaseDependent = true
		}
		if strings.HasPrefix(target, "/") {
			stack, path, plen = stack[:1], nil, -1
		}
		var tparts []string
		for _, c := range strings.Split(target, "/") {
			if c != "" && c != "." {
				tparts = append(tparts, c)
			}
		}
		queue = append(tparts, queue...)
		return nil
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == ".." {
			if len(path) > 0 {
				plen -= len(path[len(path)-1]) + 1
				stack, path = stack[:len(stack)-1], path[:len(path)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		if child, ok := cur.kids[c]; ok {
			switch {
			case child.dir:
				stack, path, plen = append(stack, child), append(path, c), plen+len(c)+1
				continue
			case child.symlink:
				if err := follow(child.target, false); err != nil {
					return nil, nil, err
				}
				continue
			case strings.HasPrefix(c, ".wh."):
				return nil, nil, errWhiteoutDir(strings.Join(append(path, c), "/"))
			}
			return nil, nil, fmt.Errorf("%s: %w", strings.Join(append(path, c), "/"), compose.ErrNotDir)
		}
		hidden := cur.noLower || cur.opaque || cur.kids[".wh."+c] != nil
		noLower := true
		if !hidden {
			le, err := li.lowerEntry(append(path, c))
			if err != nil {
				return nil, nil, err
			}
			switch {
			case le == nil:
			case le.IsDir():
				noLower = false
			case le.Mode&repo.ModeFmt == repo.ModeSymlink:
				if err := follow(le.Target, true); err != nil {
					return nil, nil, err
				}
				continue
			default:
				return nil, nil, fmt.Errorf("%s (in a lower layer): %w", strings.Join(append(path, c), "/"), compose.ErrNotDir)
			}
		}
		if !create {
			if noLower {
				return nil, nil, nil
			}
		}
		// A directory made here is stored: it must fit the limits.
		if err := li.checkResolved(path, c, len(path)+1, plen+len(c)+1); err != nil {
			return nil, nil, err
		}
		if len(c) > nameMax {
			return nil, nil, fmt.Errorf("symlink target component %q of %d bytes is longer than NAME_MAX (%d bytes): %w", clip(c), len(c), nameMax, ErrBadLayer)
		}
		child := newDir(noLower)
		cur.kids[c] = child
		stack, path, plen = append(stack, child), append(path, c), plen+len(c)+1
	}
	return stack[len(stack)-1], path, nil
}

func (li *layerImport) xattrs(hdr *tar.Header) []repo.Xattr {
	var xs []repo.Xattr
	schily := false
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			schily = true
			if !compose.DroppedXattr(name) {
				xs = append(xs, repo.Xattr{Name: name, Value: []byte(v)})
			}
		}
	}
	if !schily {
		for k, v := range hdr.PAXRecords {
			enc, ok := strings.CutPrefix(k, "LIBARCHIVE.xattr.")
			if !ok {
				continue
			}
			name, err1 := url.QueryUnescape(enc)
			val, err2 := base64.StdEncoding.DecodeString(v)
			if err1 == nil && err2 == nil && !compose.DroppedXattr(name) {
				xs = append(xs, repo.Xattr{Name: name, Value: val})
			}
		}
	}
	xs = repo.NormalizeXattrs(xs)
	if len(xs) > 0 {
		li.res.HasXattrs = true
	}
	return xs
}

func (li *layerImport) entry(hdr *tar.Header, tr *tar.Reader) error {
	parts, err := li.cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	perm := uint32(hdr.Mode) & 0o7777 // buildah puts S_IFMT bits in the mode field
	uid, gid := uint32(hdr.Uid), uint32(hdr.Gid)
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) > 1<<32-1 || int64(hdr.Gid) > 1<<32-1 {
		return fmt.Errorf("uid/gid %d/%d out of range: %w", hdr.Uid, hdr.Gid, ErrBadLayer)
	}
	if len(parts) == 0 {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("the root entry must be a directory: %w", ErrBadLayer)
		}
		li.root.explicit = true
		li.root.meta = repo.DirMeta{UID: uid, GID: gid, Mode: repo.ModeDir | perm, Xattrs: li.xattrs(hdr)}
		return nil
	}
	base := parts[len(parts)-1]
	// Whatever its type, an entry named .wh.* is a whiteout, as umoci has
	// it: a directory .wh.foo whites foo out, a directory .wh..wh..opq is
	// an opaque marker, and other .wh..wh.* (aufs metadata) are dropped.
	// The layer commit stores every one of them as the file whiteout.
	if wname, ok := strings.CutPrefix(base, ".wh."); ok {
		return li.whiteoutEntry(parts[:len(parts)-1], base, wname)
	}
	parent, ppath, err := li.resolveDir(parts[:len(parts)-1], true)
	if err != nil {
		return err
	}
	if err := li.checkStored(ppath, base); err != nil {
		return err
	}
	full := strings.Join(append(ppath, base), "/")
	delete(li.links, full) // whatever was here is replaced
	var n *lnode
	switch hdr.Typeflag {
	case tar.TypeDir:
		if old, ok := parent.kids[base]; ok && old.dir {
			n = old
		} else {
			n = newDir(parent.noLower)
			if ok {
				// A non-directory of this layer replaced by a directory:
				// the lower layers' directory must not show through.
				if err := li.addWhiteout(parent, ".wh."+base); err != nil {
					return err
				}
				n.noLower = true
			}
		}
		n.explicit = true
		n.meta = repo.DirMeta{UID: uid, GID: gid, Mode: repo.ModeDir | perm, Xattrs: li.xattrs(hdr)}
		parent.kids[base] = n
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		// hdr.Size is the logical size: for a sparse entry, holes
		// included, which the tar reader fills with zeros. It counts
		// before anything is written.
		li.logical += hdr.Size
		if hdr.Size < 0 || li.logical > li.lim.MaxBytes {
			return fmt.Errorf("file of %d bytes (holes of sparse files included) takes the layer's files to %d bytes, more than the limit of %d bytes (--max-layer-bytes): %w", hdr.Size, li.logical, li.lim.MaxBytes, ErrLimit)
		}
		m := &repo.FileMeta{UID: uid, GID: gid, Mode: repo.ModeRegular | perm, Xattrs: li.xattrs(hdr), Size: hdr.Size}
		n = &lnode{}
		li.rec.payload(hdr, n)
		if hdr.Size <= asyncMax {
			buf := li.pool.bufs.Get().(*[]byte)
			b := bytes.NewBuffer((*buf)[:0])
			if _, err := io.Copy(b, tr); err != nil {
				return fmt.Errorf("%w: %w", ErrBadLayer, err)
			}
			*buf = b.Bytes()
			li.pool.write(li.tx, n, *m, buf, hdr.Name)
		} else {
			sum, err := li.tx.WriteFile(m, tr)
			if err != nil {
				return err
			}
			n.sum = sum
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return fmt.Errorf("symlink with an empty target: %w", ErrBadLayer)
		}
		if !utf8.ValidString(hdr.Linkname) {
			return fmt.Errorf("symlink target %q is not UTF-8: %w", hdr.Linkname, ErrBadLayer)
		}
		if len(hdr.Linkname) > targetMax {
			return fmt.Errorf("symlink target of %d bytes is longer than PATH_MAX allows (%d bytes): %w", len(hdr.Linkname), targetMax, ErrBadLayer)
		}
		m := &repo.FileMeta{UID: uid, GID: gid, Mode: repo.ModeSymlink | 0o777, Target: hdr.Linkname, Xattrs: li.xattrs(hdr)}
		sum, err := li.tx.WriteFile(m, nil)
		if err != nil {
			return err
		}
		n = &lnode{sum: sum, symlink: true, target: hdr.Linkname}
	case tar.TypeLink:
		var leader string
		if n, leader, err = li.hardlink(hdr.Linkname); err != nil {
			return err
		}
		if leader != "" {
			li.links[leader] = leader
			li.links[full] = leader
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		s := compose.Special{Type: 'p'}
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			s = compose.Special{Type: 'c', Major: uint32(hdr.Devmajor), Minor: uint32(hdr.Devminor)}
			if hdr.Typeflag == tar.TypeBlock {
				s.Type = 'b'
			}
		}
		if li.tx.Repo().Mode() == repo.ModeBareUserOnly {
			return fmt.Errorf("%s: a bare-user-only repository cannot keep device nodes or fifos: %w", s, repo.ErrUnsupported)
		}
		xs := repo.NormalizeXattrs(append(li.xattrs(hdr), repo.Xattr{Name: compose.SpecialXattr, Value: []byte(s.String())}))
		sum, err := li.tx.WriteFile(&repo.FileMeta{UID: uid, GID: gid, Mode: repo.ModeRegular | perm, Xattrs: xs}, strings.NewReader(""))
		if err != nil {
			return err
		}
		n = &lnode{sum: sum}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, ErrBadLayer)
	}
	parent.kids[base] = n
	return nil
}

// addWhiteout records .wh.NAME in a directory of this layer.
// The whiteout object is an empty 0:0 0644 file, written on first use so
// that a layer without whiteouts leaves no unreferenced object.
func (li *layerImport) addWhiteout(d *lnode, name string) error {
	if old, ok := d.kids[name]; ok && old.dir {
		return errWhiteoutDir(name)
	}
	if li.whiteout.IsZero() {
		sum, err := li.tx.WriteFile(&repo.FileMeta{Mode: repo.ModeRegular | 0o644}, strings.NewReader(""))
		if err != nil {
			return err
		}
		li.whiteout = sum
	}
	d.kids[name] = &lnode{sum: li.whiteout}
	return nil
}

// errWhiteoutDir is the one way in which a layer's tree differs from
// umoci's extraction: umoci both applies a whiteout .wh.NAME and makes a
// directory .wh.NAME for entries below it, but an OSTree directory cannot
// hold a file and a directory of one name.
func errWhiteoutDir(name string) error {
	return fmt.Errorf("%s is both a whiteout and a directory holding entries, which OSTree cannot store: %w (%w)", name, ErrBadLayer, compose.ErrNotDir)
}

// whiteoutEntry handles .wh.NAME and .wh..wh..opq. A whiteout only ever
// hides lower layers' entries, so it never removes this layer's own.
func (li *layerImport) whiteoutEntry(dirParts []string, base, wname string) error {
	switch {
	case base == ".wh..wh..opq":
	case wname == "" || wname == "." || wname == "..":
		return fmt.Errorf("invalid whiteout name %q: %w", base, ErrBadLayer)
	case strings.HasPrefix(wname, ".wh."):
		return nil // other AUFS metadata (.wh..wh.plnk, ...): ignored, as moby does
	}
	parent, ppath, err := li.resolveDir(dirParts, true)
	if errors.Is(err, compose.ErrNotDir) {
		return nil // a whiteout below a non-directory hides nothing
	}
	if err != nil {
		return err
	}
	// The whiteout is measured by what it hides (its directory was made
	// within the limits): it must be able to whiteout every stored path.
	if err := li.checkStored(ppath, wname); err != nil && base != ".wh..wh..opq" {
		return err
	}
	if base == ".wh..wh..opq" {
		parent.opaque = true
	}
	return li.addWhiteout(parent, base)
}

// hardlink finds a link's target, in this layer or a lower one, inside
// the image root; the link shares the target's object. For a target in
// this layer it also returns the group's leader path, so that the mount
// can give the group one inode.
func (li *layerImport) hardlink(target string) (*lnode, string, error) {
	parts, err := li.cleanPath(target)
	if err != nil {
		return nil, "", fmt.Errorf("hardlink target: %w", err)
	}
	if len(parts) == 0 {
		return nil, "", fmt.Errorf("hardlink to the root: %w", ErrBadLayer)
	}
	dir, path, err := li.resolveDir(parts[:len(parts)-1], false)
	if err != nil {
		return nil, "", fmt.Errorf("hardlink target %q: %w", target, err)
	}
	base := parts[len(parts)-1]
	if dir != nil {
		if n, ok := dir.kids[base]; ok {
			if n.dir {
				return nil, "", fmt.Errorf("hardlink to directory %q: %w", target, ErrBadLayer)
			}
			tpath := strings.Join(append(path, base), "/")
			leader := tpath
			if l, ok := li.links[tpath]; ok {
				leader = l
			}
			return &lnode{same: n, symlink: n.symlink, target: n.target}, leader, nil
		}
		if !dir.noLower && !dir.opaque && dir.kids[".wh."+base] == nil {
			le, err := li.lowerEntry(append(path, base))
			if err != nil {
				return nil, "", err
			}
			if le != nil && !le.IsDir() {
				// A link to a lower layer's file shares its content but,
				// in the mount, not its inode.
				li.res.BaseDependent = true
				isLink := le.Mode&repo.ModeFmt == repo.ModeSymlink
				return &lnode{sum: le.Object, symlink: isLink, target: le.Target}, "", nil
			}
		}
	}
	return nil, "", fmt.Errorf("hardlink target %q does not exist (yet): %w", target, ErrBadLayer)
}

// liveLinks keeps the hardlink records whose path still holds a file of
// this layer at the end, and drops groups left with one member.
func (li *layerImport) liveLinks() map[string]string {
	count := map[string]int{}
	live := map[string]string{}
	for p, leader := range li.links {
		n := li.root
		for _, c := range strings.Split(p, "/") {
			if n == nil || !n.dir {
				n = nil
				break
			}
			n = n.kids[c]
		}
		if n != nil && !n.dir {
			live[p] = leader
			count[leader]++
		}
	}
	for p, leader := range live {
		if count[leader] < 2 {
			delete(live, p)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live
}

// write stores a directory bottom-up and reports whether anything but
// whiteouts lies beneath it.
func (li *layerImport) write(n *lnode) (tree, meta repo.Checksum, real bool, err error) {
	dt := &repo.DirTree{}
	for name, k := range n.kids {
		if !k.dir {
			sum := k.sum
			for o := k; o.same != nil; o = o.same {
				sum = o.same.sum
			}
			dt.Files = append(dt.Files, repo.TreeFile{Name: name, Checksum: sum})
			li.live[sum] = true
			if !strings.HasPrefix(name, ".wh.") {
				real = true
			}
			continue
		}
		t, m, r, err := li.write(k)
		if err != nil {
			return tree, meta, false, err
		}
		real = real || r
		dt.Dirs = append(dt.Dirs, repo.TreeDir{Name: name, Tree: t, Meta: m})
	}
	if tree, err = li.tx.WriteDirTree(dt); err != nil {
		return
	}
	dm := n.meta
	if !n.explicit {
		kind := compose.ImplicitParent
		if !real {
			kind = compose.ImplicitWhiteouts
		}
		dm = repo.DirMeta{Mode: repo.ModeDir | 0o755, Xattrs: []repo.Xattr{{Name: compose.ImplicitXattr, Value: []byte(kind)}}}
	}
	meta, err = li.tx.WriteDirMeta(&dm)
	return tree, meta, real || n.explicit, err
}
