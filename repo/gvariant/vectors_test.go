package gvariant

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"strings"
	"testing"
)

// Test vectors from /work/shared/docs/ostree-format.md (real ostree 2022.7
// output). Numbers that OSTree stores big-endian are byte-swapped here, the
// way a caller of this package does it.

var (
	tDirmeta    = MustParseType("(uuua(ayay))")
	tXattrs     = MustParseType("a(ayay)")
	tFileHeader = MustParseType("(uuuusa(ayay))")
	tFilezHdr   = MustParseType("(tuuuusa(ayay))")
	tDirtree    = MustParseType("(a(say)a(sayay))")
	tCommit     = MustParseType("(a{sv}aya(say)sstayay)")
	tMeta       = MustParseType("a{sv}")
)

// hexBytes decodes hex, ignoring spaces and '|' separators.
func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func be32(x uint32) uint32 { return bits.ReverseBytes32(x) }
func be64(x uint64) uint64 { return bits.ReverseBytes64(x) }

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustMarshal(t testing.TB, typ *Type, v any) []byte {
	t.Helper()
	b, err := Marshal(typ, v)
	if err != nil {
		t.Fatalf("Marshal(%s): %v", typ, err)
	}
	return b
}

// checkBytes marshals v, compares with want and checks that Unmarshal
// accepts the bytes and gives back an equal value.
func checkBytes(t *testing.T, typ *Type, v any, want []byte) []byte {
	t.Helper()
	got := mustMarshal(t, typ, v)
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal(%s) =\n %x\nwant\n %x", typ, got, want)
	}
	back, err := Unmarshal(typ, want)
	if err != nil {
		t.Fatalf("Unmarshal(%s, %x): %v", typ, want, err)
	}
	if !equalValue(typ, v, back, false) {
		t.Fatalf("Unmarshal(%s) = %#v, want %#v", typ, back, v)
	}
	return got
}

func checkSum(t *testing.T, what string, data []byte, wantPrefix string) {
	t.Helper()
	if got := sum(data); !strings.HasPrefix(got, wantPrefix) {
		t.Errorf("%s: sha256 = %s, want %s", what, got, wantPrefix)
	}
}

func rawSum(t testing.TB, h string) []byte {
	return hexBytes(t, h)
}

type xattr struct{ name, value string }

func xattrValue(xs []xattr) []any {
	out := []any{}
	for _, x := range xs {
		out = append(out, []any{append([]byte(x.name), 0), []byte(x.value)})
	}
	return out
}

// fileChecksum is OSTree's content checksum: sha256(BE32(len H) ‖ 0 ‖ H ‖ content).
func fileChecksum(t testing.TB, uid, gid, mode uint32, target string, xs []xattr, content []byte) ([]byte, []byte) {
	h := mustMarshal(t, tFileHeader, []any{be32(uid), be32(gid), be32(mode), uint32(0), target, xattrValue(xs)})
	var pre [8]byte
	binary.BigEndian.PutUint32(pre[:], uint32(len(h)))
	s := sha256.New()
	s.Write(pre[:])
	s.Write(h)
	s.Write(content)
	return s.Sum(nil), h
}

func dirmeta(t testing.TB, uid, gid, mode uint32, xs []xattr) []byte {
	return mustMarshal(t, tDirmeta, []any{be32(uid), be32(gid), be32(mode), xattrValue(xs)})
}

type treeFile struct {
	name string
	csum []byte
}

type treeDir struct {
	name       string
	tree, meta []byte
}

func dirtree(t testing.TB, files []treeFile, dirs []treeDir) []byte {
	fs := []any{}
	for _, f := range files {
		fs = append(fs, []any{f.name, f.csum})
	}
	ds := []any{}
	for _, d := range dirs {
		ds = append(ds, []any{d.name, d.tree, d.meta})
	}
	return mustMarshal(t, tDirtree, []any{fs, ds})
}

