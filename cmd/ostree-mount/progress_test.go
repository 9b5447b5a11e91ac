package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ostree-mount/ostree-mount/image"
)

// TestImportProgressTerminal: on a terminal, each layer has a line with
// bytes, size and rate, redrawn in place, and the finished layer's line
// replaces it; elsewhere only finished layers are printed.
func TestImportProgressTerminal(t *testing.T) {
	var buf bytes.Buffer
	var o image.ImportOptions
	p := &importProgress{w: &buf, tty: true, ls: map[int]*layerLine{}, stop: make(chan struct{}), done: make(chan struct{})}
	o.Progress, o.BlobProgress = p.layer, p.bytes
	o.BlobProgress(0, 3<<20, 10<<20)
	o.BlobProgress(1, 512, -1)
	p.draw()
	first := buf.String()
	if !strings.Contains(first, "layer 0: 3.0 MiB / 10.0 MiB") || !strings.Contains(first, "/s") || !strings.Contains(first, "layer 1: 512 B") {
		t.Errorf("live lines:\n%q", first)
	}
	d := digest.FromString("x")
	o.Progress(image.LayerReport{Index: 0, DiffID: d, Bytes: 10 << 20})
	p.draw()
	out := buf.String()[len(first):]
	if !strings.HasPrefix(out, "\x1b[2A") || !strings.Contains(out, "layer 0 "+d.String()) {
		t.Errorf("redraw:\n%q", out)
	}

	buf.Reset()
	o = image.ImportOptions{}
	q := newImportProgress(&buf, &o)
	if o.BlobProgress != nil {
		t.Error("not a terminal, yet live progress")
	}
	o.Progress(image.LayerReport{Index: 2, DiffID: d, Reused: true})
	q.finish()
	if got := buf.String(); got != "layer 2 "+d.String()+": 0000000000000000000000000000000000000000000000000000000000000000 (already present)\n" {
		t.Errorf("plain line: %q", got)
	}
}

// TestIsTerminal: /dev/null is a character device but no terminal, and
// neither is a pipe.
func TestIsTerminal(t *testing.T) {
	t.Setenv("TERM", "xterm")
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("/dev/null taken for a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe taken for a terminal")
	}
}
