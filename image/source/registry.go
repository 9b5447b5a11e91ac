package source

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrAuth marks a registry's refusal of the credentials (401 or 403).
var ErrAuth = errors.New("access denied")

// RegistryOptions configure the docker:// transport, with skopeo's
// meanings.
type RegistryOptions struct {
	// Insecure is skopeo's --tls-verify=false: plain HTTP is allowed and
	// TLS certificates are not verified.
	Insecure bool
	// Creds is "USER[:PASSWORD]"; it takes precedence over AuthFile.
	Creds string
	// AuthFile is a containers auth.json or Docker config.json. "" means
	// $REGISTRY_AUTH_FILE, then $XDG_RUNTIME_DIR/containers/auth.json,
	// then ~/.docker/config.json: the first that exists.
	AuthFile string
}

// remoteJobs caps the library's blob GETs in flight. The consumer bounds
// its downloads itself (image.Import's Jobs, 3 as in containers/image,
// plus a blob it fetches out of turn); this cap sits above that, so that
// streams parked in read-ahead can never keep a needed blob waiting.
const remoteJobs = 8

// openRegistry opens docker://HOST[:PORT]/NAME[:TAG|@DIGEST].
func openRegistry(ctx context.Context, rest string, want platformWant, o RegistryOptions) (*localImage, error) {
	where := "docker:" + rest
	if !strings.HasPrefix(rest, "//") {
		return nil, fmt.Errorf("source: %s: %w: want docker://HOST[:PORT]/NAME[:TAG|@DIGEST]", where, ErrInvalid)
	}
	rest = rest[2:]
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(rest, nopts...)
	if err != nil {
		return nil, fmt.Errorf("source: %s: %w: %v", where, ErrInvalid, err)
	}
	auth, err := registryAuth(ref.Context(), o)
	if err != nil {
		return nil, fmt.Errorf("source: %s: %w", where, err)
	}
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	if o.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --tls-verify=false
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(auth),
		remote.WithTransport(tr),
		remote.WithJobs(remoteJobs),
		remote.WithUserAgent("ostree-mount"),
	}
	// One puller shares its authenticated transport (and bearer token,
	// which the transport refreshes on a 401) among all requests.
	p, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, fmt.Errorf("source: %s: %w", where, err)
	}
	ropts = append(ropts, remote.Reuse(p))
	rr := &registryReader{ctx: ctx, where: where, ref: ref, opts: ropts, want: want}
	img, err := rr.open()
	if err != nil {
		return nil, err
	}
	img.transport = "docker"
	repoName := ref.Context().RepositoryStr()
	switch r := ref.(type) {
	case name.Tag:
		img.name = repoName + ":" + r.TagStr()
	default:
		img.name = repoName
	}
	return img, nil
}

type registryReader struct {
	ctx   context.Context
	where string
	ref   name.Reference
	opts  []remote.Option
	want  platformWant
}

func (r *registryReader) errf(at string, err error) error {
	if at == "" {
		return fmt.Errorf("source: %s: %w", r.where, err)
	}
	return fmt.Errorf("source: %s: %s: %w", r.where, at, err)
}

// netErr classifies an error of the registry client and keeps it on one
// line.
func netErr(err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		msg := strings.Join(strings.Fields(te.Error()), " ")
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w (%d %s): %s", ErrAuth, te.StatusCode, http.StatusText(te.StatusCode), msg)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNotFound, msg)
		}
		return errors.New(msg)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("unknown host %q: %w", dnsErr.Name, err)
	}
	return err
}

// manifestTypes are the media types a registry may answer with.
var manifestTypes = []string{mtOCIManifest, mtDockerManifest, mtOCIIndex, mtDockerList}

// getManifest fetches the manifest or index ref names, checking its digest.
func (r *registryReader) getManifest(ref name.Reference, at string) (*resolved, error) {
	d, err := remote.Get(ref, r.opts...)
	if err != nil {
		return nil, r.errf(at, netErr(err))
	}
	b := d.Manifest
	if len(b) > maxJSONSize {
		return nil, r.errf(at, fmt.Errorf("%w: manifest is %d bytes, more than the %d-byte limit", ErrInvalid, len(b), maxJSONSize))
	}
	got := digest.FromBytes(b)
	if dr, ok := ref.(name.Digest); ok {
		want, err := parseDigest(dr.DigestStr())
		if err != nil {
			return nil, r.errf(at, err)
		}
		got = want.Algorithm().FromBytes(b)
		if got != want {
			return nil, r.errf(at, fmt.Errorf("%w: manifest has digest %s", ErrDigestMismatch, got))
		}
	}
	mt := string(d.MediaType)
	if isSchema1(mt) {
		return nil, r.errf(at, fmt.Errorf("%w: Docker schema1 manifest (%s); convert it with `skopeo copy --format v2s2`", ErrUnsupported, mt))
	}
	known := false
	for _, k := range manifestTypes {
		known = known || mt == k
	}
	if !known {
		return nil, r.errf(at, fmt.Errorf("%w: manifest media type %q (want an OCI or Docker schema 2 image manifest or index)", ErrUnsupported, mt))
	}
	doc, mt, err := parseDocument(b, mt)
	if err != nil {
		return nil, r.errf(at, err)
	}
	return &resolved{at: at, digest: got, raw: b, doc: doc, mt: mt}, nil
}