func sumBytes(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func commit(t testing.TB, meta []any, parent []byte, subject, body string, ts uint64, tree, dmeta []byte) []byte {
	if parent == nil {
		parent = []byte{}
	}
	return mustMarshal(t, tCommit, []any{meta, parent, []any{}, subject, body, be64(ts), tree, dmeta})
}

const (
	ts20200101 = 1577836800
	ts20200102 = 1577923200

	csumDirmeta0755 = "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
	csumEmptyTree   = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
	csumT1Tree      = "81ea3e94a64fcb26ef505be1e7fa22c9fc2289eb87053f0e2eae1daf7a1e3257"
	csumEmptyFile   = "cc700d46f407c6c5ab2d5dde474366a928b7398277e61162e7f8ec06f469f07e"
	csumT1Commit    = "e8e749f94196cc44a4c60ccfbb8cbefeb9f08974890c91c60dac87cc2d90b009"
	csumT2Commit    = "285178d47d97dee33a4bf6303722495713fdaf63c4d179a64cff775adf7979a9"
	csumT2Tree      = "c14f5d86f9d3e38f2432006e7ca289c6e7f924c5714f758482d7adf3bc78b619"
	csumHello       = "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"
	csumRunSh       = "89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5"
	csumLink        = "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"
	csumSubA        = "e000a47a36168c51fe11770372f3f0f4edacb46eb349d9be2aae027ea0a045f8"
	csumSubTree     = "e6e070c2f676f71057e02bdf2e6e53939935bbc98b8f924752dd7e93fc222b29"
	csumT3Commit    = "3dbe3b612d055e6d8cc971f55878d6baf89591fda0fbfef97aaf56bd1cb2cf3e"
	csumT3Tree      = "441f467b409612190f7fac40dbc4a6c83f6a4e5cfbb103c48c942d0abdd5282f"
	csumT3Dirmeta   = "c66d4eb0e9a1640a3dae0f494d9965571be0b3154c1d6c66815fdb98d39e1209"
	csumXf          = "abbc836f1e4dff0a67bced58de80f33d145520da889840f5b75f2139193ec012"
	csumT5Commit    = "a4378f72546aa01a35e708c99936c37ff4e5e1114b0ccd90b42cf0cec421b869"
	csumT5Tree      = "43daef05d293944e6816b6ff48e125cf8ed763babe295373004ece1fbae8a730"
	csumT2Second    = "1b1ff9d7ca773fe85ab95ff87d23410a55b600ab1924e56c2f622c09ee260020"
	csumT3CanonCmt  = "2791dfca7a3f027d52ea9478a2e992bb3d1a98f7fa9e7ab6a615b2d01f5f78eb"
)

func TestVectorXattrs(t *testing.T) {
	v := xattrValue([]xattr{{"user.abc", "1"}, {"user.foo", "bar"}})
	want := hexBytes(t, "757365722e61626300 31 09 | 757365722e666f6f00 626172 09 | 0b 18")
	checkBytes(t, tXattrs, v, want)
}

func TestVectorDirmeta(t *testing.T) {
	b := checkBytes(t, tDirmeta, []any{uint32(0), uint32(0), be32(0o40755), []any{}},
		hexBytes(t, "00000000 00000000 000041ed"))
	checkSum(t, "dirmeta 0:0 0755", b, csumDirmeta0755)

	b = checkBytes(t, tDirmeta, []any{uint32(0), uint32(0), be32(0o40755), xattrValue([]xattr{{"user.d", "dir"}})},
		hexBytes(t, "0000000000000000000041ed 757365722e6400 646972 07 0b"))
	checkSum(t, "dirmeta user.d=dir", b, "656823b5")

	b = checkBytes(t, tDirmeta, []any{be32(1000), be32(1001), be32(0o40750), []any{}},
		hexBytes(t, "000003e8000003e9000041e8"))
	checkSum(t, "dirmeta t3", b, csumT3Dirmeta)
}

func TestVectorFileHeaders(t *testing.T) {
	csum, h := fileChecksum(t, 0, 0, 0o100644, "", nil, []byte("hello\n"))
	checkBytes(t, tFileHeader, []any{uint32(0), uint32(0), be32(0o100644), uint32(0), "", []any{}},
		hexBytes(t, "00000000 00000000 000081a4 00000000 00 11"))
	if len(h) != 0x12 || hex.EncodeToString(csum) != csumHello {
		t.Errorf("hello.txt: len %d, checksum %x", len(h), csum)
	}

	csum, h = fileChecksum(t, 0, 0, 0o120777, "hello.txt", nil, nil)
	want := hexBytes(t, "00000000 00000000 0000a1ff 00000000 68656c6c6f2e74787400 1a")
	if !bytes.Equal(h, want) || len(h) != 0x1b || hex.EncodeToString(csum) != csumLink {
		t.Errorf("symlink header %x checksum %x", h, csum)
	}

	csum, _ = fileChecksum(t, 0, 0, 0o100644, "", nil, nil)
	if hex.EncodeToString(csum) != csumEmptyFile {
		t.Errorf("empty file checksum %x", csum)
	}

	xs := []xattr{{"user.abc", "1"}, {"user.foo", "bar"}}
	csum, h = fileChecksum(t, 1000, 1001, 0o100640, "", xs, []byte("x\n"))
	want = hexBytes(t, "000003e8 000003e9 000081a0 00000000 00 757365722e616263003109757365722e666f6f00626172090b18 11")
	if !bytes.Equal(h, want) || len(h) != 0x2c || hex.EncodeToString(csum) != csumXf {
		t.Errorf("xf header %x (len %d) checksum %x", h, len(h), csum)
	}

	// archive-z2 .filez headers (tuuuusa(ayay)).
	checkBytes(t, tFilezHdr, []any{be64(6), uint32(0), uint32(0), be32(0o100644), uint32(0), "", []any{}},
		hexBytes(t, "0000000000000006 00000000 00000000 000081a4 00000000 00 19"))
	b := checkBytes(t, tFilezHdr, []any{be64(2), be32(1000), be32(1001), be32(0o100640), uint32(0), "", xattrValue(xs)},
		hexBytes(t, "0000000000000002 000003e8 000003e9 000081a0 00000000 00 757365722e616263003109757365722e666f6f00626172090b18 19"))
	if len(b) != 0x34 {
		t.Errorf("xf .filez header length %d, want 0x34", len(b))
	}
}

func TestVectorDirtrees(t *testing.T) {
	empty := checkBytes(t, tDirtree, []any{[]any{}, []any{}}, []byte{0})
	checkSum(t, "empty dirtree", empty, csumEmptyTree)

	emptyFile := rawSum(t, csumEmptyFile)
	want := append(append(hexBytes(t, "656d70747900"), emptyFile...), hexBytes(t, "06 27 28")...)
	t1 := checkBytes(t, tDirtree, []any{[]any{[]any{"empty", emptyFile}}, []any{}}, want)
	checkSum(t, "t1 dirtree", t1, csumT1Tree)

	xf := rawSum(t, csumXf)
	want = append(append(hexBytes(t, "786600"), xf...), hexBytes(t, "03 24 25")...)
	t3 := checkBytes(t, tDirtree, []any{[]any{[]any{"xf", xf}}, []any{}}, want)
	checkSum(t, "t3 dirtree", t3, csumT3Tree)
}

func TestVectorT2Tree(t *testing.T) {
	hello, _ := fileChecksum(t, 0, 0, 0o100644, "", nil, []byte("hello\n"))
	link, _ := fileChecksum(t, 0, 0, 0o120777, "hello.txt", nil, nil)
	run, _ := fileChecksum(t, 0, 0, 0o100755, "", nil, []byte("#!/bin/sh\necho hi\n"))
	a, _ := fileChecksum(t, 0, 0, 0o100644, "", nil, []byte("a\n"))
	for _, c := range []struct {
		got  []byte
		want string
	}{{hello, csumHello}, {link, csumLink}, {run, csumRunSh}, {a, csumSubA}} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("file checksum %x, want %s", c.got, c.want)
		}
	}
	meta := sumBytes(dirmeta(t, 0, 0, 0o40755, nil))
	sub := dirtree(t, []treeFile{{"a", a}}, nil)
	checkSum(t, "sub dirtree", sub, csumSubTree)
	tree := dirtree(t, []treeFile{{"hello.txt", hello}, {"link", link}, {"run.sh", run}},
		[]treeDir{{"sub", sumBytes(sub), meta}})
	if len(tree) != 196 {
		t.Errorf("t2 dirtree is %d bytes, want 196", len(tree))
	}
	checkSum(t, "t2 dirtree", tree, csumT2Tree)
	roundTrip(t, tDirtree, tree)
}

