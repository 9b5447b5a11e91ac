package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/image/imagetest"
	"github.com/ostree-mount/ostree-mount/image/source"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// gatedImage is an imagetest image whose layers are gatedLayers.
type gatedImage struct {
	*imagetest.Image
	layers []source.Layer
}

func (g *gatedImage) Layers() ([]source.Layer, error) { return g.layers, nil }

// gatedLayer records when its blob is opened; its stream's first Read
// waits for gate (if set), at most 10 seconds.
type gatedLayer struct {
	*imagetest.Layer
	opened chan struct{}
	once   sync.Once
	gate   func() error
}

func (l *gatedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	l.once.Do(func() { close(l.opened) })
	if err != nil || l.gate == nil {
		return rc, err
	}
	return &gatedReader{rc: rc, gate: l.gate}, nil
}

type gatedReader struct {
	rc     io.ReadCloser
	gate   func() error
	passed bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if !g.passed {
		if err := g.gate(); err != nil {
			return 0, err
		}
		g.passed = true
	}
	return g.rc.Read(p)
}

func (g *gatedReader) Close() error { return g.rc.Close() }

func gated(name string, ls ...*imagetest.Layer) (*gatedImage, []*gatedLayer) {
	img := &gatedImage{Image: imagetest.New(name, ls...)}
	var gls []*gatedLayer
	for _, l := range ls {
		g := &gatedLayer{Layer: l, opened: make(chan struct{})}
		gls = append(gls, g)
		img.layers = append(img.layers, g)
	}
	return img, gls
}

// TestImportJobsFetchAhead: with Jobs 3, the blobs of layers 1 and 2 are
// opened while layer 0's blob is still being read (its first Read waits
// for them); one at a time (Jobs 0), that wait times out.
func TestImportJobsFetchAhead(t *testing.T) {
	for _, jobs := range []int{3, 0} {
		t.Run(fmt.Sprint("jobs=", jobs), func(t *testing.T) {
			r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
			img, gls := gated("ahead",
				imagetest.Gzip(ct.Tar(t, ct.File("a", "a"))),
				imagetest.Gzip(ct.Tar(t, ct.File("b", "b"))),
				imagetest.Gzip(ct.Tar(t, ct.File("c", "c"))),
				imagetest.Gzip(ct.Tar(t, ct.File("d", "d"))))
			wait := 10 * time.Second
			if jobs == 0 {
				wait = 300 * time.Millisecond // fails either way; keep it short
			}
			errAlone := errors.New("layers 1 and 2 were not opened while layer 0 was read")
			gls[0].gate = func() error {
				deadline := time.After(wait)
				for _, g := range gls[1:3] {
					select {
					case <-g.opened:
					case <-deadline:
						return errAlone
					}
				}
				return nil
			}
			_, err := Import(context.Background(), r, img, ImportOptions{Jobs: jobs})
			if jobs == 3 && err != nil {
				t.Fatalf("import with read-ahead: %v", err)
			}
			if jobs == 0 && !errors.Is(err, errAlone) {
				t.Fatalf("import one at a time: got %v, want %v", err, errAlone)
			}
			if jobs == 3 {
				for i, g := range gls {
					if n := g.Opens(); n != 1 {
						t.Errorf("layer %d opened %d times, want 1", i, n)
					}
				}
			}
		})
	}
}

// TestImportJobsReuse: a layer the repository holds is not opened, read
// ahead or not; a failing download fails the import and leaves no ref.
func TestImportJobsReuse(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	a := ct.Tar(t, ct.File("a", "a"))
	b := ct.Tar(t, ct.File("b", "b"))
	c := ct.Tar(t, ct.File("c", "c"))
	importT(t, r, imagetest.New("first", imagetest.Gzip(a), imagetest.Gzip(b)), ImportOptions{Jobs: 3})
	la, lb, lc := imagetest.Gzip(a), imagetest.Gzip(b), imagetest.Gzip(c)
	img := imagetest.New("second", la, lb, lc)
	importT(t, r, img, ImportOptions{Jobs: 3})
	if la.Opens() != 0 || lb.Opens() != 0 || lc.Opens() != 1 {
		t.Errorf("opens: a %d, b %d, c %d; want 0, 0, 1", la.Opens(), lb.Opens(), lc.Opens())
	}
	d := ct.Tar(t, ct.File("d", "d"))
	bad := imagetest.New("bad", imagetest.Gzip(d), imagetest.Failing(ct.Tar(t, ct.File("e", "e")), io.ErrUnexpectedEOF), imagetest.Gzip(c))
	if _, err := Import(context.Background(), r, bad, ImportOptions{Jobs: 3, Ref: "bad"}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("import with a failing blob: got %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if c := readRef(t, r, repo.Head("bad")); !c.IsZero() {
		t.Errorf("failed import left ref bad → %s", c)
	}
}

// patternReader yields n bytes of a pattern and counts what was read.
type patternReader struct {
	left int64
	read atomic.Int64
}

func (c *patternReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	for i := range p {
		p[i] = byte(c.read.Load() + int64(i))
	}
	c.left -= int64(len(p))
	c.read.Add(int64(len(p)))
	return len(p), nil
}

// TestMemPipeBounded: a download runs at most limit bytes (plus one
// chunk) ahead of its reader, and the reader gets every byte, then EOF.
func TestMemPipeBounded(t *testing.T) {
	const limit, total = 1 << 20, 8 << 20
	src := &patternReader{left: total}
	mp := newMemPipe(limit)
	done := make(chan error, 1)
	go func() { err := mp.fill(src); mp.closeWrite(err); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for mp.buffered() < limit && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := src.read.Load(); got > limit+2*(256<<10) {
		t.Fatalf("the download ran %d bytes ahead, more than the %d-byte bound", got, limit)
	}
	var want bytes.Buffer
	io.Copy(&want, &patternReader{left: total})
	got, err := io.ReadAll(mp)
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %d bytes (err %v), want the %d bytes written", len(got), err, total)
	}
	if err := <-done; err != io.EOF {
		t.Fatalf("fill: %v", err)
	}
	// Close stops a download blocked on a full buffer.
	mp = newMemPipe(limit)
	go func() { done <- mp.fill(&patternReader{left: total}) }()
	for mp.buffered() < limit && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	mp.Close()
	if err := <-done; !errors.Is(err, errPipeClosed) {
		t.Fatalf("fill after Close: %v", err)
	}
}
