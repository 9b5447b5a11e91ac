package source

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// run runs a command in dir, failing the test (never skipping) when the
// tool is missing.
func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found (%v): run make deps", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestRealTools opens images written by umoci and skopeo in every transport
// and format this package reads.
func TestRealTools(t *testing.T) {
	w := t.TempDir()
	run(t, w, "umoci", "init", "--layout", "L")
	run(t, w, "umoci", "new", "--image", "L:t")
	run(t, w, "umoci", "unpack", "--rootless", "--image", "L:t", "b")
	if err := os.MkdirAll(filepath.Join(w, "b/rootfs/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w, "b/rootfs/etc/hello"), []byte("hello from umoci\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, w, "umoci", "repack", "--refresh-bundle", "--image", "L:t", "b")
	// A second layer, so that layer order is checked too.
	if err := os.WriteFile(filepath.Join(w, "b/rootfs/etc/second"), []byte("second layer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, w, "umoci", "repack", "--image", "L:t", "b")

	skopeo := func(args ...string) {
		run(t, w, "skopeo", append([]string{"--insecure-policy", "copy", "-q"}, args...)...)
	}
	skopeo("oci:L:t", "oci-archive:A.tar:t")
	skopeo("oci:L:t", "docker-archive:D.tar:ex/img:latest")
	skopeo("--format", "v2s2", "oci:L:t", "oci:L2:t")
	skopeo("--dest-compress-format", "zstd", "oci:L:t", "oci:L3:t")

	src := openT(t, "oci:"+filepath.Join(w, "L")+":t", Options{})
	if len(src.layers) != 2 || src.manifestMediaType != v1.MediaTypeImageManifest || src.name != "L:t" {
		t.Fatalf("umoci image: %d layers, %q, %q", len(src.layers), src.manifestMediaType, src.name)
	}
	checkLayers(t, src)

	for _, c := range []struct {
		ref       string
		transport string
		mt        string
		layerMT   string
	}{
		{"oci-archive:" + filepath.Join(w, "A.tar") + ":t", "oci-archive", v1.MediaTypeImageManifest, v1.MediaTypeImageLayerGzip},
		{"oci-archive:" + filepath.Join(w, "A.tar"), "oci-archive", v1.MediaTypeImageManifest, v1.MediaTypeImageLayerGzip},
		{"docker-archive:" + filepath.Join(w, "D.tar"), "docker-archive", mtDockerManifest, mtDockerLayerTar},
		{"docker-archive:" + filepath.Join(w, "D.tar") + ":ex/img:latest", "docker-archive", mtDockerManifest, mtDockerLayerTar},
		{"docker-archive:" + filepath.Join(w, "D.tar") + ":docker.io/ex/img:latest", "docker-archive", mtDockerManifest, mtDockerLayerTar},
		{"oci:" + filepath.Join(w, "L2") + ":t", "oci", mtDockerManifest, mtDockerLayerGzip},
		{"oci:" + filepath.Join(w, "L3") + ":t", "oci", v1.MediaTypeImageManifest, v1.MediaTypeImageLayerZstd},
	} {
		img := openT(t, c.ref, Options{})
		if img.transport != c.transport || img.manifestMediaType != c.mt || len(img.layers) != len(src.layers) {
			t.Fatalf("%s: transport %q, manifest %q, %d layers", c.ref, img.transport, img.manifestMediaType, len(img.layers))
		}
		for i, l := range img.layers {
			if l.mediaType != c.layerMT {
				t.Errorf("%s: layer %d media type %q, want %q", c.ref, i, l.mediaType, c.layerMT)
			}
			if l.diffID != src.layers[i].diffID {
				t.Errorf("%s: layer %d DiffID %s, want %s", c.ref, i, l.diffID, src.layers[i].diffID)
			}
		}
		if c.transport == "docker-archive" {
			if img.name != "ex/img:latest" {
				t.Errorf("%s: Name %q", c.ref, img.name)
			}
			for i, l := range img.layers {
				if l.digest != l.diffID {
					t.Errorf("%s: layer %d digest %s != DiffID %s", c.ref, i, l.digest, l.diffID)
				}
			}
		}
		checkLayers(t, img)
	}
}
