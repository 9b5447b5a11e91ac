package export

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/flate"
	kgzip "github.com/klauspost/compress/gzip"
)

// pgzipInput is compressible text, incompressible noise and runs, over
// several blocks and not a multiple of the block size.
func pgzipInput(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < n {
		switch r.IntN(3) {
		case 0:
			for range 200 {
				b.WriteString("the quick brown fox jumps over the lazy dog ")
			}
		case 1:
			noise := make([]byte, 20000)
			for i := range noise {
				noise[i] = byte(r.Uint32())
			}
			b.Write(noise)
		default:
			b.Write(make([]byte, 30000))
		}
	}
	return b.Bytes()[:n]
}

func pgzip(t *testing.T, in []byte, workers int, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	z, err := newPgzipWriter(&out, flate.DefaultCompression, workers)
	if err != nil {
		t.Fatal(err)
	}
	for p := in; len(p) > 0; {
		k := min(chunk, len(p))
		if _, err := z.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestPgzipRoundTrip: the standard library's gzip reader gives back the
// input, for empty, sub-block, exact-block and multi-block inputs; the
// output is the same whatever the number of workers and write sizes.
func TestPgzipRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, pgzipDict, pgzipBlock - 1, pgzipBlock, pgzipBlock + 1, 3*pgzipBlock + 12345} {
		in := pgzipInput(n)
		want := pgzip(t, in, 1, 1<<20)
		for _, c := range []struct{ workers, chunk int }{{2, 4096}, {4, 777}, {8, 3 << 20}} {
			if got := pgzip(t, in, c.workers, c.chunk); !bytes.Equal(got, want) {
				t.Errorf("%d bytes: %d workers, writes of %d: output differs from 1 worker's", n, c.workers, c.chunk)
			}
		}
		zr, err := gzip.NewReader(bytes.NewReader(want))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%d bytes: gzip reader: %v", n, err)
		}
		if !bytes.Equal(got, in) {
			t.Errorf("%d bytes: decompressed %d bytes that differ from the input", n, len(got))
		}
		if n > 3*pgzipBlock && len(want) > n*3/4 {
			t.Errorf("%d bytes compressed to %d: the dictionary is not used", n, len(want))
		}
	}
}

type failWriter struct{ n int }

var errDisk = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errDisk
	}
	return len(p), nil
}

// TestPgzipWriteError: a failing destination fails a later Write or the
// Close, with its error.
func TestPgzipWriteError(t *testing.T) {
	z, err := newPgzipWriter(&failWriter{n: 100}, flate.DefaultCompression, 2)
	if err != nil {
		t.Fatal(err)
	}
	in := pgzipInput(4 * pgzipBlock)
	_, err = z.Write(in)
	if err == nil {
		err = z.Close()
	}
	if !errors.Is(err, errDisk) {
		t.Errorf("got %v, want %v", err, errDisk)
	}
}

// BenchmarkPgzip compresses 32 MiB of mixed input; compare with
// BenchmarkGzip (one goroutine) at -cpu 1 for the cost per byte.
func BenchmarkPgzip(b *testing.B) {
	in := pgzipInput(32 << 20)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		z, _ := newPgzipWriter(io.Discard, flate.DefaultCompression, runtime.GOMAXPROCS(0))
		z.Write(in)
		z.Close()
	}
}

func BenchmarkGzip(b *testing.B) {
	in := pgzipInput(32 << 20)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		z := kgzip.NewWriter(io.Discard)
		z.Write(in)
		z.Close()
	}
}
