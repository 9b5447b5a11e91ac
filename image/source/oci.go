package source

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types this package knows about.
const (
	mtOCIManifest    = v1.MediaTypeImageManifest
	mtOCIIndex       = v1.MediaTypeImageIndex
	mtOCIConfig      = v1.MediaTypeImageConfig
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"
	mtDockerSchema1  = "application/vnd.docker.distribution.manifest.v1+json"
	mtDockerSchema1S = "application/vnd.docker.distribution.manifest.v1+prettyjws"

	mtDockerLayerTar     = "application/vnd.docker.image.rootfs.diff.tar"
	mtDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	mtDockerLayerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mtOCINondistPrefix   = "application/vnd.oci.image.layer.nondistributable."
)

// maxIndexDepth bounds index nesting (index.json → index → … → manifest).
const maxIndexDepth = 8

// refNameAnnotation is the OCI tag annotation of index.json entries.
const refNameAnnotation = v1.AnnotationRefName

func isSchema1(mt string) bool { return mt == mtDockerSchema1 || mt == mtDockerSchema1S }
func isManifestType(mt string) bool {
	return mt == mtOCIManifest || mt == mtDockerManifest
}
func isIndexType(mt string) bool { return mt == mtOCIIndex || mt == mtDockerList }

// isForeignType reports layer media types whose blobs may live elsewhere.
func isForeignType(mt string) bool {
	return mt == mtDockerLayerForeign || strings.HasPrefix(mt, mtOCINondistPrefix)
}

// document is the union of the fields of manifests and indexes that matter
// for telling them apart.
type document struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	FSLayers      json.RawMessage   `json:"fsLayers"`
	Annotations   map[string]string `json:"annotations"`
}

// parseDocument parses a manifest or index. descMT is the media type of the
// descriptor that referenced it ("" if none). It returns the document and
// its effective media type, which is a manifest or an index type.
func parseDocument(b []byte, descMT string) (*document, string, error) {
	if isSchema1(descMT) {
		return nil, "", fmt.Errorf("%w: Docker schema1 manifest (%s); convert it with `skopeo copy --format v2s2`", ErrUnsupported, descMT)
	}
	var doc document
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, "", fmt.Errorf("%w: parsing JSON: %v", ErrInvalid, err)
	}
	if doc.SchemaVersion == 1 || isSchema1(doc.MediaType) || doc.FSLayers != nil {
		return nil, "", fmt.Errorf("%w: Docker schema1 manifest; convert it with `skopeo copy --format v2s2`", ErrUnsupported)
	}
	if doc.SchemaVersion != 2 {
		return nil, "", fmt.Errorf("%w: schemaVersion is %d, want 2", ErrInvalid, doc.SchemaVersion)
	}
	if doc.Manifests != nil && (doc.Layers != nil || doc.Config != nil) {
		return nil, "", fmt.Errorf("%w: document has both \"manifests\" and \"layers\"/\"config\" (ambiguous manifest/index, CVE-2021-41190)", ErrInvalid)
	}
	mt := doc.MediaType
	if mt != "" && descMT != "" && mt != descMT {
		return nil, "", fmt.Errorf("%w: document mediaType %q differs from its descriptor's %q", ErrInvalid, mt, descMT)
	}
	if mt == "" {
		mt = descMT
	}
	switch {
	case mt == "":
		// umoci omits mediaType: decide by fields.
		switch {
		case doc.Manifests != nil:
			mt = mtOCIIndex
		case doc.Config != nil:
			mt = mtOCIManifest
		default:
			return nil, "", fmt.Errorf("%w: document has no mediaType and neither \"manifests\" nor \"config\"", ErrInvalid)
		}
	case isManifestType(mt):
		if doc.Manifests != nil {
			return nil, "", fmt.Errorf("%w: %s document has \"manifests\"", ErrInvalid, mt)
		}
	case isIndexType(mt):
		if doc.Layers != nil || doc.Config != nil {
			return nil, "", fmt.Errorf("%w: %s document has \"layers\"/\"config\"", ErrInvalid, mt)
		}
	default:
		return nil, "", fmt.Errorf("%w: media type %q is not an image manifest or index", ErrUnsupported, mt)
	}
	if isManifestType(mt) && doc.Config == nil {
		return nil, "", fmt.Errorf("%w: manifest has no config", ErrInvalid)
	}
	return &doc, mt, nil
}

