package export

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/image"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Compression formats of exported layers.
const (
	Gzip = "gzip"
	Zstd = "zstd"
	None = "none"
)

// ErrDiffID is wrapped when a replayed layer's diff_id is not the one its
// layer commit records: the export fails rather than emit it.
var ErrDiffID = errors.New("regenerated layer has the wrong diff_id")

// Options configure Export.
type Options struct {
	// Compression is Gzip (the default), Zstd or None. A docker-archive
	// always holds uncompressed layers.
	Compression string
	// Jobs bounds the layers exported at once; 0 means GOMAXPROCS.
	Jobs int
	// Warn, if set, is told about each layer exported with synthesized
	// headers (a different diff_id).
	Warn func(msg string)
}

// LayerResult describes one exported layer.
type LayerResult struct {
	Commit      repo.Checksum
	DiffID      digest.Digest
	Digest      digest.Digest
	Size        int64
	MediaType   string
	Synthesized bool // no record: headers synthesized, diff_id differs
}

// Result describes an export.
type Result struct {
	Manifest digest.Digest
	Config   digest.Digest
	Layers   []LayerResult
}

type layerJob struct {
	commit     repo.Checksum
	tree, meta repo.Checksum
	links      map[string]string
	ts         *image.TarSplit // nil: synthesize
	want       digest.Digest
}

// Export writes the image of manifest commit c to d.
func Export(ctx context.Context, r *repo.Repo, c repo.Checksum, d Dest, o Options) (*Result, error) {
	if o.Compression == "" {
		o.Compression = Gzip
	}
	if o.Compression != Gzip && o.Compression != Zstd && o.Compression != None {
		return nil, fmt.Errorf("compression %q: want gzip, zstd or none", o.Compression)
	}
	if d.Transport == "docker-archive" {
		o.Compression = None
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	cm, err := r.ReadCommit(ctx, c)
	if err != nil {
		return nil, err
	}
	mode, ok := cm.Metadata.String(compose.KeyMode)
	if !ok {
		return nil, fmt.Errorf("commit %s is not an image (no %s)", c, compose.KeyMode)
	}
	config, _ := cm.Metadata.String(compose.KeyConfig)
	var jobs []*layerJob
	switch mode {
	case compose.ModeLayered, compose.ModePrecomposed:
		for _, rel := range cm.Related {
			lc, err := r.ReadCommit(ctx, rel.Commit)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", rel.Name, err)
			}
			want, _ := lc.Metadata.String(compose.KeyDiffID)
			j := &layerJob{commit: rel.Commit, tree: lc.RootTree, meta: lc.RootMeta, links: readLinks(lc.Metadata), want: digest.Digest(want)}
			j.ts, err = image.ReadTarSplit(r, rel.Commit)
			if err != nil && !errors.Is(err, image.ErrNoTarSplit) {
				return nil, fmt.Errorf("layer %s: %w", rel.Name, err)
			}
			jobs = append(jobs, j)
		}
	case compose.ModeSquashed:
		jobs = []*layerJob{{commit: c, tree: cm.RootTree, meta: cm.RootMeta, links: readLinks(cm.Metadata)}}
	default:
		return nil, fmt.Errorf("commit %s: unknown mode %q", c, mode)
	}

	var stage, blobs string // stage: the layout or archive being made
	switch d.Transport {
	case "oci":
		stage = d.Path
		blobs = filepath.Join(stage, "blobs", "sha256")
	default:
		if stage, err = os.MkdirTemp(filepath.Dir(d.Path), ".tmp-export-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(stage)
		blobs = filepath.Join(stage, "blobs", "sha256")
	}
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, err
	}

	res := &Result{Layers: make([]LayerResult, len(jobs))}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Jobs)
	for i, j := range jobs {
		g.Go(func() error {
			lr, err := writeLayer(gctx, r, j, blobs, o.Compression)
			if err != nil {
				return fmt.Errorf("layer %d (commit %s): %w", i, j.commit, err)
			}
			res.Layers[i] = *lr
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	synth := mode == compose.ModeSquashed
	for i, l := range res.Layers {
		if l.Synthesized && mode != compose.ModeSquashed {
			synth = true
			if o.Warn != nil {
				o.Warn(fmt.Sprintf("layer %d (diff_id %s, commit %s) has no tar-split record (imported before records existed): exported with synthesized headers, diff_id %s", i, jobs[i].want, l.Commit, l.DiffID))
			}
		}
	}
	cfg := []byte(config)
	if synth {
		if cfg, err = rewriteConfig(cfg, res.Layers, mode == compose.ModeSquashed); err != nil {
			return nil, err
		}
	}
	res.Config = digest.FromBytes(cfg)
	if err := writeBlob(blobs, res.Config, cfg); err != nil {
		return nil, err
	}
	m := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: res.Config, Size: int64(len(cfg))},
		Layers:    []v1.Descriptor{},
	}
	for _, l := range res.Layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	res.Manifest = digest.FromBytes(mb)
	if err := writeBlob(blobs, res.Manifest, mb); err != nil {
		return nil, err
	}
	desc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: res.Manifest, Size: int64(len(mb))}
	switch d.Transport {
	case "oci":
		return res, writeIndex(stage, desc, d.Tag)
	case "oci-archive":
		if err := writeIndex(stage, desc, d.Tag); err != nil {
			return nil, err
		}
		return res, archiveDir(stage, d.Path)
	default:
		return res, writeDockerArchive(stage, blobs, d, res)
	}
}

