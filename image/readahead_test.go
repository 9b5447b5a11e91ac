package image

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

// readAhead returns exactly r's bytes whatever the sizes of the reads on
// either side, then r's error.
func TestReadAheadBytes(t *testing.T) {
	data := make([]byte, 1<<20+12345)
	rand.New(rand.NewSource(1)).Read(data)
	for _, tc := range []struct {
		name        string
		size, depth int
		r           func() io.Reader
		readSize    int
	}{
		{"one chunk", len(data) * 2, 1, func() io.Reader { return bytes.NewReader(data) }, 4096},
		{"many chunks", 4096, 4, func() io.Reader { return bytes.NewReader(data) }, 1000},
		{"short reads", 65536, 2, func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }, 70000},
		{"one byte at a time", 777, 3, func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:5000])) }, 1},
		{"empty", 4096, 2, func() io.Reader { return bytes.NewReader(nil) }, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra := newReadAhead(tc.r(), tc.size, tc.depth)
			defer ra.Close()
			var got bytes.Buffer
			buf := make([]byte, tc.readSize)
			for {
				n, err := ra.Read(buf)
				got.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			want := data
			switch tc.name {
			case "one byte at a time":
				want = data[:5000]
			case "empty":
				want = nil
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("got %d bytes, want %d, or they differ", got.Len(), len(want))
			}
			if n, err := ra.Read(buf); n != 0 || err != io.EOF {
				t.Fatalf("after the end: %d, %v; want 0, EOF", n, err)
			}
		})
	}
}

// An error of r comes after every byte read before it, and stays.
func TestReadAheadError(t *testing.T) {
	boom := errors.New("corrupt deflate stream")
	data := bytes.Repeat([]byte("abc"), 10000)
	r := io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom))
	ra := newReadAhead(r, 4096, 2)
	defer ra.Close()
	got, err := io.ReadAll(ra)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes before the error, want %d", len(got), len(data))
	}
	if _, err := ra.Read(make([]byte, 10)); !errors.Is(err, boom) {
		t.Fatalf("second read: %v, want %v", err, boom)
	}
}

// Close stops a goroutine that is ahead of its reader, and leaves r alone
// once it returns.
func TestReadAheadClose(t *testing.T) {
	r := &countReader{}
	ra := newReadAhead(r, 1024, 4)
	if _, err := io.ReadFull(ra, make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}
	ra.Close()
	n := r.calls()
	if _, err := ra.Read(make([]byte, 10)); !errors.Is(err, errReadAheadClosed) {
		t.Fatalf("read after Close: %v, want %v", err, errReadAheadClosed)
	}
	ra.Close() // twice is fine
	if r.calls() != n {
		t.Fatalf("r was read after Close: %d calls, then %d", n, r.calls())
	}
}

// countReader is an endless reader that counts its calls; the race
// detector checks that Close orders them before its return.
type countReader struct{ n int }

func (c *countReader) Read(p []byte) (int, error) {
	c.n++
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func (c *countReader) calls() int { return c.n }
