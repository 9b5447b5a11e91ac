package composetest

import (
	"archive/tar"
	"bytes"
	"path"
	"testing"
	"time"
)

// Entry is one tar entry.
type Entry struct {
	Hdr     tar.Header
	Content string
}

// Option adjusts an entry's header.
type Option func(*tar.Header)

// Owner sets uid and gid.
func Owner(uid, gid int) Option { return func(h *tar.Header) { h.Uid, h.Gid = uid, gid } }

// Mode sets the mode field (which may carry S_IFMT bits, as buildah's do).
func Mode(m int64) Option { return func(h *tar.Header) { h.Mode = m } }

// Xattr adds a SCHILY.xattr PAX record.
func Xattr(name, value string) Option {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+name] = value
	}
}

// PAX adds a raw PAX record.
func PAX(key, value string) Option {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[key] = value
	}
}

func mk(h tar.Header, content string, opts []Option) Entry {
	h.ModTime = time.Unix(1600000000, 0)
	h.Format = tar.FormatPAX
	for _, o := range opts {
		o(&h)
	}
	return Entry{Hdr: h, Content: content}
}

// Dir is a directory entry (mode 0755 unless set).
func Dir(name string, opts ...Option) Entry {
	return mk(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}, "", opts)
}

// File is a regular file (mode 0644 unless set).
func File(name, content string, opts ...Option) Entry {
	return mk(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))}, content, opts)
}

// Symlink is a symbolic link.
func Symlink(name, target string, opts ...Option) Entry {
	return mk(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, "", opts)
}

// Link is a hard link to target.
func Link(name, target string, opts ...Option) Entry {
	return mk(tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}, "", opts)
}

// Whiteout is the OCI whiteout of dir/name: dir/.wh.name.
func Whiteout(p string) Entry {
	dir, base := path.Split(p)
	return File(dir+".wh."+base, "")
}

// Opaque is the opaque marker of a directory: dir/.wh..wh..opq.
func Opaque(dir string) Entry {
	return File(path.Join(dir, ".wh..wh..opq"), "")
}

// Char is a character device.
func Char(name string, major, minor int64, opts ...Option) Entry {
	return mk(tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor}, "", opts)
}

// Block is a block device.
func Block(name string, major, minor int64, opts ...Option) Entry {
	return mk(tar.Header{Typeflag: tar.TypeBlock, Name: name, Mode: 0o660, Devmajor: major, Devminor: minor}, "", opts)
}

// Fifo is a named pipe.
func Fifo(name string, opts ...Option) Entry {
	return mk(tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o644}, "", opts)
}

// Tar serializes entries into an uncompressed tar.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.Content)); err != nil {
			t.Fatalf("tar content %s: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
