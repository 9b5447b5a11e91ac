package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
)

// Object is a fetched object, as the remote stores it.
type Object struct {
	Type     repo.ObjectType
	Checksum repo.Checksum
	// Meta is set for a content object read from a bare-mode file://
	// remote: Body is then the raw content. Otherwise Body is the
	// object's stored form: a metadata object's bytes or a .filez stream.
	Meta *repo.FileMeta
	Body io.ReadCloser
	// URL says where the object came from, for messages.
	URL string
}

// Fetcher reads objects and files of a remote repository. It is safe for
// concurrent use.
type Fetcher interface {
	// Fetch returns an object; the caller must close its Body, which
	// ends the request. A missing object wraps repo.ErrObjectNotFound,
	// a transient failure repo.ErrUnavailable (also from Body's Read).
	Fetch(ctx context.Context, t repo.ObjectType, c repo.Checksum) (*Object, error)
	// ReadFile returns a small file of the repository (config, summary,
	// refs/heads/NAME), at most limit bytes; a missing one wraps
	// os.ErrNotExist.
	ReadFile(ctx context.Context, rel string, limit int64) ([]byte, error)
	// Close releases connections or files.
	Close() error
}

// Stats counts what a fetcher transferred.
type Stats struct {
	Requests atomic.Int64
	Bytes    atomic.Int64
}

// NewFetcher returns the fetcher of a remote: HTTP(S) for http and https
// URLs, a local repository for file://.
func NewFetcher(rm *Remote, parallel int, st *Stats) (Fetcher, error) {
	if st == nil {
		st = &Stats{}
	}
	u, err := url.Parse(rm.URL)
	if err != nil {
		return nil, fmt.Errorf("remote %s: url %q: %w", rm.Name, rm.URL, err)
	}
	switch u.Scheme {
	case "http", "https":
		return NewHTTPFetcher(rm.URL, rm.Timeout, parallel, st), nil
	case "file":
		src, err := repo.Open(u.Path)
		if err != nil {
			return nil, fmt.Errorf("remote %s: %w", rm.Name, err)
		}
		return &fileFetcher{src: src, st: st}, nil
	}
	return nil, fmt.Errorf("remote %s: url %q: scheme %q not supported", rm.Name, rm.URL, u.Scheme)
}

// objectRel is an object's path in an archive repository.
func objectRel(t repo.ObjectType, c repo.Checksum) string {
	h := c.String()
	ext := map[repo.ObjectType]string{repo.ObjFile: "filez", repo.ObjDirTree: "dirtree", repo.ObjDirMeta: "dirmeta",
		repo.ObjCommit: "commit", repo.ObjCommitMeta: "commitmeta"}[t]
	return "objects/" + h[:2] + "/" + h[2:] + "." + ext
}

// HTTPFetcher fetches from an archive repository served over HTTP(S).
type HTTPFetcher struct {
	base    string
	client  *http.Client
	timeout time.Duration
	st      *Stats
}

// MaxRedirects is how many redirects one request follows.
const MaxRedirects = 10

// NewHTTPFetcher returns a fetcher for the repository at base, with keep-
// alive connections for parallel requests and timeout per request.
func NewHTTPFetcher(base string, timeout time.Duration, parallel int, st *Stats) *HTTPFetcher {
	if parallel < 8 {
		parallel = 8
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = parallel * 2
	tr.MaxIdleConns = parallel * 4
	tr.ResponseHeaderTimeout = timeout
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= MaxRedirects {
				return fmt.Errorf("%d redirects, a redirect loop? (first %s, last %s)", len(via), via[0].URL, req.URL)
			}
			return nil
		},
	}
	return &HTTPFetcher{base: strings.TrimSuffix(base, "/"), client: client, timeout: timeout, st: st}
}

// Close closes idle connections.
func (h *HTTPFetcher) Close() error {
	h.client.CloseIdleConnections()
	return nil
}

// transient reports whether a transport error may pass.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.EPIPE) || (errors.As(err, &ne) && ne.Timeout()) || errors.As(err, new(*net.OpError))
}

// get starts a GET of rel; the response body reads under the timeout and
// wraps transfer errors with repo.ErrUnavailable.
func (h *HTTPFetcher) get(ctx context.Context, rel string) (io.ReadCloser, int64, string, error) {
	u := h.base + "/" + rel
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, 0, u, fmt.Errorf("GET %s: %w", u, err)
	}
	h.st.Requests.Add(1)
	resp, err := h.client.Do(req)
	if err != nil {
		cancel()
		if ctx.Err() == context.DeadlineExceeded && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("no answer within %v: %w", h.timeout, err)
		}
		if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, u, fmt.Errorf("GET %s: %w", u, err)
		}
		if transient(err) {
			return nil, 0, u, fmt.Errorf("GET %s: %w: %w", u, repo.ErrUnavailable, err)
		}
		return nil, 0, u, fmt.Errorf("GET %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		cancel()
		return nil, 0, u, fmt.Errorf("GET %s: %s: %w", u, resp.Status, os.ErrNotExist)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		resp.Body.Close()
		cancel()
		return nil, 0, u, fmt.Errorf("GET %s: %s: %w", u, resp.Status, repo.ErrUnavailable)
	default:
		resp.Body.Close()
		cancel()
		return nil, 0, u, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return &body{r: resp.Body, cancel: cancel, ctx: ctx, url: u, timeout: h.timeout, st: h.st}, resp.ContentLength, u, nil
}