// imageConfig holds the fields of an image config this package checks.
type imageConfig struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version"`
	OSFeatures   []string `json:"os.features"`
	Variant      string   `json:"variant"`
	RootFS       *struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// parseConfig checks a config against the number of layers of its manifest
// and returns its platform and diff_ids.
func parseConfig(b []byte, nLayers int) (v1.Platform, []digest.Digest, error) {
	var c imageConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return v1.Platform{}, nil, fmt.Errorf("%w: parsing config JSON: %v", ErrInvalid, err)
	}
	if c.RootFS == nil {
		return v1.Platform{}, nil, fmt.Errorf("%w: config has no rootfs", ErrInvalid)
	}
	if c.RootFS.Type != "layers" {
		return v1.Platform{}, nil, fmt.Errorf("%w: config rootfs.type is %q, want \"layers\"", ErrInvalid, c.RootFS.Type)
	}
	if len(c.RootFS.DiffIDs) != nLayers {
		return v1.Platform{}, nil, fmt.Errorf("%w: config has %d rootfs.diff_ids for %d layers", ErrInvalid, len(c.RootFS.DiffIDs), nLayers)
	}
	ids := make([]digest.Digest, len(c.RootFS.DiffIDs))
	for i, s := range c.RootFS.DiffIDs {
		d, err := parseDigest(s)
		if err != nil {
			return v1.Platform{}, nil, fmt.Errorf("config rootfs.diff_ids[%d]: %w", i, err)
		}
		ids[i] = d
	}
	p := v1.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant, OSVersion: c.OSVersion, OSFeatures: c.OSFeatures}
	return p, ids, nil
}

// ociReader opens an image from an OCI layout served by st.
type ociReader struct {
	ctx   context.Context
	st    fileStore
	where string // "oci:DIR" or "oci-archive:FILE"
	want  platformWant
}

func (r *ociReader) errf(at string, err error) error {
	return fmt.Errorf("source: %s: %s: %w", r.where, at, err)
}