func TestVectorT5Tree(t *testing.T) {
	meta := sumBytes(dirmeta(t, 0, 0, 0o40755, nil))
	var files []treeFile
	for _, n := range []string{".hidden", "10", "9", "B", "Z", "_x", "a", "sp ace", "é"} {
		c, _ := fileChecksum(t, 0, 0, 0o100644, "", nil, []byte(n))
		files = append(files, treeFile{n, c})
	}
	q, _ := fileChecksum(t, 0, 0, 0o100644, "", nil, []byte("q"))
	d := dirtree(t, []treeFile{{"q", q}}, nil)
	c := dirtree(t, nil, nil)
	tree := dirtree(t, files, []treeDir{{"D", sumBytes(d), meta}, {"c", sumBytes(c), meta}})
	if len(tree) != 487 {
		t.Errorf("t5 dirtree is %d bytes, want 487", len(tree))
	}
	// The dirtree is larger than 255 bytes: its offsets are 2 bytes wide.
	checkSum(t, "t5 dirtree", tree, csumT5Tree)
	roundTrip(t, tDirtree, tree)

	cmt := commit(t, []any{}, nil, strings.Repeat("S", 300), strings.Repeat("B", 70000), ts20200101,
		sumBytes(tree), meta)
	if len(cmt) != 70400 {
		t.Errorf("t5 commit is %d bytes, want 70400", len(cmt))
	}
	checkSum(t, "t5 commit", cmt, csumT5Commit)
	roundTrip(t, tCommit, cmt)
}

