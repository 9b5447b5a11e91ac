package image

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/image/source"
	"github.com/ostree-mount/ostree-mount/repo"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Ref is the strong ref of the manifest commit; "" means DefaultRef.
	Ref string
	// Mode is compose.ModeLayered (the default), compose.ModePrecomposed or compose.ModeSquashed.
	Mode string
	// Source is recorded in the manifest commit.
	Source string
	Limits Limits
	// Progress, if set, is told about each layer.
	Progress func(LayerReport)
	// BlobProgress, if set, is told, from any goroutine, how many bytes
	// of layer index's blob (of total; -1 if unknown) were read so far.
	BlobProgress func(index int, done, total int64)
	// Jobs is how many blobs may be fetched at once, ahead of the layer
	// being imported (for registries; containers/image uses 3). 0 or 1:
	// each blob is opened when its layer is imported.
	Jobs int
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
// made valid; an image without a name gets image/ALG/HEX after its
// manifest digest.
func DefaultRef(name string, manifest digest.Digest) string {
	name = strings.ReplaceAll(name, ":", "/")
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
		return "image/" + manifest.Algorithm().String() + "/" + manifest.Encoded()
	}
	return "image/" + strings.Join(parts, "/")
}

// imageInfo is what Import takes from a source.Image, read and checked
// before anything is written.
type imageInfo struct {
	name     string
	digest   digest.Digest
	manifest []byte
	config   []byte
	layers   []layerInfo
}

type layerInfo struct {
	digest, diffID digest.Digest
	mediaType      string
	layer          source.Layer
}

// readImage reads an image's metadata through its accessors.
func readImage(img source.Image) (*imageInfo, error) {
	ii := &imageInfo{name: img.Name()}
	var err error
	if ii.digest, err = img.Digest(); err != nil {
		return nil, fmt.Errorf("manifest digest: %w", err)
	}
	if err := ii.digest.Validate(); err != nil {
		return nil, fmt.Errorf("manifest digest %q: %w: %w", ii.digest, source.ErrInvalid, err)
	}
	if ii.manifest, err = img.RawManifest(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", ii.digest, err)
	}
	if ii.config, err = img.RawConfigFile(); err != nil {
		return nil, fmt.Errorf("config of %s: %w", ii.digest, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers of %s: %w", ii.digest, err)
	}
	for i, l := range layers {
		li := layerInfo{layer: l}
		if li.digest, err = l.Digest(); err == nil {
			err = li.digest.Validate()
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: digest: %w", i, err)
		}
		if li.diffID, err = l.DiffID(); err == nil {
			err = li.diffID.Validate()
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): diff_id: %w", i, li.digest, err)
		}
		if li.mediaType, err = l.MediaType(); err != nil {
			return nil, fmt.Errorf("layer %d (%s): media type: %w", i, li.digest, err)
		}
		ii.layers = append(ii.layers, li)
	}
	return ii, nil
}

