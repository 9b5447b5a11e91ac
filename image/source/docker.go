package source

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerItem is one image of a docker-archive manifest.json.
type dockerItem struct {
	Config       string
	RepoTags     []string
	Layers       []string
	LayerSources map[string]v1.Descriptor `json:",omitempty"`
}

// dockerManifest is the synthesized Docker v2s2 manifest of a docker-archive
// image.
type dockerManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        v1.Descriptor   `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
}

// splitDockerRef splits "FILE[:NAME:TAG]" (or "FILE:@N"): the whole string
// if it names an existing file, else the shortest prefix ending before a ':'
// that names a regular file.
func splitDockerRef(rest string) (file, sel string) {
	if fi, err := os.Stat(rest); err == nil && fi.Mode().IsRegular() {
		return rest, ""
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] != ':' {
			continue
		}
		if fi, err := os.Stat(rest[:i]); err == nil && fi.Mode().IsRegular() {
			return rest[:i], rest[i+1:]
		}
	}
	return rest, ""
}

// normalizeRepoTag maps "docker.io/library/x:t", "docker.io/x:t" and
// "library/x:t" to "x:t"-style short names and adds ":latest" when the
// reference has no tag or digest.
func normalizeRepoTag(s string) string {
	for _, p := range []string{"docker.io/", "index.docker.io/"} {
		if strings.HasPrefix(s, p) {
			s = strings.TrimPrefix(s, p)
			break
		}
	}
	s = strings.TrimPrefix(s, "library/")
	last := s[strings.LastIndexByte(s, '/')+1:]
	if !strings.ContainsAny(last, ":@") {
		s += ":latest"
	}
	return s
}

var hexName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-f0-9]{64}$`) })

// blobsDigest derives the digest of a "blobs/<alg>/<enc>" member name.
func blobsDigest(name string) (digest.Digest, bool) {
	if parts := strings.Split(name, "/"); len(parts) == 3 && parts[0] == "blobs" {
		if d, err := parseDigest(parts[1] + ":" + parts[2]); err == nil {
			return d, true
		}
	}
	return "", false
}

// digestFromName derives the digest a config file name encodes, if any:
// "blobs/<alg>/<enc>" or "<64 hex>.json" (sha256).
func digestFromName(name string) (digest.Digest, bool) {
	if strings.HasPrefix(name, "blobs/") {
		return blobsDigest(name)
	}
	base, ok := strings.CutSuffix(path.Base(name), ".json")
	if ok && hexName().MatchString(base) {
		return digest.NewDigestFromEncoded(digest.SHA256, base), true
	}
	return "", false
}

// checkMemberName validates a file name taken from manifest.json: it must be
// clean, relative and free of "..".
func checkMemberName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty file name", ErrInvalid)
	}
	if strings.HasPrefix(s, "/") || path.Clean(s) != s || strings.ContainsRune(s, 0) {
		return fmt.Errorf("%w: file name %q is not a clean relative path", ErrInvalid, s)
	}
	for _, c := range strings.Split(s, "/") {
		if c == ".." || c == "." {
			return fmt.Errorf("%w: file name %q contains %q", ErrInvalid, s, c)
		}
	}
	return nil
}

func openDockerArchive(ctx context.Context, rest string, want platformWant) (*localImage, error) {
	file, sel := splitDockerRef(rest)
	where := "docker-archive:" + file
	st, err := openArchiveStore(ctx, file, where)
	if err != nil {
		return nil, err
	}
	img, err := readDockerArchive(ctx, st, where, file, sel, want)
	if err != nil {
		st.close()
		return nil, err
	}
	img.closeFn = st.close
	return img, nil
}