func TestVectorOffsetWidth2(t *testing.T) {
	// One file with a 220-byte name: the element is 254 bytes, the files
	// array 255 bytes, so the dirtree needs 2-byte offsets: 257 bytes.
	name := strings.Repeat("n", 220)
	tree := dirtree(t, []treeFile{{name, make([]byte, 32)}}, nil)
	if len(tree) != 257 {
		t.Fatalf("dirtree is %d bytes, want 257", len(tree))
	}
	if got := tree[255:]; !bytes.Equal(got, []byte{0xff, 0x00}) {
		t.Errorf("tuple offset = %x, want ff00", got)
	}
	if tree[253] != 221 || tree[254] != 254 {
		t.Errorf("element/array offsets = %x %x, want dd fe", tree[253], tree[254])
	}
	roundTrip(t, tDirtree, tree)
	// The same data with a 1-byte offset is not normal (and would be misread).
	bad := append(append([]byte{}, tree[:255]...), 0xff)
	if _, err := Unmarshal(tDirtree, bad); err == nil {
		t.Errorf("accepted 256-byte dirtree with a 1-byte offset")
	}
	// A 2-byte offset where 1 byte suffices is not normal either: with a
	// 219-byte name the normal dirtree is 255 bytes with a 1-byte offset.
	small := dirtree(t, []treeFile{{name[:219], make([]byte, 32)}}, nil)
	if len(small) != 255 || small[254] != 254 {
		t.Fatalf("dirtree is %d bytes, want 255", len(small))
	}
	roundTrip(t, tDirtree, small)
	wide := append(append([]byte{}, small[:254]...), 254, 0)
	_, err := Unmarshal(tDirtree, wide)
	if err == nil || !strings.Contains(err.Error(), "normal form needs 1") {
		t.Errorf("oversized offset: got error %v", err)
	}
}