// body is a response body under its request's timeout.
type body struct {
	r       io.ReadCloser
	cancel  context.CancelFunc
	ctx     context.Context
	url     string
	timeout time.Duration
	st      *Stats
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.st.Bytes.Add(int64(n))
	if err != nil && err != io.EOF {
		switch {
		case errors.Is(b.ctx.Err(), context.DeadlineExceeded):
			err = fmt.Errorf("GET %s: body not complete within %v: %w: %w", b.url, b.timeout, repo.ErrUnavailable, context.DeadlineExceeded)
		case errors.Is(err, context.Canceled):
			err = fmt.Errorf("GET %s: %w", b.url, err)
		default:
			err = fmt.Errorf("GET %s: body: %w: %w", b.url, repo.ErrUnavailable, err)
		}
	}
	return n, err
}

func (b *body) Close() error {
	err := b.r.Close()
	b.cancel()
	return err
}

// readAll reads a whole body of at most limit bytes.
func readAll(rc io.ReadCloser, size, limit int64, u string) ([]byte, error) {
	defer rc.Close()
	if size > limit {
		return nil, fmt.Errorf("GET %s: Content-Length %d exceeds the limit of %d bytes", u, size, limit)
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: body exceeds the limit of %d bytes", u, limit)
	}
	return b, nil
}

// Fetch gets one object. Metadata objects are read whole (at most
// repo.MaxFetchedMetaSize bytes) before Fetch returns; a content object's
// Body streams under the request's timeout. A missing commitmeta is
// reported as repo.ErrObjectNotFound, as any missing object.
func (h *HTTPFetcher) Fetch(ctx context.Context, t repo.ObjectType, c repo.Checksum) (*Object, error) {
	rc, size, u, err := h.get(ctx, objectRel(t, c))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s %s: %w (%w)", t, c, repo.ErrObjectNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", t, c, err)
	}
	o := &Object{Type: t, Checksum: c, URL: u, Body: rc}
	if t != repo.ObjFile {
		b, err := readAll(rc, size, repo.MaxFetchedMetaSize, u)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", t, c, err)
		}
		o.Body = io.NopCloser(bytes.NewReader(b))
	}
	return o, nil
}

// ReadFile gets a small file of the repository.
func (h *HTTPFetcher) ReadFile(ctx context.Context, rel string, limit int64) ([]byte, error) {
	rc, size, u, err := h.get(ctx, rel)
	if err != nil {
		return nil, err
	}
	return readAll(rc, size, limit, u)
}

// fileFetcher reads a local repository of any mode.
type fileFetcher struct {
	src *repo.Repo
	st  *Stats
}

func (f *fileFetcher) Close() error { return f.src.Close() }

func (f *fileFetcher) Fetch(ctx context.Context, t repo.ObjectType, c repo.Checksum) (*Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.st.Requests.Add(1)
	u := "file://" + f.src.ObjectPath(t, c)
	o := &Object{Type: t, Checksum: c, URL: u}
	switch t {
	case repo.ObjFile:
		file, err := f.src.OpenFile(c)
		if err != nil {
			return nil, err
		}
		m := file.Meta
		o.Meta = &m
		o.Body = &fileBody{Reader: file.Reader(), f: file, st: f.st}
		return o, nil
	case repo.ObjCommitMeta:
		b, err := os.ReadFile(f.src.ObjectPath(t, c))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: %w", t, c, repo.ErrObjectNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", t, c, err)
		}
		f.st.Bytes.Add(int64(len(b)))
		o.Body = io.NopCloser(bytes.NewReader(b))
		return o, nil
	}
	b, err := os.ReadFile(f.src.ObjectPath(t, c))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s %s: %w", t, c, repo.ErrObjectNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", t, c, err)
	}
	f.st.Bytes.Add(int64(len(b)))
	o.Body = io.NopCloser(bytes.NewReader(b))
	return o, nil
}

type fileBody struct {
	io.Reader
	f  *repo.File
	st *Stats
}

func (b *fileBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.st.Bytes.Add(int64(n))
	return n, err
}

func (b *fileBody) Close() error { return b.f.Close() }

func (f *fileFetcher) ReadFile(ctx context.Context, rel string, limit int64) ([]byte, error) {
	p := filepath.Join(f.src.Path(), filepath.FromSlash(rel))
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return readAll(fh, -1, limit, "file://"+p)
}