func readDockerArchive(ctx context.Context, st *archiveStore, where, file, sel string, want platformWant) (*localImage, error) {
	errf := func(at string, err error) error {
		return fmt.Errorf("source: %s: %s: %w", where, at, err)
	}
	b, err := readSmallFile(st, "manifest.json")
	if err != nil {
		if errNotExist(err) {
			if st.exists("repositories") {
				return nil, errf("manifest.json", fmt.Errorf("%w: archive has no manifest.json (pre-1.10 `docker save` format)", ErrUnsupported))
			}
			return nil, errf("manifest.json", fmt.Errorf("%w: not a docker-archive (no manifest.json)", ErrNotFound))
		}
		return nil, errf("manifest.json", err)
	}
	var items []dockerItem
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, errf("manifest.json", fmt.Errorf("%w: parsing JSON: %v", ErrInvalid, err))
	}
	if len(items) == 0 {
		return nil, errf("manifest.json", fmt.Errorf("%w: archive holds no images", ErrNotFound))
	}
	listAll := func() string {
		var s []string
		for i, it := range items {
			if len(it.RepoTags) == 0 {
				s = append(s, fmt.Sprintf("@%d (untagged)", i))
			}
			for _, t := range it.RepoTags {
				s = append(s, strconv.Quote(t))
			}
		}
		return strings.Join(s, ", ")
	}
	pick, name := -1, ""
	switch {
	case sel == "":
		if len(items) != 1 {
			return nil, errf("manifest.json", fmt.Errorf("%w: archive holds %d images; append :NAME:TAG or :@N (available: %s)", ErrNotFound, len(items), listAll()))
		}
		pick = 0
	case strings.HasPrefix(sel, "@"):
		n, err := strconv.Atoi(sel[1:])
		if err != nil || n < 0 || n >= len(items) {
			return nil, errf("manifest.json", fmt.Errorf("%w: image %s (archive holds %d images)", ErrNotFound, sel, len(items)))
		}
		pick = n
	default:
		w := normalizeRepoTag(sel)
	search:
		for i, it := range items {
			for _, t := range it.RepoTags {
				if normalizeRepoTag(t) == w {
					pick, name = i, w
					break search
				}
			}
		}
		if pick < 0 {
			return nil, errf("manifest.json", fmt.Errorf("%w: image %q (available: %s)", ErrNotFound, sel, listAll()))
		}
	}
	it := items[pick]
	if name == "" {
		if len(it.RepoTags) > 0 {
			name = normalizeRepoTag(it.RepoTags[0])
		} else {
			name = baseName(file)
		}
	}
	at := fmt.Sprintf("manifest.json[%d]", pick)

	// Config.
	cat := at + " Config " + strconv.Quote(it.Config)
	if err := checkMemberName(it.Config); err != nil {
		return nil, errf(cat, err)
	}
	cb, err := readSmallFile(st, it.Config)
	if err != nil {
		if errNotExist(err) {
			return nil, errf(cat, fmt.Errorf("%w: config file: %v", ErrNotFound, err))
		}
		return nil, errf(cat, err)
	}
	cdg := digest.FromBytes(cb)
	if nd, ok := digestFromName(it.Config); ok {
		if got := nd.Algorithm().FromBytes(cb); got != nd {
			return nil, errf(cat, fmt.Errorf("%w: config file name says %s, content has %s", ErrDigestMismatch, nd, got))
		}
	}
	cat += " (" + string(cdg) + ")"
	plat, diffIDs, err := parseConfig(cb, len(it.Layers))
	if err != nil {
		return nil, errf(cat, err)
	}
	if want.explicit && !want.matchesConfig(plat) {
		return nil, errf(cat, fmt.Errorf("%w: image is for platform %s, not the requested %s", ErrNotFound, platformString(&plat), want))
	}

	// Layers.
	man := dockerManifest{
		SchemaVersion: 2,
		MediaType:     mtDockerManifest,
		Config:        v1.Descriptor{MediaType: mtDockerConfig, Digest: cdg, Size: int64(len(cb))},
		Layers:        make([]v1.Descriptor, len(it.Layers)),
	}
	layers := make([]*blobLayer, len(it.Layers))
	for i, ln := range it.Layers {
		lat := fmt.Sprintf("%s Layers[%d] %q", at, i, ln)
		if err := checkMemberName(ln); err != nil {
			return nil, errf(lat, err)
		}
		d, err := dockerLayer(ctx, st, ln, diffIDs[i], it.LayerSources)
		if err != nil {
			return nil, errf(lat, err)
		}
		lwhere := fmt.Sprintf("source: %s: %s (%s)", where, lat, d.Digest)
		man.Layers[i] = d
		layers[i] = &blobLayer{digest: d.Digest, diffID: diffIDs[i], mediaType: d.MediaType, size: d.Size, open: st.layerOpener(lwhere, ln, d)}
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return nil, errf(at, err)
	}
	return &localImage{
		transport:         "docker-archive",
		name:              name,
		manifestDigest:    digest.FromBytes(mb),
		manifest:          mb,
		manifestMediaType: mtDockerManifest,
		config:            cb,
		configDigest:      cdg,
		platform:          plat,
		layers:            layers,
	}, nil
}