func TestVectorCommits(t *testing.T) {
	tree := rawSum(t, csumT1Tree)
	meta := rawSum(t, csumDirmeta0755)
	c := commit(t, []any{}, nil, "subj t1", "", ts20200101, tree, meta)
	want := hexBytes(t, "7375626a20743100 00 00000000000000 000000005e0be100")
	want = append(want, tree...)
	want = append(want, meta...)
	want = append(want, hexBytes(t, "38 09 08 00 00 00")...)
	if len(want) != 94 {
		t.Fatalf("test bug: want %d bytes", len(want))
	}
	checkBytes(t, tCommit, []any{[]any{}, []byte{}, []any{}, "subj t1", "", be64(ts20200101), tree, meta}, want)
	if !bytes.Equal(c, want) {
		t.Fatalf("commit t1 = %x", c)
	}
	checkSum(t, "commit t1", c, csumT1Commit)

	t2 := commit(t, []any{}, nil, "subj t2", "", ts20200101, rawSum(t, csumT2Tree), meta)
	checkSum(t, "commit t2", t2, csumT2Commit)

	t3 := commit(t, []any{}, nil, "subj t3", "", ts20200101, rawSum(t, csumT3Tree), rawSum(t, csumT3Dirmeta))
	checkSum(t, "commit t3", t3, csumT3Commit)

	// t3 with --canonical-permissions: 0:0, mode & 0755, no xattrs.
	// (The document's "xf 363f7bf1…" prefix does not match this header; the
	// full commit checksum below does, which also covers xf.)
	xf, _ := fileChecksum(t, 0, 0, 0o100640, "", nil, []byte("x\n"))
	dm := dirmeta(t, 0, 0, 0o40750, nil)
	checkSum(t, "canonical t3 dirmeta", dm, "42198685")
	tr := dirtree(t, []treeFile{{"xf", xf}}, nil)
	t3c := commit(t, []any{}, nil, "subj t3", "", ts20200101, sumBytes(tr), sumBytes(dm))
	checkSum(t, "canonical commit t3", t3c, csumT3CanonCmt)
}

func TestVectorMetadata(t *testing.T) {
	u, as := basicTypes['u'], commonTypes["as"]
	md := []any{
		DictEntry{"version", Variant{basicTypes['s'], "1.0"}},
		DictEntry{"foo", Variant{u, uint32(7)}},
		DictEntry{"ostree.ref-binding", Variant{as, []any{"t2"}}},
	}
	want := hexBytes(t, `
		76657273696f6e00 312e3000 00 73 08
		00
		666f6f00 00000000 07000000 00 75 04
		00
		6f73747265652e7265662d62696e64696e6700 0000000000 74320003 00 6173 13
		0f 1f 40`)
	checkBytes(t, tMeta, md, want)

	c := commit(t, md, rawSum(t, csumT2Commit), "second", "body text", ts20200102,
		rawSum(t, csumT2Tree), rawSum(t, csumDirmeta0755))
	checkSum(t, "commit t2 second", c, csumT2Second)
	roundTrip(t, tCommit, c)

	// Detached metadata (.commitmeta) sig=abc.
	checkBytes(t, tMeta, []any{DictEntry{"sig", Variant{basicTypes['s'], "abc"}}},
		hexBytes(t, "736967000000000061626300 00 73 04 0f"))

	// <'1.0'>
	checkBytes(t, basicTypes['v'], Variant{basicTypes['s'], "1.0"}, hexBytes(t, "312e3000 00 73"))
}

func TestVectorTombstone(t *testing.T) {
	hexsum := []byte(csumT1Commit)
	v := []any{DictEntry{"commit", Variant{commonTypes["ay"], append(append([]byte{}, hexsum...), 0)}}}
	want := hexBytes(t, "636f6d6d69740000")
	want = append(want, hexsum...)
	want = append(want, hexBytes(t, "00 00 6179 07 4d")...)
	checkBytes(t, tMeta, v, want)
}

// roundTrip checks that data decodes and re-encodes identically.
func roundTrip(t *testing.T, typ *Type, data []byte) {
	t.Helper()
	v, err := Unmarshal(typ, data)
	if err != nil {
		t.Fatalf("Unmarshal(%s): %v", typ, err)
	}
	out := mustMarshal(t, typ, v)
	if !bytes.Equal(out, data) {
		t.Fatalf("round trip of %s changed the bytes", typ)
	}
	if !IsNormal(typ, data) {
		t.Fatalf("IsNormal(%s) = false", typ)
	}
}
