package compose

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ostree-mount/ostree-mount/compose/source"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Ref is the strong ref of the manifest commit; "" means DefaultRef.
	Ref string
	// Mode is ModeLayered (the default), ModePrecomposed or ModeSquashed.
	Mode string
	// Source is recorded in the manifest commit.
	Source string
	Limits Limits
	// Progress, if set, is told about each layer.
	Progress func(LayerReport)
}

// LayerReport describes one layer of an import.
type LayerReport struct {
	Index  int
	DiffID digest.Digest
	Commit repo.Checksum
	Reused bool // already in the repository: its blob was not read
	Bytes  int64
}

// ImportResult describes a finished import.
type ImportResult struct {
	Commit repo.Checksum
	Ref    string
	Layers []LayerReport
}

// Weak ref names of layer commits: by diff_id for layers that do not
// depend on their base, by chain ID for those that do.
func layerRef(diffID digest.Digest) repo.RefName {
	return repo.Weak("ostree-mount/layer/" + diffID.Algorithm().String() + "/" + diffID.Encoded())
}

func chainRef(chain digest.Digest) repo.RefName {
	return repo.Weak("ostree-mount/chain/" + chain.Algorithm().String() + "/" + chain.Encoded())
}

// refUnsafe is compiled on first use: its Unicode classes cost most of
// a millisecond, at the start of every process, mounts included.
var refUnsafe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^\p{L}\p{N}_.-]`) })

// DefaultRef is the strong ref an image is stored under when none is
// given: "image/" followed by the image's name with ':' turned into '/'
// ("example/final:latest" → image/example/final/latest), each component
// made valid; an image without a name gets image/sha256/<manifest digest>.
func DefaultRef(img *source.Image) string {
	name := strings.ReplaceAll(img.Name, ":", "/")
	var parts []string
	for _, p := range strings.Split(name, "/") {
		if p == "" {
			continue
		}
		p = refUnsafe().ReplaceAllString(p, "_")
		if p[0] == '-' || p[0] == '.' {
			p = "_" + p
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "image/" + img.ManifestDigest.Algorithm().String() + "/" + img.ManifestDigest.Encoded()
	}
	return "image/" + strings.Join(parts, "/")
}

// Import stores an image: one layer commit per layer (reusing layers
// already present, found through their weak refs), then a manifest commit
// whose related list names the layer commits, base first, under a strong
// ref. Everything happens in one transaction: a failed import leaves no
// ref, no commit and no object behind.
func Import(ctx context.Context, r *repo.Repo, img *source.Image, o ImportOptions) (*ImportResult, error) {
	if o.Mode == "" {
		o.Mode = ModeLayered
	}
	if o.Mode != ModeLayered && o.Mode != ModePrecomposed && o.Mode != ModeSquashed {
		return nil, fmt.Errorf("mode %q: want layered, precomposed or squashed", o.Mode)
	}
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits
	}
	ref := o.Ref
	if ref == "" {
		ref = DefaultRef(img)
	}
	refName, err := repo.ParseRefName(ref)
	if err != nil {
		return nil, err
	}
	if refName.Kind == repo.RefWeak {
		return nil, fmt.Errorf("ref %s: an image needs a strong ref", ref)
	}
	c, err := NewCaches(64 << 20)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tx, err := r.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Abort()

	res := &ImportResult{Ref: refName.String()}
	var layers []repo.Checksum
	var related []repo.Related
	var chain digest.Digest
	hasXattrs := false
	for i := range img.Layers {
		l := &img.Layers[i]
		if chain == "" {
			chain = l.DiffID
		} else {
			chain = digest.FromString(chain.String() + " " + l.DiffID.String())
		}
		rep := LayerReport{Index: i, DiffID: l.DiffID}
		var lower *Tree
		if len(layers) > 0 {
			if lower, err = OpenLayers(tx, layers, Options{Caches: c}); err != nil {
				return nil, err
			}
		}
		commit, ok, err := reuseLayer(ctx, tx, l.DiffID, chain, lower)
		if err != nil {
			return nil, err
		}
		if ok {
			rep.Commit, rep.Reused = commit, true
		} else {
			lr, n, err := importBlob(ctx, tx, lower, l, o.Limits)
			if err != nil {
				return nil, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
			}
			rep.Bytes = n
			md := repo.Metadata{}
			md.SetString(KeyLayer, l.Digest.String())
			md.SetString(KeyDiffID, l.DiffID.String())
			md.SetString(KeyMediaType, l.MediaType)
			weak := layerRef(l.DiffID)
			if lr.BaseDependent {
				md.SetString(KeyChainID, chain.String())
				weak = chainRef(chain)
			}
			if commit, err = WriteLayerCommit(tx, lr, "layer "+l.DiffID.String(), md); err != nil {
				return nil, err
			}
			tx.SetRef(weak, commit)
			rep.Commit = commit
		}
		lc, err := tx.ReadCommit(ctx, rep.Commit)
		if err != nil {
			return nil, err
		}
		if v, ok := lc.Metadata.Get(KeyXattrs); !ok || v.Value != false {
			hasXattrs = true
		}
		layers = append(layers, rep.Commit)
		related = append(related, repo.Related{Name: l.DiffID.String(), Commit: rep.Commit})
		res.Layers = append(res.Layers, rep)
		if o.Progress != nil {
			o.Progress(rep)
		}
	}

	md := repo.Metadata{}
	md.SetString(KeyMode, o.Mode)
	md.SetString(KeyDigest, img.ManifestDigest.String())
	md.SetString(KeySource, o.Source)
	md.SetString(KeyManifest, string(img.Manifest))
	md.SetString(KeyConfig, string(img.Config))
	md.Set(KeyXattrs, boolVariant(hasXattrs))
	co := &repo.CommitOptions{
		Subject:    "image " + img.Name,
		Timestamp:  configCreated(img.Config),
		NoParent:   true,
		Branch:     ref,
		NoBindings: true,
		Metadata:   md,
	}
	var rootTree, rootMeta repo.Checksum
	switch o.Mode {
	case ModeLayered:
		// The image is composed on demand; the commit's own tree is empty.
		if rootMeta, err = tx.WriteDirMeta(&repo.DirMeta{Mode: repo.ModeDir | 0o755}); err != nil {
			return nil, err
		}
		if rootTree, err = tx.WriteDirTree(&repo.DirTree{}); err != nil {
			return nil, err
		}
		co.Related = related
	default:
		tree, err := OpenLayers(tx, layers, Options{Caches: c})
		if err != nil {
			return nil, err
		}
		var links map[string]string
		if rootTree, rootMeta, links, err = WriteComposed(ctx, tx, tree); err != nil {
			return nil, err
		}
		if len(links) > 0 {
			md.Set(KeyHardlinks, linksVariant(links))
		}
		if o.Mode == ModePrecomposed {
			co.Related = related
		}
	}
	co.Metadata = md // md may have grown since co was made
	if res.Commit, err = tx.WriteCommitFor(rootTree, rootMeta, co); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

// WriteLayerCommit writes the commit of an imported layer tree, adding
// to md what the layer result records (xattrs present, hardlink groups).
// Its timestamp is the epoch, so the same layer always gives the same
// commit.
func WriteLayerCommit(tx *repo.Transaction, lr *LayerResult, subject string, md repo.Metadata) (repo.Checksum, error) {
	md.Set(KeyXattrs, boolVariant(lr.HasXattrs))
	if len(lr.Hardlinks) > 0 {
		md.Set(KeyHardlinks, linksVariant(lr.Hardlinks))
	}
	return tx.WriteCommitFor(lr.Tree, lr.Meta, &repo.CommitOptions{
		Subject:    subject,
		Timestamp:  time.Unix(0, 0),
		NoParent:   true,
		NoBindings: true,
		Metadata:   md,
	})
}

func boolVariant(b bool) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("b"), Value: b}
}

// configCreated returns the image's creation time, or the epoch, so that
// importing the same image twice gives the same commit.
func configCreated(cfg []byte) time.Time {
	var c struct {
		Created *time.Time `json:"created"`
	}
	if json.Unmarshal(cfg, &c) == nil && c.Created != nil && c.Created.Unix() > 0 {
		return *c.Created
	}
	return time.Unix(0, 0)
}

// reuseLayer finds a layer commit already in the repository: by chain ID
// (layers that depend on their base), then by diff_id, if the layer gives
// the same tree on this base as on the one it was imported on.
func reuseLayer(ctx context.Context, tx *repo.Transaction, diffID, chain digest.Digest, lower *Tree) (repo.Checksum, bool, error) {
	for i, n := range []repo.RefName{chainRef(chain), layerRef(diffID)} {
		c, err := tx.Repo().ReadRef(n)
		if errors.Is(err, repo.ErrRefNotFound) {
			continue
		}
		if err != nil {
			return c, false, err
		}
		lc, err := tx.ReadCommit(ctx, c)
		if err != nil {
			if errors.Is(err, repo.ErrObjectNotFound) {
				continue // a dangling weak ref: prune will remove it
			}
			return c, false, err
		}
		if i == 1 && lower != nil {
			ok, err := fitsBase(ctx, tx, lc.RootTree, lower)
			if err != nil || !ok {
				return c, false, err
			}
		}
		return c, true, nil
	}
	return repo.Checksum{}, false, nil
}

// fitsBase reports whether a layer tree that did not depend on the base
// it was imported on also does not depend on lower: no directory of the
// layer that the lower layers can see may be, below, a symlink or a file,
// unless the layer's directory is an explicit entry (which replaces it).
// Otherwise the layer's paths would have resolved through that symlink,
// and the layer must be imported again for this base.
func fitsBase(ctx context.Context, r ObjectReader, tree repo.Checksum, lower *Tree) (bool, error) {
	var walk func(tree repo.Checksum, path string, visible bool) (bool, error)
	walk = func(tree repo.Checksum, path string, visible bool) (bool, error) {
		dt, err := r.ReadDirTree(ctx, tree)
		if err != nil {
			return false, err
		}
		_, opaque := dt.LookupFile(".wh..wh..opq")
		for _, d := range dt.Dirs {
			p := d.Name
			if path != "" {
				p = path + "/" + d.Name
			}
			_, whited := dt.LookupFile(".wh." + d.Name)
			v := visible && !opaque && !whited
			if v {
				le, err := lower.Lookup(ctx, p)
				if err != nil && !errors.Is(err, ErrNotExist) && !errors.Is(err, ErrNotDir) {
					return false, err
				}
				if err == nil && !le.IsDir() {
					m, err := r.ReadDirMeta(ctx, d.Meta)
					if err != nil {
						return false, err
					}
					if implicitKind(m) != "" {
						return false, nil
					}
					v = false // an explicit directory replaces it
				}
			}
			ok, err := walk(d.Tree, p, v)
			if err != nil || !ok {
				return ok, err
			}
		}
		return true, nil
	}
	return walk(tree, "", true)
}

// importBlob streams one layer blob: verified against its digest as it is
// read, decompressed, verified against its diff_id, and imported.
func importBlob(ctx context.Context, tx *repo.Transaction, lower *Tree, l *source.Layer, lim Limits) (*LayerResult, int64, error) {
	blob, err := l.Open()
	if err != nil {
		return nil, 0, err
	}
	defer blob.Close()
	// Three stages, each in a goroutine of its own: the blob is read and
	// its digest checked; it is decompressed and its diff_id hashed; the
	// tar is parsed and its files hashed and written.
	braw := newReadAhead(blob, readAheadChunk, readAheadDepth)
	defer braw.Close()
	cnt := &countingReader{r: braw}
	zr, _, err := decompress(cnt)
	if err != nil {
		return nil, 0, err
	}
	defer zr.Close()
	if l.DiffID.Algorithm() != digest.SHA256 {
		return nil, 0, fmt.Errorf("diff_id %s: only sha256 is supported: %w", l.DiffID, source.ErrUnsupported)
	}
	h := sha256.New()
	ra := newReadAhead(io.TeeReader(zr, h), readAheadChunk, readAheadDepth)
	res, err := ImportLayer(ctx, tx, lower, ra, lim)
	ra.Close() // no longer reading zr, h or cnt
	if err != nil {
		return nil, cnt.n, err
	}
	// Read the blob to its end, past any compressor padding, so that its
	// digest and size are checked.
	if _, err := io.Copy(io.Discard, cnt); err != nil {
		return nil, cnt.n, err
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != l.DiffID {
		return nil, cnt.n, fmt.Errorf("uncompressed content has diff_id %s, config says %s: %w", got, l.DiffID, source.ErrDigestMismatch)
	}
	return res, cnt.n, nil
}

// The decompressed stream is read ahead of the tar parser in chunks of
// readAheadChunk bytes, at most readAheadDepth of them.
const (
	readAheadChunk = 256 << 10
	readAheadDepth = 16
)

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// WriteComposed stores a composed tree as ordinary OSTree dirtrees and
// dirmetas (whiteouts applied, side channels of special files kept) and
// returns its root and its hardlink groups (path -> first path of the
// group). Identical subtrees are composed once.
func WriteComposed(ctx context.Context, tx *repo.Transaction, t *Tree) (repo.Checksum, repo.Checksum, map[string]string, error) {
	type sums struct{ tree, meta repo.Checksum }
	done := map[string]sums{}
	groups := map[string][]string{}
	var walk func(e *Entry, p string) (sums, error)
	walk = func(e *Entry, p string) (sums, error) {
		if err := ctx.Err(); err != nil {
			return sums{}, err
		}
		d, err := t.ReadDir(ctx, e)
		if err != nil {
			return sums{}, err
		}
		dt := &repo.DirTree{}
		for _, c := range d.Entries {
			cp := c.Name
			if p != "" {
				cp = p + "/" + c.Name
			}
			if !c.IsDir() {
				dt.Files = append(dt.Files, repo.TreeFile{Name: c.Name, Checksum: c.Object})
				if k := t.InodeKey(c, cp); k != "" {
					groups[k] = append(groups[k], cp)
				}
				continue
			}
			s, ok := done[c.key]
			if !ok || t.hasLinksBelow(c) {
				if s, err = walk(c, cp); err != nil {
					return s, err
				}
			}
			dt.Dirs = append(dt.Dirs, repo.TreeDir{Name: c.Name, Tree: s.tree, Meta: s.meta})
		}
		var s sums
		if s.tree, err = tx.WriteDirTree(dt); err != nil {
			return s, err
		}
		if s.meta, err = tx.WriteDirMeta(&repo.DirMeta{UID: e.UID, GID: e.GID, Mode: e.Mode, Xattrs: e.Xattrs}); err != nil {
			return s, err
		}
		done[e.key] = s
		return s, nil
	}
	s, err := walk(t.Root(), "")
	if err != nil {
		return s.tree, s.meta, nil, err
	}
	links := map[string]string{}
	for _, members := range groups {
		if len(members) < 2 {
			continue
		}
		sort.Strings(members)
		for _, m := range members {
			links[m] = members[0]
		}
	}
	return s.tree, s.meta, links, nil
}

// hasLinksBelow reports whether any layer records hardlinks, in which case
// identical subtrees at different paths must still be walked for them.
func (t *Tree) hasLinksBelow(*Entry) bool {
	for _, m := range t.links {
		if len(m) > 0 {
			return true
		}
	}
	return false
}