func openOCI(ctx context.Context, st fileStore, transport, where, tag, base string, want platformWant) (*localImage, error) {
	r := &ociReader{ctx: ctx, st: st, where: where, want: want}

	b, err := readSmallFile(st, "oci-layout")
	if err != nil {
		if errNotExist(err) {
			return nil, r.errf("oci-layout", fmt.Errorf("%w: not an OCI image layout (no oci-layout file)", ErrNotFound))
		}
		return nil, r.errf("oci-layout", err)
	}
	var layout struct {
		Version *string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(b, &layout); err != nil {
		return nil, r.errf("oci-layout", fmt.Errorf("%w: parsing JSON: %v", ErrInvalid, err))
	}
	if layout.Version == nil {
		return nil, r.errf("oci-layout", fmt.Errorf("%w: no imageLayoutVersion", ErrInvalid))
	}
	if *layout.Version != "1.0.0" {
		return nil, r.errf("oci-layout", fmt.Errorf("%w: imageLayoutVersion %q, want \"1.0.0\"", ErrUnsupported, *layout.Version))
	}

	b, err = readSmallFile(st, "index.json")
	if err != nil {
		if errNotExist(err) {
			return nil, r.errf("index.json", fmt.Errorf("%w: not an OCI image layout (no index.json)", ErrNotFound))
		}
		return nil, r.errf("index.json", err)
	}
	idx, mt, err := parseDocument(b, "")
	if err != nil {
		return nil, r.errf("index.json", err)
	}
	if !isIndexType(mt) {
		return nil, r.errf("index.json", fmt.Errorf("%w: index.json is a %s, not an image index", ErrInvalid, mt))
	}

	var cands []int
	for i, d := range idx.Manifests {
		if tag == "" || d.Annotations[refNameAnnotation] == tag {
			cands = append(cands, i)
		}
	}
	switch {
	case tag != "" && len(cands) == 0:
		return nil, r.errf("index.json", fmt.Errorf("%w: tag %q; available tags: %s", ErrNotFound, tag, listTags(idx.Manifests)))
	case len(cands) == 0:
		return nil, r.errf("index.json", fmt.Errorf("%w: index.json lists no images", ErrNotFound))
	case tag == "" && len(cands) > 1:
		return nil, r.errf("index.json", fmt.Errorf("%w: no tag given and index.json lists %d images; append :TAG (available tags: %s)", ErrNotFound, len(cands), listTags(idx.Manifests)))
	}
	pick := cands[0]
	if len(cands) > 1 { // several entries carry the tag: choose by platform
		pick = -1
		for _, i := range cands {
			if want.matches(idx.Manifests[i].Platform) {
				pick = i
				break
			}
		}
		if pick < 0 {
			var avail []string
			for _, i := range cands {
				avail = append(avail, platformString(idx.Manifests[i].Platform))
			}
			return nil, r.errf("index.json", fmt.Errorf("%w: no entry tagged %q for platform %s (available: %s)", ErrNotFound, tag, want, strings.Join(avail, ", ")))
		}
	}
	top := idx.Manifests[pick]
	trail := fmt.Sprintf("index.json manifests[%d]", pick)
	res, err := r.resolve(top, trail, 0)
	if err != nil {
		return nil, err
	}
	img, err := r.fromManifest(res)
	if err != nil {
		return nil, err
	}
	img.transport = transport
	img.name = base
	if name := top.Annotations[refNameAnnotation]; tagRe().MatchString(name) {
		img.name = base + ":" + name
	}
	img.closeFn = st.close
	return img, nil
}

// listTags lists the tags of index entries for error messages.
func listTags(ds []v1.Descriptor) string {
	var tags []string
	for _, d := range ds {
		if t, ok := d.Annotations[refNameAnnotation]; ok {
			tags = append(tags, fmt.Sprintf("%q", t))
		} else {
			tags = append(tags, "(untagged "+string(d.Digest)+")")
		}
	}
	if len(tags) == 0 {
		return "none"
	}
	return strings.Join(tags, ", ")
}

// resolved is a manifest found by resolve.
type resolved struct {
	at     string // index path that led to it, for errors
	digest digest.Digest
	raw    []byte
	doc    *document
	mt     string // effective media type
}

// resolve reads the document d refers to and, while it is an index, selects
// an entry by platform.
func (r *ociReader) resolve(d v1.Descriptor, trail string, depth int) (*resolved, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, r.errf(trail, err)
	}
	if err := checkDescriptor(d); err != nil {
		return nil, r.errf(trail, err)
	}
	at := trail + " (" + string(d.Digest) + ")"
	if isSchema1(d.MediaType) {
		return nil, r.errf(at, fmt.Errorf("%w: Docker schema1 manifest (%s); convert it with `skopeo copy --format v2s2`", ErrUnsupported, d.MediaType))
	}
	if d.MediaType != "" && !isManifestType(d.MediaType) && !isIndexType(d.MediaType) {
		return nil, r.errf(at, fmt.Errorf("%w: media type %q is not an image manifest or index", ErrUnsupported, d.MediaType))
	}
	b, err := readBlob(r.st, d, false)
	if err != nil {
		return nil, r.errf(at, err)
	}
	doc, mt, err := parseDocument(b, d.MediaType)
	if err != nil {
		return nil, r.errf(at, err)
	}
	if isManifestType(mt) {
		return &resolved{at: at, digest: d.Digest, raw: b, doc: doc, mt: mt}, nil
	}
	if depth+1 >= maxIndexDepth {
		return nil, r.errf(at, fmt.Errorf("%w: indexes nested more than %d deep", ErrInvalid, maxIndexDepth))
	}
	var cands []int
	for i, c := range doc.Manifests {
		if c.MediaType == "" || isManifestType(c.MediaType) || isIndexType(c.MediaType) {
			cands = append(cands, i)
		}
	}
	pick := -1
	if len(cands) == 1 && doc.Manifests[cands[0]].Platform == nil {
		pick = cands[0]
	} else {
		for _, i := range cands {
			if r.want.matches(doc.Manifests[i].Platform) {
				pick = i
				break
			}
		}
	}
	if pick < 0 {
		var avail []string
		for _, i := range cands {
			avail = append(avail, platformString(doc.Manifests[i].Platform))
		}
		if len(avail) == 0 {
			avail = []string{"none"}
		}
		return nil, r.errf(at, fmt.Errorf("%w: no manifest for platform %s in index (available: %s)", ErrNotFound, r.want, strings.Join(avail, ", ")))
	}
	return r.resolve(doc.Manifests[pick], fmt.Sprintf("%s → manifests[%d]", at, pick), depth+1)
}

