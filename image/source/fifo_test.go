package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withDeadline runs f, failing the test if it has not returned in time:
// a FIFO opened for reading blocks until a writer comes. On a timeout the
// FIFO gets a writer, so that f returns and the test ends.
func withDeadline(t *testing.T, fifo string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Errorf("%s: still blocked after 10 s", fifo)
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		return <-done
	}
}

// TestNonRegularRefused: a FIFO (or any non-regular file) in place of a
// blob, index.json, oci-layout or an archive is refused at once, naming
// it, instead of blocking the import in open(2).
func TestNonRegularRefused(t *testing.T) {
	l := newLayout(t)
	a := l.image(imageSpec{layers: []map[string]string{filesA}})
	l.setIndex(a.desc)
	members := map[string]string{
		"layer blob": "blobs/sha256/" + a.layers[0].digest.Encoded(),
		"config":     "blobs/sha256/" + a.config.Digest.Encoded(),
		"manifest":   "blobs/sha256/" + a.desc.Digest.Encoded(),
		"index.json": "index.json",
		"oci-layout": "oci-layout",
	}
	for what, name := range members {
		dir := l.writeDir("fifo")
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		err := withDeadline(t, p, func() error {
			img, err := openLocal(context.Background(), "oci:"+dir, Options{})
			if err != nil {
				return err
			}
			defer img.Close()
			rc, err := img.layers[0].Compressed()
			if err != nil {
				return err
			}
			return rc.Close()
		})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s a FIFO: err %v, want an error naming %s", what, err, name)
		}
	}

	fifo := filepath.Join(t.TempDir(), "image.tar")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"oci-archive:", "docker-archive:"} {
		err := withDeadline(t, fifo, func() error {
			img, err := openLocal(context.Background(), transport+fifo, Options{})
			if err == nil {
				img.Close()
			}
			return err
		})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fifo) {
			t.Errorf("%s a FIFO: err %v, want ErrInvalid naming %s", transport, err, fifo)
		}
	}
}
