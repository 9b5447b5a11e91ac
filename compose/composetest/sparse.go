package composetest

import (
	"bytes"
	"fmt"
	"sort"
)

// SparseTar is a tar holding one regular file name of realSize bytes,
// in the GNU PAX sparse format 1.0 that GNU tar --sparse --format=posix
// writes: a PAX header with GNU.sparse.major=1, minor=0, name and
// realsize, an entry GNUSparseFile.0/name whose data begins with the
// sparse map (the number of fragments, then each one's offset and length,
// one decimal per line, padded to a block), followed by the fragments'
// data. data maps each fragment's offset to its bytes; the rest are holes.
// Go's tar.Writer cannot write sparse files, so the blocks are made here.
func SparseTar(name string, realSize int64, data map[int64][]byte) []byte {
	var offs []int64
	for o := range data {
		offs = append(offs, o)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	var sp bytes.Buffer
	fmt.Fprintf(&sp, "%d\n", len(offs))
	var body []byte
	for _, o := range offs {
		fmt.Fprintf(&sp, "%d\n%d\n", o, len(data[o]))
		body = append(body, data[o]...)
	}
	payload := append(pad(sp.Bytes()), body...)

	var recs bytes.Buffer
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name}, {"GNU.sparse.realsize", fmt.Sprint(realSize)},
	} {
		recs.WriteString(paxRecord(kv[0], kv[1]))
	}
	var out bytes.Buffer
	out.Write(rawHeader("PaxHeaders.0/"+name, 'x', int64(recs.Len())))
	out.Write(pad(recs.Bytes()))
	out.Write(rawHeader("GNUSparseFile.0/"+name, '0', int64(len(payload))))
	out.Write(pad(payload))
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

// paxRecord is "LEN key=value\n", LEN counting itself.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		r := fmt.Sprintf("%d %s=%s\n", n, k, v)
		if len(r) == n {
			return r
		}
		n = len(r)
	}
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// rawHeader is a ustar header block (name at most 100 bytes).
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1600000000))
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}