func (r *registryReader) open() (*localImage, error) {
	res, err := r.getManifest(r.ref, "manifest")
	if err != nil {
		return nil, err
	}
	for depth := 0; isIndexType(res.mt); depth++ {
		if depth+1 >= maxIndexDepth {
			return nil, r.errf(res.at, fmt.Errorf("%w: indexes nested more than %d deep", ErrInvalid, maxIndexDepth))
		}
		pick := -1
		for i, c := range res.doc.Manifests {
			if c.MediaType != "" && !isManifestType(c.MediaType) && !isIndexType(c.MediaType) {
				continue
			}
			if r.want.matches(c.Platform) {
				pick = i
				break
			}
		}
		if pick < 0 {
			var avail []string
			for _, c := range res.doc.Manifests {
				avail = append(avail, platformString(c.Platform))
			}
			if len(avail) == 0 {
				avail = []string{"none"}
			}
			return nil, r.errf(res.at, fmt.Errorf("%w: no manifest for platform %s in index (available: %s)", ErrNotFound, r.want, strings.Join(avail, ", ")))
		}
		c := res.doc.Manifests[pick]
		if err := checkDescriptor(c); err != nil {
			return nil, r.errf(res.at, err)
		}
		at := fmt.Sprintf("%s → manifests[%d] (%s)", res.at, pick, c.Digest)
		if res, err = r.getManifest(r.ref.Context().Digest(c.Digest.String()), at); err != nil {
			return nil, err
		}
	}
	m := res.doc
	cd := *m.Config
	cat := res.at + " config"
	if err := checkDescriptor(cd); err != nil {
		return nil, r.errf(cat, err)
	}
	cat += " " + string(cd.Digest)
	switch cd.MediaType {
	case "", mtOCIConfig, mtDockerConfig:
	default:
		return nil, r.errf(cat, fmt.Errorf("%w: config media type %q: not a container image", ErrUnsupported, cd.MediaType))
	}
	if cd.Size > maxJSONSize {
		return nil, r.errf(cat, fmt.Errorf("%w: config is %d bytes, more than the %d-byte limit", ErrInvalid, cd.Size, maxJSONSize))
	}
	rc, err := r.openBlob(cat, cd)
	if err != nil {
		return nil, err
	}
	cb, err := io.ReadAll(rc)
	rc.Close()
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
		at := fmt.Sprintf("%s layers[%d]", res.at, i)
		if err := checkDescriptor(ld); err != nil {
			return nil, r.errf(at, err)
		}
		at += " (" + string(ld.Digest) + ")"
		img.layers[i] = &blobLayer{
			digest:    ld.Digest,
			diffID:    diffIDs[i],
			mediaType: ld.MediaType,
			size:      ld.Size,
			open:      func() (io.ReadCloser, error) { return r.openBlob(at, ld) },
		}
	}
	return img, nil
}

// openBlob GETs a blob, lazily: nothing is fetched before this call.
// The stream never yields more than d.Size bytes and checks size and
// digest at its end.
func (r *registryReader) openBlob(at string, d v1.Descriptor) (io.ReadCloser, error) {
	if len(d.URLs) > 0 || isForeignType(d.MediaType) {
		return nil, r.errf(at, notFoundBlob(d, true))
	}
	l, err := remote.Layer(r.ref.Context().Digest(d.Digest.String()), r.opts...)
	if err != nil {
		return nil, r.errf(at, netErr(err))
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, r.errf(at, netErr(err))
	}
	where := fmt.Sprintf("source: %s: %s", r.where, at)
	if d.Digest.Algorithm() == digest.SHA256 {
		// The library hashes the blob as it streams and fails at its
		// end on a mismatch: one sha256 pass, not two.
		return newSizedReader(ownCheck{rc}, where, d.Digest, d.Size), nil
	}
	return newVerifyingReader(ownCheck{rc}, where, d.Digest, d.Size), nil
}

