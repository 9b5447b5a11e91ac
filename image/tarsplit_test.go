package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

type tentry struct {
	hdr  tar.Header
	body string
}

func rawTar(t *testing.T, close bool, es ...tentry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if close {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	} else if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestTarSplitRoundTrip imports odd and hostile tars and regenerates them
// from the layer commit's record and its objects: byte for byte.
func TestTarSplitRoundTrip(t *testing.T) {
	mt := time.Unix(1700000000, 123456789)
	long := strings.Repeat("long-name/", 20) + "f"
	reg := func(name, body string, f ...func(*tar.Header)) tentry {
		h := tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: mt, Uname: "someone", Gname: "grp", Uid: 1000, Gid: 1000}
		for _, g := range f {
			g(&h)
		}
		return tentry{hdr: h, body: body}
	}
	dir := func(name string) tentry {
		return tentry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mt}}
	}
	big := strings.Repeat("0123456789abcdef", 1<<17) // 2 MiB: written synchronously
	cases := map[string][]byte{
		"plain": rawTar(t, true, dir("a/"), reg("a/f", "hello"), reg("a/empty", ""), reg("a/big", big)),
		"pax": rawTar(t, true, reg("p", "x", func(h *tar.Header) {
			h.Format = tar.FormatPAX
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.k": "v", "comment": "odd"}
			h.AccessTime, h.ChangeTime = mt, mt
		}), reg(long, "long pax")),
		"gnu": rawTar(t, true, reg(long, "long gnu", func(h *tar.Header) { h.Format = tar.FormatGNU }),
			tentry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "s", Linkname: strings.Repeat("t/", 60), ModTime: mt, Format: tar.FormatGNU}}),
		"links and whiteouts": rawTar(t, true, reg("f", "shared"), tentry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "f", ModTime: mt}},
			reg(".wh.gone", ""), reg("d/.wh..wh..opq", ""), reg("d/x", "x")),
		"devices": rawTar(t, true, tentry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/mem", Devmajor: 1, Devminor: 1, Mode: 0o600, ModTime: mt}},
			tentry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Devmajor: 8, Mode: 0o600, ModTime: mt}},
			tentry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/p", Mode: 0o600, ModTime: mt}}),
		"duplicates":     rawTar(t, true, reg("f", "first version"), reg("f", "second"), reg("g", "g")),
		"no end blocks":  rawTar(t, false, reg("f", "x")),
		"trailing bytes": append(rawTar(t, true, reg("f", "x")), "trailing garbage"...),
		"root entry":     rawTar(t, true, dir("./"), reg("./f", "x")),
	}
	for name, tb := range cases {
		t.Run(name, func(t *testing.T) {
			r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
			ctx := context.Background()
			tx, err := r.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Abort()
			res, err := ImportLayer(ctx, tx, nil, bytes.NewReader(tb), DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			c, err := WriteLayerCommit(ctx, tx, res, "layer", repo.Metadata{})
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			ts, err := ReadTarSplit(r, c)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := ts.WriteTo(ctx, r, &out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), tb) {
				t.Fatalf("regenerated tar differs: %d bytes, want %d", out.Len(), len(tb))
			}
			if len(res.TarSplit) > len(tb)/2+1024 && len(tb) > 1<<20 {
				t.Errorf("record of %d bytes for a tar of %d", len(res.TarSplit), len(tb))
			}
		})
	}
}

// TestTarSplitSparse: an old-GNU sparse entry's stored bytes are kept in
// the record as they are, so the tar still comes back byte for byte.
func TestTarSplitSparse(t *testing.T) {
	// A hand-made old-GNU sparse header: one 4-byte fragment at offset 8,
	// logical size 16.
	var hdr [512]byte
	copy(hdr[0:], "sparse")
	copy(hdr[100:], "0000644\x00")
	copy(hdr[108:], "0000000\x00")
	copy(hdr[116:], "0000000\x00")
	copy(hdr[124:], "00000000004\x00")
	copy(hdr[136:], "00000000000\x00")
	hdr[156] = 'S'
	copy(hdr[257:], "ustar  \x00")
	copy(hdr[386:], "00000000010\x00") // offset 8
	copy(hdr[398:], "00000000004\x00") // numbytes 4
	copy(hdr[483:], "00000000020\x00") // realsize 16
	copy(hdr[148:], "        ")
	sum := 0
	for _, b := range hdr {
		sum += int(b)
	}
	copy(hdr[148:], fmt.Sprintf("%06o\x00 ", sum))
	tb := append(hdr[:], make([]byte, 512)...)
	copy(tb[512:], "data")
	tb = append(tb, make([]byte, 1024)...)
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	res, err := ImportLayer(ctx, tx, nil, bytes.NewReader(tb), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := DecodeTarSplit(res.TarSplit)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := ts.WriteTo(ctx, r, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), tb) {
		t.Fatalf("sparse tar differs")
	}
}

func TestTarSplitBadRecord(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not zstd"), mustZstd(t, "wrong magic"), mustZstd(t, tarSplitMagic+"r\x05ab"), mustZstd(t, tarSplitMagic+"f\x01e")} {
		if _, err := DecodeTarSplit(b); err == nil {
			t.Errorf("%q: decoded", b)
		}
	}
	if _, err := ReadTarSplit(repotest.NewRepoNoSync(t, repo.ModeBareUser), repo.Checksum{1}); !errors.Is(err, ErrNoTarSplit) {
		t.Errorf("commit without record: %v, want ErrNoTarSplit", err)
	}
}

func mustZstd(t *testing.T, s string) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll([]byte(s), nil)
}
