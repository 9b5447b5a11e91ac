package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
)

// archived returns the .filez bytes of a file object written in an
// archive repository.
func archived(t *testing.T, body string) (repo.Checksum, []byte) {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "a"), repo.InitOptions{Mode: repo.ModeArchive})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := writeOne(t, r, repo.FileMeta{Mode: repo.ModeRegular | 0o640, UID: 5, GID: 6}, body)
	b, err := os.ReadFile(r.ObjectPath(repo.ObjFile, c))
	if err != nil {
		t.Fatal(err)
	}
	return c, b
}

func TestWriteFetched(t *testing.T) {
	ctx := context.Background()
	body := strings.Repeat("fetched content ", 4000)
	c, filez := archived(t, body)
	_, other := archived(t, body+"!")
	for _, mode := range []repo.Mode{repo.ModeBareUser, repo.ModeArchive, repo.ModeBare} {
		t.Run(mode.String(), func(t *testing.T) {
			r, err := repo.Init(filepath.Join(t.TempDir(), "r"), repo.InitOptions{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			tx, err := r.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// A valid object under another name, a truncated one, an
			// HTML page, and a dirtree whose bytes do not match.
			if _, err := tx.WriteFetchedArchive(c, strings.NewReader(string(other))); !errors.Is(err, repo.ErrChecksumMismatch) {
				t.Fatalf("other object: %v", err)
			}
			if _, err := tx.WriteFetchedArchive(c, strings.NewReader(string(filez[:len(filez)/2]))); !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("truncated object: %v", err)
			}
			if _, err := tx.WriteFetchedArchive(c, strings.NewReader("<html>nope</html>")); !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("html: %v", err)
			}
			if err := tx.WriteFetchedMeta(repo.ObjDirTree, c, []byte("<html>")); !errors.Is(err, repo.ErrChecksumMismatch) {
				t.Fatalf("dirtree: %v", err)
			}
			if ok, _ := tx.HasObject(repo.ObjFile, c); ok {
				t.Fatal("a failed write staged the object")
			}
			n, err := tx.WriteFetchedArchive(c, strings.NewReader(string(filez)))
			if err != nil || n != int64(len(body)) {
				t.Fatalf("valid object: %d, %v", n, err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			f, err := r.OpenFile(c)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Meta.UID != 5 || f.Meta.GID != 6 || f.Meta.Mode != repo.ModeRegular|0o640 || f.Meta.Size != int64(len(body)) {
				t.Fatalf("meta %+v", f.Meta)
			}
			if err := r.VerifyContent(ctx, c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestWriteFetchedEndless: a deflate stream of endless empty blocks is
// refused once it exceeds what its content could need.
func TestWriteFetchedEndless(t *testing.T) {
	c, filez := archived(t, "0123456789")
	n := int(filez[0])<<24 | int(filez[1])<<16 | int(filez[2])<<8 | int(filez[3])
	stream := append([]byte(nil), filez[:8+n]...)
	for i := 0; i < 20000; i++ {
		stream = append(stream, 0x00, 0x00, 0x00, 0xff, 0xff) // empty stored block, not final
	}
	r, err := repo.Init(filepath.Join(t.TempDir(), "r"), repo.InitOptions{Mode: repo.ModeBareUser})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tx, err := r.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	_, err = tx.WriteFetchedArchive(c, strings.NewReader(string(stream)))
	if !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("endless stream: %v", err)
	}
}
