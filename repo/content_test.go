package repo_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// OpenContent reads the same bytes in every mode, at any offset and in
// any order: archive objects inflate, restarting the stream on a backward
// read (large ones) or from the inflate cache (small ones). The bare
// modes give the object file itself.
func TestOpenContentEveryMode(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	small := make([]byte, 100_000)
	rng.Read(small)
	large := make([]byte, 5<<20) // over the size inflated whole
	rng.Read(large)
	ctx := context.Background()
	for _, mode := range repotest.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			r := repotest.NewRepoNoSync(t, mode)
			for _, body := range [][]byte{small, large, {}} {
				c := writeOne(t, r, repo.FileMeta{Mode: repo.ModeRegular | 0o644}, string(body))
				ct, err := r.OpenContent(ctx, c)
				if err != nil {
					t.Fatal(err)
				}
				if ct.Size() != int64(len(body)) {
					t.Errorf("size %d, want %d", ct.Size(), len(body))
				}
				_, isFile := ct.(repo.ContentFile)
				if isFile != r.ContentFiles() || isFile == (mode == repo.ModeArchive) {
					t.Errorf("ContentFile %v, ContentFiles %v", isFile, r.ContentFiles())
				}
				for _, off := range []int64{0, 4096, 1 << 20, 70_000, 10, 3 << 20, 0} {
					want := body[min(off, int64(len(body))):min(off+8192, int64(len(body)))]
					got := make([]byte, 8192)
					n, err := ct.ReadAt(got, off)
					if err != nil && !errors.Is(err, io.EOF) {
						t.Fatalf("ReadAt %d of %d bytes: %v", off, len(body), err)
					}
					if n < len(got) && !errors.Is(err, io.EOF) {
						t.Errorf("ReadAt %d: short read %d without io.EOF", off, n)
					}
					if !bytes.Equal(got[:n], want) {
						t.Errorf("ReadAt %d of %d bytes: wrong bytes (%d read, %d wanted)", off, len(body), n, len(want))
					}
				}
				if err := ct.Close(); err != nil {
					t.Error(err)
				}
			}
			if _, err := r.OpenContent(ctx, repo.Checksum{1}); !errors.Is(err, repo.ErrObjectNotFound) {
				t.Errorf("missing object: %v, want ErrObjectNotFound", err)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := r.OpenContent(cctx, repo.Checksum{1}); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled: %v, want context.Canceled", err)
			}
		})
	}
}

// A truncated archive object is corrupt, both when inflated whole and when
// streamed, and the error names the object.
func TestOpenContentArchiveTruncated(t *testing.T) {
	ctx := context.Background()
	r := repotest.NewRepoNoSync(t, repo.ModeArchive)
	rng := rand.New(rand.NewSource(2))
	for _, size := range []int{50_000, 5 << 20} {
		body := make([]byte, size)
		rng.Read(body)
		c := writeOne(t, r, repo.FileMeta{Mode: repo.ModeRegular | 0o644}, string(body))
		p := r.ObjectPath(repo.ObjFile, c)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		ct, err := r.OpenContent(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		_, err = ct.ReadAt(buf, int64(size)-4096)
		if !errors.Is(err, repo.ErrCorrupt) {
			t.Errorf("%d bytes, truncated: %v, want ErrCorrupt", size, err)
		}
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte(c.String())) {
			t.Errorf("error does not name the object: %v", err)
		}
		ct.Close()
	}
}