// dockerLayer describes the layer file name of a docker-archive. Its digest
// is taken from a blobs/<alg>/<enc> name, else is the diffID for an
// uncompressed layer, else is computed by hashing the file.
func dockerLayer(ctx context.Context, st *archiveStore, name string, diffID digest.Digest, sources map[string]v1.Descriptor) (v1.Descriptor, error) {
	e, final, err := st.resolve(name)
	if err != nil {
		if errNotExist(err) {
			if src, ok := sources[string(diffID)]; ok {
				// A foreign layer that was not saved: describe it, never fetch it.
				if err := checkDescriptor(src); err != nil {
					return v1.Descriptor{}, fmt.Errorf("LayerSources[%s]: %w", diffID, err)
				}
				return src, nil
			}
			return v1.Descriptor{}, fmt.Errorf("%w: layer file: %v", ErrNotFound, err)
		}
		return v1.Descriptor{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if e.typ != entryFile {
		return v1.Descriptor{}, fmt.Errorf("%w: %s is not a regular file in the archive", ErrInvalid, final)
	}
	var magic [4]byte
	n, _ := st.f.ReadAt(magic[:], e.off)
	mt := mtDockerLayerTar
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		mt = mtDockerLayerGzip
	case n == 4 && magic == [4]byte{0x28, 0xb5, 0x2f, 0xfd}:
		mt = mtDockerLayerZstd
	}
	d := v1.Descriptor{MediaType: mt, Size: e.size}
	if nd, ok := blobsDigest(name); ok {
		d.Digest = nd
	} else if nd, ok := blobsDigest(final); ok {
		d.Digest = nd
	} else if mt == mtDockerLayerTar {
		d.Digest = diffID // uncompressed: the blob is the diff
	} else {
		dg, err := hashSection(ctx, io.NewSectionReader(st.f, e.off, e.size))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("hashing %s: %w", final, err)
		}
		d.Digest = dg
	}
	return d, nil
}

// hashSection computes the sha256 digest of r, checking ctx as it goes.
func hashSection(ctx context.Context, r io.Reader) (digest.Digest, error) {
	dg := digest.SHA256.Digester()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := r.Read(buf)
		dg.Hash().Write(buf[:n])
		if err == io.EOF {
			return dg.Digest(), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// layerOpener serves a docker-archive layer file, or reports a foreign
// layer that is not in the archive.
func (a *archiveStore) layerOpener(where, name string, d v1.Descriptor) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		rc, _, err := a.open(name)
		if err != nil {
			if errNotExist(err) {
				return nil, fmt.Errorf("%s: %w", where, notFoundBlob(d, true))
			}
			return nil, fmt.Errorf("%s: opening layer file: %w", where, err)
		}
		return newVerifyingReader(rc, where, d.Digest, d.Size), nil
	}
}