// writeLayer generates a layer's tar, hashes it, compresses it into a
// temporary file of blobs and renames that after the blob's digest.
func writeLayer(ctx context.Context, r *repo.Repo, j *layerJob, blobs, comp string) (_ *LayerResult, err error) {
	f, err := os.CreateTemp(blobs, ".tmp-layer-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// An uncompressed blob is the tar: its digest is the diff_id, hashed
	// once.
	var bh hash.Hash
	cnt := &counter{}
	bw := bufio.NewWriterSize(io.MultiWriter(f, cnt), 1<<20)
	if comp != None {
		bh = sha256.New()
		bw = bufio.NewWriterSize(io.MultiWriter(f, bh, cnt), 1<<20)
	}
	lr := &LayerResult{Commit: j.commit, Synthesized: j.ts == nil}
	var zw io.WriteCloser
	switch comp {
	case Gzip:
		if zw, err = newPgzipWriter(bw, flate.DefaultCompression, runtime.GOMAXPROCS(0)); err != nil {
			return nil, err
		}
		lr.MediaType = v1.MediaTypeImageLayerGzip
	case Zstd:
		if zw, err = zstd.NewWriter(bw, zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0))); err != nil {
			return nil, err
		}
		lr.MediaType = v1.MediaTypeImageLayerZstd
	default:
		zw = nopCloser{bw}
		lr.MediaType = v1.MediaTypeImageLayer
	}
	dh := sha256.New()
	w := io.MultiWriter(zw, dh)
	if j.ts != nil {
		_, err = j.ts.WriteTo(ctx, r, w)
	} else {
		err = synthTar(ctx, r, j.tree, j.meta, j.links, w)
	}
	if err != nil {
		zw.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	lr.DiffID = sum(dh)
	if j.ts != nil && lr.DiffID != j.want {
		return nil, fmt.Errorf("%w: %s, the layer commit says %s", ErrDiffID, lr.DiffID, j.want)
	}
	lr.Digest, lr.Size = lr.DiffID, cnt.n
	if bh != nil {
		lr.Digest = sum(bh)
	}
	if err := f.Chmod(0o644); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(f.Name(), filepath.Join(blobs, lr.Digest.Encoded())); err != nil {
		return nil, err
	}
	return lr, nil
}

func sum(h hash.Hash) digest.Digest { return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)) }

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// writeBlob writes a small blob atomically.
func writeBlob(blobs string, d digest.Digest, b []byte) error {
	return writeAtomic(filepath.Join(blobs, d.Encoded()), b)
}

func writeAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), p)
}

// rewriteConfig replaces a config's rootfs.diff_ids (and, for a squashed
// image, drops its history, which no longer matches one layer).
func rewriteConfig(cfg []byte, layers []LayerResult, squashed bool) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	ids := []digest.Digest{}
	for _, l := range layers {
		ids = append(ids, l.DiffID)
	}
	rootfs, err := json.Marshal(v1.RootFS{Type: "layers", DiffIDs: ids})
	if err != nil {
		return nil, err
	}
	m["rootfs"] = rootfs
	if squashed {
		delete(m, "history")
	}
	return json.Marshal(m)
}

const refName = "org.opencontainers.image.ref.name"

// writeIndex writes oci-layout and index.json, keeping the manifests an
// existing index.json lists but one of the same tag.
func writeIndex(dir string, desc v1.Descriptor, tag string) error {
	if err := writeAtomic(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex}
	if b, err := os.ReadFile(filepath.Join(dir, "index.json")); err == nil {
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("existing index.json: %w", err)
		}
	}
	var keep []v1.Descriptor
	for _, m := range idx.Manifests {
		if (tag != "" && m.Annotations[refName] == tag) || (tag == "" && m.Digest == desc.Digest && m.Annotations[refName] == "") {
			continue
		}
		keep = append(keep, m)
	}
	if tag != "" {
		desc.Annotations = map[string]string{refName: tag}
	}
	idx.Manifests = append(keep, desc)
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "index.json"), b)
}

// writeDockerArchive writes a docker-archive as skopeo does: the config
// as HEX.json, each layer as DIFFHEX.tar (uncompressed), manifest.json.
func writeDockerArchive(stage, blobs string, d Dest, res *Result) error {
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	e := entry{Config: res.Config.Encoded() + ".json", RepoTags: []string{}}
	if d.Tag != "" {
		e.RepoTags = []string{d.Tag}
	}
	files := []archFile{{name: "manifest.json"}, {name: e.Config, src: filepath.Join(blobs, res.Config.Encoded())}}
	for _, l := range res.Layers {
		n := l.DiffID.Encoded() + ".tar"
		e.Layers = append(e.Layers, n)
		files = append(files, archFile{name: n, src: filepath.Join(blobs, l.Digest.Encoded())})
	}
	mb, err := json.Marshal([]entry{e})
	if err != nil {
		return err
	}
	files[0].data = mb
	return writeArchive(d.Path, files)
}

type archFile struct {
	name string
	src  string // file to copy, or
	data []byte
}

// archiveDir writes an oci-archive: a tar of the layout in dir.
func archiveDir(dir, out string) error {
	files := []archFile{{name: "oci-layout", src: filepath.Join(dir, "oci-layout")}, {name: "index.json", src: filepath.Join(dir, "index.json")}}
	ents, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		files = append(files, archFile{name: "blobs/sha256/" + e.Name(), src: filepath.Join(dir, "blobs", "sha256", e.Name())})
	}
	return writeArchive(out, files)
}

// writeArchive writes a tar of files to a temporary file beside out,
// then renames it to out.
func writeArchive(out string, files []archFile) (err error) {
	f, err := os.CreateTemp(filepath.Dir(out), ".tmp-archive-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	dirs := false
	for _, a := range files {
		if strings.HasPrefix(a.name, "blobs/") && !dirs {
			dirs = true
			for _, dir := range []string{"blobs/", "blobs/sha256/"} {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}); err != nil {
					return err
				}
			}
		}
		if a.src == "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: a.name, Mode: 0o644, Size: int64(len(a.data))}); err != nil {
				return err
			}
			if _, err := tw.Write(a.data); err != nil {
				return err
			}
			continue
		}
		src, err := os.Open(a.src)
		if err != nil {
			return err
		}
		fi, err := src.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: a.name, Mode: 0o644, Size: fi.Size()})
		}
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), out)
}
