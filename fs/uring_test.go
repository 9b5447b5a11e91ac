package fs

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// ringFake answers the ring dispatch's calls and records what it got.
type ringFake struct {
	fuse.RawFileSystem
	name  string
	read  []byte // the data a READ returns, from a buffer of its own
	xattr []byte
}

func (f *ringFake) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	f.name = name
	out.NodeId, out.Ino, out.Size = 42, 42, 7
	return fuse.OK
}

func (f *ringFake) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	return fuse.ReadResultData(f.read[in.Offset:]), fuse.OK
}

func (f *ringFake) GetXAttr(_ <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	f.name = attr
	if len(dest) < len(f.xattr) {
		return uint32(len(f.xattr)), fuse.ERANGE
	}
	return uint32(copy(dest, f.xattr)), fuse.OK
}

func (f *ringFake) ReadDirPlus(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	for _, n := range []string{"a", "bb"} {
		if e := out.AddDirLookupEntry(fuse.DirEntry{Name: n, Ino: 9, Mode: fuse.S_IFREG}); e == nil {
			break
		}
	}
	return fuse.OK
}

// request lays out a ring request as the kernel does: the in header and
// the operation's struct contiguous (as serve copies them), and the
// payload in the entry's buffer, which the reply then shares.
func request(op uint32, opIn []byte, payload []byte) (*fuse.InHeader, unsafe.Pointer, []byte, []byte) {
	in := make([]byte, inHeaderSize+128)
	h := (*fuse.InHeader)(unsafe.Pointer(&in[0]))
	h.Opcode, h.Unique, h.NodeId = op, 5, 1
	copy(in[inHeaderSize:], opIn)
	buf := make([]byte, 1<<20)
	copy(buf, payload)
	return h, unsafe.Pointer(&in[0]), buf[:len(payload)], buf
}

func TestURingDispatch(t *testing.T) {
	f := &ringFake{RawFileSystem: fuse.NewDefaultRawFileSystem(), read: bytes.Repeat([]byte("0123456789"), 100), xattr: []byte("value")}

	// LOOKUP: the name is read before the reply, which shares its buffer,
	// is written over it.
	h, in, payload, out := request(opLookup, nil, []byte("a-long-file-name\x00"))
	n, st := dispatch(f, h, in, payload, out)
	eo := (*fuse.EntryOut)(unsafe.Pointer(&out[0]))
	if st != fuse.OK || f.name != "a-long-file-name" || n != int(unsafe.Sizeof(fuse.EntryOut{})) || eo.NodeId != 42 || eo.Size != 7 {
		t.Errorf("lookup: name %q, %d bytes, %v, %+v", f.name, n, st, *eo)
	}

	// READ: data from a buffer of the filesystem's own is copied into the
	// reply, from the offset asked.
	ri := make([]byte, 40)
	binary.LittleEndian.PutUint64(ri[8:], 990) // offset
	binary.LittleEndian.PutUint32(ri[16:], 4096)
	h, in, payload, out = request(opRead, ri, nil)
	n, st = dispatch(f, h, in, payload, out)
	if st != fuse.OK || !bytes.Equal(out[:n], f.read[990:]) {
		t.Errorf("read: %v, %q", st, out[:n])
	}

	// GETXATTR with size 0 asks for the size (GetXAttrOut), ERANGE then
	// being no error; with room, the value.
	gi := make([]byte, 8)
	h, in, payload, out = request(opGetxattr, gi, []byte("user.k\x00"))
	n, st = dispatch(f, h, in, payload, out)
	if st != fuse.OK || n != 8 || binary.LittleEndian.Uint32(out) != 5 || f.name != "user.k" {
		t.Errorf("getxattr size: %v, %d bytes, size %d, name %q", st, n, binary.LittleEndian.Uint32(out), f.name)
	}
	binary.LittleEndian.PutUint32(gi, 64)
	h, in, payload, out = request(opGetxattr, gi, []byte("user.k\x00"))
	n, st = dispatch(f, h, in, payload, out)
	if st != fuse.OK || string(out[:n]) != "value" {
		t.Errorf("getxattr: %v, %q", st, out[:n])
	}

	// READDIRPLUS: the entries' bytes, within the size asked.
	rd := make([]byte, 40)
	binary.LittleEndian.PutUint32(rd[16:], 4096)
	h, in, payload, out = request(opReaddirplus, rd, nil)
	n, st = dispatch(f, h, in, payload, out)
	_, entries, err := fuse.ParseDirLookupEntries(out[:n])
	if st != fuse.OK || err != nil || len(entries) != 2 {
		t.Errorf("readdirplus: %v, %d bytes, %d entries, %v", st, n, len(entries), err)
	}
	binary.LittleEndian.PutUint32(rd[16:], 100) // room for one entry only
	h, in, payload, out = request(opReaddirplus, rd, nil)
	if n, _ = dispatch(f, h, in, payload, out); n > 100 {
		t.Errorf("readdirplus of 100 bytes replied %d", n)
	}

	// An operation the ring does not serve.
	h, in, payload, out = request(16 /* WRITE */, nil, nil)
	if _, st = dispatch(f, h, in, payload, out); st != fuse.ENOSYS {
		t.Errorf("write: %v, want ENOSYS", st)
	}
}

func TestPossibleCPUs(t *testing.T) {
	n, err := possibleCPUs()
	if err != nil || n < 1 {
		t.Fatalf("possibleCPUs: %d, %v", n, err)
	}
}