// ownCheck classifies the library's own checks at the end of a blob
// (its error type is internal, its messages are "error verifying ALG
// checksum ..." and "error verifying size ..."): ErrDigestMismatch or
// ErrSizeMismatch, for the reader around it to report.
type ownCheck struct{ io.ReadCloser }

func (o ownCheck) Read(p []byte) (int, error) {
	n, err := o.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		switch msg := err.Error(); {
		case strings.HasPrefix(msg, "error verifying size"):
			err = fmt.Errorf("%w: %s", ErrSizeMismatch, msg)
		case strings.HasPrefix(msg, "error verifying "):
			err = fmt.Errorf("%w: %s", ErrDigestMismatch, msg)
		}
	}
	return n, err
}

// registryAuth picks the credentials for repository: --creds, else the
// auth file's entry (or its credential helper), else anonymous.
func registryAuth(repository name.Repository, o RegistryOptions) (authn.Authenticator, error) {
	if o.Creds != "" {
		user, pass, _ := strings.Cut(o.Creds, ":")
		if user == "" {
			return nil, fmt.Errorf("--creds %q: %w: empty user name", "USER[:PASSWORD]", ErrInvalid)
		}
		return &authn.Basic{Username: user, Password: pass}, nil
	}
	file := o.AuthFile
	if file == "" {
		file = defaultAuthFile()
		if file == "" {
			return authn.Anonymous, nil
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", file, err)
	}
	var af struct {
		Auths       map[string]authn.AuthConfig `json:"auths"`
		CredHelpers map[string]string           `json:"credHelpers"`
		CredsStore  string                      `json:"credsStore"`
	}
	if err := json.Unmarshal(b, &af); err != nil {
		return nil, fmt.Errorf("auth file %s: %w: %v", file, ErrInvalid, err)
	}
	reg := repository.RegistryStr()
	// containers-auth.json(5): the most specific key wins, a repository
	// path before its registry; Docker's keys may carry a scheme.
	keys := []string{repository.String()}
	for p := repository.RepositoryStr(); strings.Contains(p, "/"); {
		p = p[:strings.LastIndexByte(p, '/')]
		keys = append(keys, reg+"/"+p)
	}
	keys = append(keys, reg)
	if reg == name.DefaultRegistry {
		keys = append(keys, authn.DefaultAuthKey)
	}
	norm := func(k string) string {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
		return strings.TrimSuffix(strings.TrimSuffix(k, "/v1/"), "/")
	}
	for _, want := range keys {
		if h, ok := af.CredHelpers[want]; ok {
			return credHelper(h, want)
		}
		for k, ac := range af.Auths {
			if norm(k) == norm(want) && (ac.Username != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "") {
				return authn.FromConfig(ac), nil
			}
		}
	}
	if af.CredsStore != "" {
		return credHelper(af.CredsStore, reg)
	}
	return authn.Anonymous, nil
}

// defaultAuthFile is skopeo's default --authfile: the first of
// $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json and
// ~/.docker/config.json that exists; "" if none does.
func defaultAuthFile() string {
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		return f // named explicitly: a missing file is an error
	}
	var cands []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		cands = append(cands, filepath.Join(d, "containers", "auth.json"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		cands = append(cands, filepath.Join(h, ".docker", "config.json"))
	}
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			return c
		}
	}
	return ""
}

// credHelper asks docker-credential-HELPER for the credentials of server
// (the protocol of docker-credential-helpers: the server on stdin, JSON
// with Username and Secret on stdout).
func credHelper(helper, server string) (authn.Authenticator, error) {
	cmd := exec.Command("docker-credential-"+helper, "get")
	cmd.Stdin = strings.NewReader(server)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String() + " " + stderr.String())
		if strings.Contains(msg, "credentials not found") {
			return authn.Anonymous, nil
		}
		if msg != "" {
			err = fmt.Errorf("%w: %s", err, strings.Join(strings.Fields(msg), " "))
		}
		return nil, fmt.Errorf("credential helper docker-credential-%s for %s: %w", helper, server, err)
	}
	var c struct{ Username, Secret string }
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		return nil, fmt.Errorf("credential helper docker-credential-%s for %s: %w: %v", helper, server, ErrInvalid, err)
	}
	if c.Username == "<token>" {
		return authn.FromConfig(authn.AuthConfig{IdentityToken: c.Secret}), nil
	}
	return &authn.Basic{Username: c.Username, Password: c.Secret}, nil
}