// Import stores an image: one layer commit per layer (reusing layers
// already present, found through their weak refs), then a manifest commit
// whose related list names the layer commits, base first, under a strong
// ref. Everything happens in one transaction: a failed import leaves no
// ref, no commit and no object behind.
func Import(ctx context.Context, r *repo.Repo, src source.Image, o ImportOptions) (*ImportResult, error) {
	if o.Mode == "" {
		o.Mode = compose.ModeLayered
	}
	if o.Mode != compose.ModeLayered && o.Mode != compose.ModePrecomposed && o.Mode != compose.ModeSquashed {
		return nil, fmt.Errorf("mode %q: want layered, precomposed or squashed", o.Mode)
	}
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits
	}
	if o.Limits.MaxLayers <= 0 {
		o.Limits.MaxLayers = DefaultLimits.MaxLayers
	}
	img, err := readImage(src)
	if err != nil {
		return nil, err
	}
	if len(img.layers) > o.Limits.MaxLayers {
		return nil, fmt.Errorf("image has %d layers, more than the limit of %d (--max-layers): %w", len(img.layers), o.Limits.MaxLayers, ErrLimit)
	}
	ref := o.Ref
	if ref == "" {
		ref = DefaultRef(img.name, img.digest)
	}
	refName, err := repo.ParseRefName(ref)
	if err != nil {
		return nil, err
	}
	if refName.Kind == repo.RefWeak {
		return nil, fmt.Errorf("ref %s: an image needs a strong ref", ref)
	}
	c, err := compose.NewCaches(64 << 20)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tx, err := r.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Abort()

	open := func(i int) (io.ReadCloser, error) {
		l := img.layers[i].layer
		rc, err := l.Compressed()
		if err != nil || o.BlobProgress == nil {
			return rc, err
		}
		total, err := l.Size()
		if err != nil {
			total = -1
		}
		return &progressReader{rc: rc, index: i, total: total, fn: o.BlobProgress}, nil
	}
	if o.Jobs > 1 {
		pf := newPrefetcher(o.Jobs, neededLayers(tx.Repo(), img.layers), open)
		defer pf.close()
		open = pf.blob
	}

	res := &ImportResult{Ref: refName.String()}
	var layers []repo.Checksum
	var related []repo.Related
	var chain digest.Digest
	hasXattrs := false
	for i := range img.layers {
		l := &img.layers[i]
		if chain == "" {
			chain = l.diffID
		} else {
			chain = digest.FromString(chain.String() + " " + l.diffID.String())
		}
		rep := LayerReport{Index: i, DiffID: l.diffID}
		var lower *compose.Tree
		if len(layers) > 0 {
			if lower, err = compose.OpenLayers(tx, layers, compose.Options{Caches: c}); err != nil {
				return nil, err
			}
		}
		commit, ok, err := reuseLayer(ctx, tx, l.diffID, chain, lower)
		if err != nil {
			return nil, err
		}
		if ok {
			rep.Commit, rep.Reused = commit, true
		} else {
			lr, n, err := importBlob(ctx, tx, lower, l, func() (io.ReadCloser, error) { return open(i) }, o.Limits)
			if err != nil {
				return nil, fmt.Errorf("layer %d (%s): %w", i, l.digest, err)
			}
			rep.Bytes = n
			// The layer commit depends only on the layer's tar (its
			// diff_id and tree) and its base: nothing of the blob (digest,
			// media type, compression), which the manifest commit's
			// manifest records, so the same layer recompressed (an
			// export pushed to a registry) gives the same commit.
			md := repo.Metadata{}
			md.SetString(compose.KeyDiffID, l.diffID.String())
			weak := layerRef(l.diffID)
			if lr.BaseDependent {
				md.SetString(compose.KeyChainID, chain.String())
				weak = chainRef(chain)
			}
			if commit, err = WriteLayerCommit(ctx, tx, lr, "layer "+l.diffID.String(), md); err != nil {
				return nil, err
			}
			tx.SetRef(weak, commit)
			rep.Commit = commit
		}
		lc, err := tx.ReadCommit(ctx, rep.Commit)
		if err != nil {
			return nil, err
		}
		if v, ok := lc.Metadata.Get(compose.KeyXattrs); !ok || v.Value != false {
			hasXattrs = true
		}
		layers = append(layers, rep.Commit)
		related = append(related, repo.Related{Name: l.diffID.String(), Commit: rep.Commit})
		res.Layers = append(res.Layers, rep)
		if o.Progress != nil {
			o.Progress(rep)
		}
	}

	md := repo.Metadata{}
	md.SetString(compose.KeyMode, o.Mode)
	md.SetString(compose.KeyDigest, img.digest.String())
	md.SetString(compose.KeySource, o.Source)
	md.SetString(compose.KeyManifest, string(img.manifest))
	md.SetString(compose.KeyConfig, string(img.config))
	md.Set(compose.KeyXattrs, compose.BoolVariant(hasXattrs))
	co := &repo.CommitOptions{
		Subject:    "image " + img.name,
		Timestamp:  configCreated(img.config),
		NoParent:   true,
		Branch:     ref,
		NoBindings: true,
		Metadata:   md,
	}
	var rootTree, rootMeta repo.Checksum
	switch o.Mode {
	case compose.ModeLayered:
		// The image is composed on demand; the commit's own tree is empty.
		if rootMeta, err = tx.WriteDirMeta(&repo.DirMeta{Mode: repo.ModeDir | 0o755}); err != nil {
			return nil, err
		}
		if rootTree, err = tx.WriteDirTree(&repo.DirTree{}); err != nil {
			return nil, err
		}
		co.Related = related
	default:
		tree, err := compose.OpenLayers(tx, layers, compose.Options{Caches: c})
		if err != nil {
			return nil, err
		}
		var links map[string]string
		if rootTree, rootMeta, links, err = compose.WriteComposed(ctx, tx, tree); err != nil {
			return nil, err
		}
		if len(links) > 0 {
			md.Set(compose.KeyHardlinks, compose.HardlinksVariant(links))
		}
		if err := compose.AddIndex(ctx, tx, rootTree, &md, &co.Detached); err != nil {
			return nil, err
		}
		if o.Mode == compose.ModePrecomposed {
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
//
// The commit names the metadata index of its files (compose.AddIndex),
// which its detached metadata holds.
func WriteLayerCommit(ctx context.Context, tx *repo.Transaction, lr *LayerResult, subject string, md repo.Metadata) (repo.Checksum, error) {
	md.Set(compose.KeyXattrs, compose.BoolVariant(lr.HasXattrs))
	if len(lr.Hardlinks) > 0 {
		md.Set(compose.KeyHardlinks, compose.HardlinksVariant(lr.Hardlinks))
	}
	detached := tarSplitDetached(lr)
	if err := compose.AddIndex(ctx, tx, lr.Tree, &md, &detached); err != nil {
		return repo.Checksum{}, err
	}
	return tx.WriteCommitFor(lr.Tree, lr.Meta, &repo.CommitOptions{
		Subject:    subject,
		Timestamp:  time.Unix(0, 0),
		NoParent:   true,
		NoBindings: true,
		Metadata:   md,
		Detached:   detached,
	})
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
func reuseLayer(ctx context.Context, tx *repo.Transaction, diffID, chain digest.Digest, lower *compose.Tree) (repo.Checksum, bool, error) {
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
func fitsBase(ctx context.Context, r compose.ObjectReader, tree repo.Checksum, lower *compose.Tree) (bool, error) {
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
				if err != nil && !errors.Is(err, compose.ErrNotExist) && !errors.Is(err, compose.ErrNotDir) {
					return false, err
				}
				if err == nil && !le.IsDir() {
					m, err := r.ReadDirMeta(ctx, d.Meta)
					if err != nil {
						return false, err
					}
					if compose.ImplicitKind(m) != "" {
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
func importBlob(ctx context.Context, tx *repo.Transaction, lower *compose.Tree, l *layerInfo, open func() (io.ReadCloser, error), lim Limits) (*LayerResult, int64, error) {
	blob, err := open()
	if err != nil {
		return nil, 0, err
	}
	defer blob.Close()
	// Three stages, each in a goroutine of its own: the blob is read and
	// its digest checked; it is decompressed and its diff_id hashed; the
	// tar is parsed and its files hashed and written.
	// A prefetched blob arrives through a pipe that its download fills
	// in a goroutine of its own already: no second read-ahead (and copy).
	var braw io.Reader = blob
	if _, ok := blob.(*memPipe); !ok {
		ra := newReadAhead(blob, readAheadChunk, readAheadDepth)
		defer ra.Close()
		braw = ra
	}
	cnt := &countingReader{r: braw}
	zr, _, err := decompress(cnt)
	if err != nil {
		return nil, 0, err
	}
	defer zr.Close()
	if l.diffID.Algorithm() != digest.SHA256 {
		return nil, 0, fmt.Errorf("diff_id %s: only sha256 is supported: %w", l.diffID, source.ErrUnsupported)
	}
	h := sha256.New()
	ra := newReadAhead(io.TeeReader(zr, h), readAheadChunk, readAheadDepth)
	res, err := ImportLayer(ctx, tx, lower, ra, lim)
	ra.Close() // no longer reading zr, h or cnt
	if err != nil {
		// A blob damaged in transit mostly fails as a bad tar or
		// compressed stream first: read it to its end (at most its
		// size), and report a digest or size mismatch as the cause.
		if ctx.Err() == nil && !errors.Is(err, ErrLimit) {
			if _, derr := io.Copy(io.Discard, cnt); errors.Is(derr, source.ErrDigestMismatch) || errors.Is(derr, source.ErrSizeMismatch) {
				return nil, cnt.n, derr
			}
		}
		return nil, cnt.n, err
	}
	// Read the blob to its end, past any compressor padding, so that its
	// digest and size are checked.
	if _, err := io.Copy(io.Discard, cnt); err != nil {
		return nil, cnt.n, err
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != l.diffID {
		return nil, cnt.n, fmt.Errorf("uncompressed content has diff_id %s, config says %s: %w", got, l.diffID, source.ErrDigestMismatch)
	}
	return res, cnt.n, nil
}

// The decompressed stream is read ahead of the tar parser in chunks of
// readAheadChunk bytes, at most readAheadDepth of them.
const (
	readAheadChunk = 256 << 10
	readAheadDepth = 16
)

// neededLayers lists the layers whose blobs an import will read for
// sure: those with neither a chain ID nor a diff_id weak ref (the first
// of each diff_id only).
func neededLayers(r *repo.Repo, ls []layerInfo) []int {
	var out []int
	seen := map[digest.Digest]bool{}
	var chain digest.Digest
	for i, l := range ls {
		if chain == "" {
			chain = l.diffID
		} else {
			chain = digest.FromString(chain.String() + " " + l.diffID.String())
		}
		if seen[l.diffID] {
			continue
		}
		seen[l.diffID] = true
		_, err1 := r.ReadRef(chainRef(chain))
		_, err2 := r.ReadRef(layerRef(l.diffID))
		if errors.Is(err1, repo.ErrRefNotFound) && errors.Is(err2, repo.ErrRefNotFound) {
			out = append(out, i)
		}
	}
	return out
}

// progressReader reports the bytes read from a blob.
type progressReader struct {
	rc       io.ReadCloser
	index    int
	n, total int64
	fn       func(index int, done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	if n > 0 {
		p.n += int64(n)
		p.fn(p.index, p.n, p.total)
	}
	return n, err
}

func (p *progressReader) Close() error { return p.rc.Close() }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// tarSplitDetached is the detached metadata holding a layer's tar-split
// record, nil if it has none.
func tarSplitDetached(lr *LayerResult) repo.Metadata {
	if lr.TarSplit == nil {
		return nil
	}
	return repo.Metadata{{Key: compose.KeyTarSplit, Value: TarSplitVariant(lr.TarSplit)}}
}