// fromManifest reads and checks the config of a manifest and lists its
// layers.
func (r *ociReader) fromManifest(res *resolved) (*localImage, error) {
	at, m := res.at, res.doc
	cd := *m.Config
	cat := at + " config"
	if err := checkDescriptor(cd); err != nil {
		return nil, r.errf(cat, err)
	}
	cat += " " + string(cd.Digest)
	switch cd.MediaType {
	case "", mtOCIConfig, mtDockerConfig:
	default:
		return nil, r.errf(cat, fmt.Errorf("%w: config media type %q: not a container image", ErrUnsupported, cd.MediaType))
	}
	cb, err := readBlob(r.st, cd, false)
	if err != nil {
		return nil, r.errf(cat, err)
	}
	plat, diffIDs, err := parseConfig(cb, len(m.Layers))
	if err != nil {
		return nil, r.errf(cat, err)
	}
	if r.want.explicit && !r.want.matchesConfig(plat) {
		return nil, r.errf(cat, fmt.Errorf("%w: image is for platform %s, not the requested %s", ErrNotFound, platformString(&plat), r.want))
	}
	img := &localImage{
		manifestDigest:    res.digest,
		manifest:          res.raw,
		manifestMediaType: res.mt,
		config:            cb,
		configDigest:      cd.Digest,
		platform:          plat,
		layers:            make([]*blobLayer, len(m.Layers)),
	}
	for i, ld := range m.Layers {
		if err := checkDescriptor(ld); err != nil {
			return nil, r.errf(fmt.Sprintf("%s layers[%d]", at, i), err)
		}
		img.layers[i] = &blobLayer{
			digest:    ld.Digest,
			diffID:    diffIDs[i],
			mediaType: ld.MediaType,
			size:      ld.Size,
			open:      r.layerOpener(fmt.Sprintf("source: %s: %s layers[%d] (%s)", r.where, at, i, ld.Digest), ld),
		}
	}
	return img, nil
}

func (r *ociReader) layerOpener(where string, d v1.Descriptor) func() (io.ReadCloser, error) {
	st := r.st
	return func() (io.ReadCloser, error) {
		rc, _, err := st.open(blobPath(d.Digest))
		if err != nil {
			if errNotExist(err) {
				return nil, fmt.Errorf("%s: %w", where, notFoundBlob(d, isForeignType(d.MediaType)))
			}
			return nil, fmt.Errorf("%s: opening blob: %w", where, err)
		}
		return newVerifyingReader(rc, where, d.Digest, d.Size), nil
	}
}
