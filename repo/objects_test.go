package repo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

func mustSum(t testing.TB, s string) Checksum {
	t.Helper()
	c, err := ParseChecksum(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Vectors from ../shared/docs/ostree-format.md §6, produced by ostree 2022.7.
const (
	sumDirMeta0755   = "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
	sumEmptyTree     = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
	sumEmptyFile     = "cc700d46f407c6c5ab2d5dde474366a928b7398277e61162e7f8ec06f469f07e"
	sumT1Tree        = "81ea3e94a64fcb26ef505be1e7fa22c9fc2289eb87053f0e2eae1daf7a1e3257"
	sumT1Commit      = "e8e749f94196cc44a4c60ccfbb8cbefeb9f08974890c91c60dac87cc2d90b009"
	sumHello         = "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"
	sumLink          = "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"
	sumXf            = "abbc836f1e4dff0a67bced58de80f33d145520da889840f5b75f2139193ec012"
	sumT3Meta        = "c66d4eb0e9a1640a3dae0f494d9965571be0b3154c1d6c66815fdb98d39e1209"
	sumT3Tree        = "441f467b409612190f7fac40dbc4a6c83f6a4e5cfbb103c48c942d0abdd5282f"
	sumT2Commit      = "285178d47d97dee33a4bf6303722495713fdaf63c4d179a64cff775adf7979a9"
	sumT2SecondCommt = "1b1ff9d7ca773fe85ab95ff87d23410a55b600ab1924e56c2f622c09ee260020"
	sumT3Commit      = "3dbe3b612d055e6d8cc971f55878d6baf89591fda0fbfef97aaf56bd1cb2cf3e"
	sumT3Canonical   = "2791dfca7a3f027d52ea9478a2e992bb3d1a98f7fa9e7ab6a615b2d01f5f78eb"
	sumT5Commit      = "a4378f72546aa01a35e708c99936c37ff4e5e1114b0ccd90b42cf0cec421b869"
	sumT5Tree        = "43daef05d293944e6816b6ff48e125cf8ed763babe295373004ece1fbae8a730"
)

func TestDirMetaVectors(t *testing.T) {
	m := &DirMeta{Mode: 0o40755}
	if got := hex.EncodeToString(m.Marshal()); got != "00000000000000000000"+"41ed" {
		t.Errorf("dirmeta bytes %s", got)
	}
	if got := m.Checksum().String(); got != sumDirMeta0755 {
		t.Errorf("dirmeta checksum %s", got)
	}
	m3 := &DirMeta{UID: 1000, GID: 1001, Mode: 0o40750}
	if got := hex.EncodeToString(m3.Marshal()); got != "000003e8000003e9000041e8" {
		t.Errorf("t3 dirmeta bytes %s", got)
	}
	if got := m3.Checksum().String(); got != sumT3Meta {
		t.Errorf("t3 dirmeta checksum %s", got)
	}
	back, err := ParseDirMeta(m3.Marshal())
	if err != nil || back.UID != 1000 || back.GID != 1001 || back.Mode != 0o40750 {
		t.Errorf("parse: %+v %v", back, err)
	}
	withX := &DirMeta{Mode: 0o40755, Xattrs: []Xattr{{"user.d", []byte("dir")}}}
	if got := hex.EncodeToString(withX.Marshal()); got != "0000000000000000000041ed"+"757365722e6400"+"646972"+"07"+"0b" {
		t.Errorf("dirmeta with xattr %s", got)
	}
}

func TestFileVectors(t *testing.T) {
	cases := []struct {
		name    string
		meta    FileMeta
		content string
		want    string
	}{
		{"empty", FileMeta{Mode: 0o100644}, "", sumEmptyFile},
		{"hello.txt", FileMeta{Mode: 0o100644, Size: 6}, "hello\n", sumHello},
		{"link", FileMeta{Mode: 0o120777, Target: "hello.txt"}, "", sumLink},
		{"xf", FileMeta{UID: 1000, GID: 1001, Mode: 0o100640, Size: 2, Xattrs: []Xattr{{"user.abc", []byte("1")}, {"user.foo", []byte("bar")}}}, "x\n", sumXf},
	}
	for _, tc := range cases {
		c, err := FileChecksum(&tc.meta, strings.NewReader(tc.content))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.String() != tc.want {
			t.Errorf("%s: checksum %s, want %s", tc.name, c, tc.want)
		}
	}
	// The hashed header of xf, byte for byte.
	xf := cases[3].meta
	want := "0000002c00000000000003e8000003e9000081a00000000000757365722e616263003109757365722e666f6f00626172090b1811"
	if got := hex.EncodeToString(xf.hashedHeader()); got != want {
		t.Errorf("xf header\n got %s\nwant %s", got, want)
	}
	// The .filez header of hello.txt.
	h := cases[1].meta
	if got := hex.EncodeToString(h.archiveHeader()); got != "0000001a"+"00000000"+"0000000000000006"+"00000000"+"00000000"+"000081a4"+"00000000"+"00"+"19" {
		t.Errorf("hello archive header %s", got)
	}
}

func TestTreeAndCommitVectors(t *testing.T) {
	empty := &DirTree{}
	if got := empty.Checksum().String(); got != sumEmptyTree {
		t.Errorf("empty tree %s", got)
	}
	t1 := &DirTree{Files: []TreeFile{{"empty", mustSum(t, sumEmptyFile)}}}
	if got := t1.Checksum().String(); got != sumT1Tree {
		t.Errorf("t1 tree %s", got)
	}
	t3 := &DirTree{Files: []TreeFile{{"xf", mustSum(t, sumXf)}}}
	if got := t3.Checksum().String(); got != sumT3Tree {
		t.Errorf("t3 tree %s", got)
	}
	c := &Commit{Subject: "subj t1", Timestamp: 1577836800, RootTree: mustSum(t, sumT1Tree), RootMeta: mustSum(t, sumDirMeta0755)}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 94 {
		t.Errorf("t1 commit is %d bytes, want 94", len(b))
	}
	if got := SumBytes(b).String(); got != sumT1Commit {
		t.Errorf("t1 commit %s", got)
	}
	back, err := ParseCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Subject != "subj t1" || back.Timestamp != 1577836800 || back.HasParent() || back.RootTree != c.RootTree {
		t.Errorf("parsed commit %+v", back)
	}
}

func TestCommitRelatedAndMetadataRoundTrip(t *testing.T) {
	c := &Commit{
		Subject:   "manifest",
		Body:      "b",
		Timestamp: 1,
		Parent:    mustSum(t, sumT1Commit),
		Related:   []Related{{"sha256:aaaa", mustSum(t, sumT2Commit)}, {"sha256:bbbb", mustSum(t, sumT3Commit)}},
		RootTree:  mustSum(t, sumEmptyTree),
		RootMeta:  mustSum(t, sumDirMeta0755),
	}
	c.Metadata.SetString("version", "1.0")
	c.Metadata.Set("foo", gvariant.Variant{Type: gvariant.MustParseType("u"), Value: uint32(7)})
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Related) != 2 || back.Related[0].Name != "sha256:aaaa" || back.Related[1].Commit != c.Related[1].Commit {
		t.Errorf("related %+v", back.Related)
	}
	if v, ok := back.Metadata.String("version"); !ok || v != "1.0" {
		t.Errorf("version %q", v)
	}
	if v, ok := back.Metadata.Get("foo"); !ok || v.Value != uint32(7) {
		t.Errorf("foo %+v", v)
	}
	if back.Metadata[0].Key != "version" || back.Metadata[1].Key != "foo" {
		t.Errorf("metadata order not kept: %+v", back.Metadata)
	}
	if back.Parent != c.Parent {
		t.Errorf("parent")
	}
}

func TestParseRejectsBadObjects(t *testing.T) {
	good := (&DirTree{Files: []TreeFile{{"a", mustSum(t, sumHello)}, {"b", mustSum(t, sumHello)}}}).Marshal()
	bad := [][]byte{
		nil,
		good[:len(good)-1],
		append(append([]byte{}, good...), 0),
		bytes.Replace(good, []byte("a\x00"), []byte("/\x00"), 1),
		bytes.Replace(good, []byte("a\x00"), []byte("c\x00"), 1), // unsorted
		bytes.Replace(good, []byte("a\x00"), []byte("\xff\x00"), 1),
	}
	for i, b := range bad {
		if _, err := ParseDirTree(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("case %d: err %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := ParseDirMeta((&DirMeta{Mode: 0o100644}).Marshal()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("dirmeta with a file mode: %v", err)
	}
}

func TestValidateFilename(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "a\x00", "\xff"} {
		if err := ValidateFilename(n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q accepted", n)
		}
	}
	for _, n := range []string{"a", ".hidden", "sp ace", "é", "...", ".wh..wh..opq"} {
		if err := ValidateFilename(n); err != nil {
			t.Errorf("%q rejected: %v", n, err)
		}
	}
}

func FuzzParseObjects(f *testing.F) {
	f.Add((&DirTree{Files: []TreeFile{{"a", Checksum{1}}}, Dirs: []TreeDir{{"d", Checksum{2}, Checksum{3}}}}).Marshal())
	f.Add((&DirMeta{Mode: 0o40755, Xattrs: []Xattr{{"user.a", []byte("v")}}}).Marshal())
	c := &Commit{Subject: "s", Related: []Related{{"r", Checksum{4}}}}
	c.Metadata.SetString("k", "v")
	cb, _ := c.Marshal()
	f.Add(cb)
	m := FileMeta{Mode: 0o100644, Size: 3, Xattrs: []Xattr{{"user.x", []byte("y")}}}
	f.Add(m.archiveHeader())
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseDirTree(b); err == nil {
			if !bytes.Equal(d.Marshal(), b) {
				t.Errorf("dirtree does not round-trip")
			}
		}
		if d, err := ParseDirMeta(b); err == nil {
			if !bytes.Equal(d.Marshal(), b) {
				t.Errorf("dirmeta does not round-trip")
			}
		}
		if c, err := ParseCommit(b); err == nil {
			out, err := c.Marshal()
			if err != nil || !bytes.Equal(out, b) {
				t.Errorf("commit does not round-trip: %v", err)
			}
		}
		_, _, _ = parseArchiveHeader(b)
		_, _ = parseOstreeMeta(b)
		_, _ = ParseMetadata(b)
	})
}
