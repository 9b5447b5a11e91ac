package repo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// GVariant types of the OSTree objects.
var (
	typeDirMeta     = gvariant.MustParseType("(uuua(ayay))")
	typeDirTree     = gvariant.MustParseType("(a(say)a(sayay))")
	typeCommit      = gvariant.MustParseType("(a{sv}aya(say)sstayay)")
	typeFileHeader  = gvariant.MustParseType("(uuuusa(ayay))")
	typeArchiveHdr  = gvariant.MustParseType("(tuuuusa(ayay))")
	typeMetadata    = gvariant.MustParseType("a{sv}")
	typeOstreeMeta  = gvariant.MustParseType("(uuua(ayay))")
	typeStringArray = gvariant.MustParseType("as")
	typeString      = gvariant.MustParseType("s")
)

// File type bits of st_mode.
const (
	ModeFmt     = 0o170000
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeSymlink = 0o120000
	ModeChar    = 0o020000
	ModeBlock   = 0o060000
	ModeFifo    = 0o010000
	ModeSocket  = 0o140000
)

// Xattr is one extended attribute. Lists of them are kept sorted by name
// (strcmp order), without empty values, as libostree reads them from disk.
type Xattr struct {
	Name  string
	Value []byte
}

// NormalizeXattrs sorts xs by name and drops empty values, the form in which
// libostree hashes xattrs read from a file.
func NormalizeXattrs(xs []Xattr) []Xattr {
	out := xs[:0:0]
	for _, x := range xs {
		if len(x.Value) > 0 {
			out = append(out, x)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func xattrsValue(xs []Xattr) []any {
	v := make([]any, len(xs))
	for i, x := range xs {
		name := make([]byte, len(x.Name)+1)
		copy(name, x.Name)
		v[i] = []any{name, x.Value}
	}
	return v
}

func parseXattrs(v any) ([]Xattr, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("xattrs: %w", ErrCorrupt)
	}
	xs := make([]Xattr, 0, len(arr))
	for i, e := range arr {
		t := e.([]any)
		name := t[0].([]byte)
		if len(name) < 2 || name[len(name)-1] != 0 || bytes.IndexByte(name[:len(name)-1], 0) >= 0 {
			return nil, fmt.Errorf("xattr %d: name not NUL-terminated: %w", i, ErrCorrupt)
		}
		xs = append(xs, Xattr{Name: string(name[:len(name)-1]), Value: t[1].([]byte)})
	}
	return xs, nil
}

func be32(v uint32) uint32 { return bits.ReverseBytes32(v) }
func be64(v uint64) uint64 { return bits.ReverseBytes64(v) }

// DirMeta is a dirmeta object: a directory's ownership, mode and xattrs.
type DirMeta struct {
	UID, GID uint32
	Mode     uint32 // full st_mode, including S_IFDIR
	Xattrs   []Xattr
}

// Marshal serializes m in normal form.
func (m *DirMeta) Marshal() []byte {
	b, err := gvariant.Marshal(typeDirMeta, []any{be32(m.UID), be32(m.GID), be32(m.Mode), xattrsValue(m.Xattrs)})
	if err != nil {
		panic(fmt.Sprintf("dirmeta: %v", err)) // only reachable through a programming error
	}
	return b
}

// Checksum returns the object name of m.
func (m *DirMeta) Checksum() Checksum { return SumBytes(m.Marshal()) }

// ParseDirMeta parses a dirmeta object.
func ParseDirMeta(b []byte) (*DirMeta, error) {
	v, err := gvariant.Unmarshal(typeDirMeta, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	t := v.([]any)
	xs, err := parseXattrs(t[3])
	if err != nil {
		return nil, err
	}
	m := &DirMeta{UID: be32(t[0].(uint32)), GID: be32(t[1].(uint32)), Mode: be32(t[2].(uint32)), Xattrs: xs}
	if m.Mode&ModeFmt != ModeDir {
		return nil, fmt.Errorf("dirmeta mode %#o is not a directory: %w", m.Mode, ErrCorrupt)
	}
	return m, nil
}

// TreeFile is a file entry of a dirtree.
type TreeFile struct {
	Name     string
	Checksum Checksum
}

// TreeDir is a subdirectory entry of a dirtree.
type TreeDir struct {
	Name string
	Tree Checksum
	Meta Checksum
}

// DirTree is a dirtree object. Files and Dirs are each sorted by name in
// strcmp order.
type DirTree struct {
	Files []TreeFile
	Dirs  []TreeDir
}

// Marshal serializes t in normal form. It sorts the entries first.
func (t *DirTree) Marshal() []byte {
	sort.Slice(t.Files, func(i, j int) bool { return t.Files[i].Name < t.Files[j].Name })
	sort.Slice(t.Dirs, func(i, j int) bool { return t.Dirs[i].Name < t.Dirs[j].Name })
	files := make([]any, len(t.Files))
	for i, f := range t.Files {
		files[i] = []any{f.Name, f.Checksum[:]}
	}
	dirs := make([]any, len(t.Dirs))
	for i, d := range t.Dirs {
		dirs[i] = []any{d.Name, d.Tree[:], d.Meta[:]}
	}
	b, err := gvariant.Marshal(typeDirTree, []any{files, dirs})
	if err != nil {
		panic(fmt.Sprintf("dirtree: %v", err))
	}
	return b
}

// Checksum returns the object name of t.
func (t *DirTree) Checksum() Checksum { return SumBytes(t.Marshal()) }

// LookupFile finds a file entry by name.
func (t *DirTree) LookupFile(name string) (TreeFile, bool) {
	i := sort.Search(len(t.Files), func(i int) bool { return t.Files[i].Name >= name })
	if i < len(t.Files) && t.Files[i].Name == name {
		return t.Files[i], true
	}
	return TreeFile{}, false
}

// LookupDir finds a subdirectory entry by name.
func (t *DirTree) LookupDir(name string) (TreeDir, bool) {
	i := sort.Search(len(t.Dirs), func(i int) bool { return t.Dirs[i].Name >= name })
	if i < len(t.Dirs) && t.Dirs[i].Name == name {
		return t.Dirs[i], true
	}
	return TreeDir{}, false
}

// ParseDirTree parses a dirtree object and validates its names and order.
func ParseDirTree(b []byte) (*DirTree, error) {
	v, err := gvariant.Unmarshal(typeDirTree, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	top := v.([]any)
	files, dirs := top[0].([]any), top[1].([]any)
	t := &DirTree{Files: make([]TreeFile, len(files)), Dirs: make([]TreeDir, len(dirs))}
	for i, e := range files {
		f := e.([]any)
		c, err := checksumFromBytes(f[1].([]byte))
		if err != nil {
			return nil, fmt.Errorf("dirtree file %d: %w", i, err)
		}
		t.Files[i] = TreeFile{Name: f[0].(string), Checksum: c}
		if err := ValidateFilename(t.Files[i].Name); err != nil {
			return nil, fmt.Errorf("dirtree: %w (%w)", ErrCorrupt, err)
		}
		if i > 0 && t.Files[i-1].Name >= t.Files[i].Name {
			return nil, fmt.Errorf("dirtree: files not sorted at %q: %w", t.Files[i].Name, ErrCorrupt)
		}
	}
	for i, e := range dirs {
		d := e.([]any)
		tc, err := checksumFromBytes(d[1].([]byte))
		if err != nil {
			return nil, fmt.Errorf("dirtree dir %d: %w", i, err)
		}
		mc, err := checksumFromBytes(d[2].([]byte))
		if err != nil {
			return nil, fmt.Errorf("dirtree dir %d: %w", i, err)
		}
		t.Dirs[i] = TreeDir{Name: d[0].(string), Tree: tc, Meta: mc}
		if err := ValidateFilename(t.Dirs[i].Name); err != nil {
			return nil, fmt.Errorf("dirtree: %w (%w)", ErrCorrupt, err)
		}
		if i > 0 && t.Dirs[i-1].Name >= t.Dirs[i].Name {
			return nil, fmt.Errorf("dirtree: dirs not sorted at %q: %w", t.Dirs[i].Name, ErrCorrupt)
		}
	}
	return t, nil
}

// ValidateFilename checks a directory entry name as ostree does: valid
// UTF-8, not empty, ".", or "..", and no "/" or NUL.
func ValidateFilename(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty file name: %w", ErrInvalidName)
	case name == "." || name == "..":
		return fmt.Errorf("file name %q: %w", name, ErrInvalidName)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q contains '/' or NUL: %w", name, ErrInvalidName)
	case !utf8.ValidString(name):
		return fmt.Errorf("file name %q is not UTF-8: %w", name, ErrInvalidName)
	}
	return nil
}

// MetaEntry is one key of an a{sv} metadata dictionary.
type MetaEntry struct {
	Key   string
	Value gvariant.Variant
}

// Metadata is an a{sv} dictionary in insertion order, which is hashed.
type Metadata []MetaEntry

// Get returns the value of key.
func (m Metadata) Get(key string) (gvariant.Variant, bool) {
	for _, e := range m {
		if e.Key == key {
			return e.Value, true
		}
	}
	return gvariant.Variant{}, false
}

// String returns the value of key if it is a string.
func (m Metadata) String(key string) (string, bool) {
	v, ok := m.Get(key)
	if !ok {
		return "", false
	}
	s, ok := v.Value.(string)
	return s, ok
}

// Set replaces key's value, or appends it.
func (m *Metadata) Set(key string, v gvariant.Variant) {
	for i, e := range *m {
		if e.Key == key {
			(*m)[i].Value = v
			return
		}
	}
	*m = append(*m, MetaEntry{Key: key, Value: v})
}

// SetString sets key to a string value.
func (m *Metadata) SetString(key, s string) {
	m.Set(key, gvariant.Variant{Type: typeString, Value: s})
}

func (m Metadata) value() []any {
	v := make([]any, len(m))
	for i, e := range m {
		v[i] = gvariant.DictEntry{Key: e.Key, Value: e.Value}
	}
	return v
}

func parseMetadataValue(v any) (Metadata, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("metadata: %w", ErrCorrupt)
	}
	m := make(Metadata, len(arr))
	for i, e := range arr {
		de := e.(gvariant.DictEntry)
		m[i] = MetaEntry{Key: de.Key.(string), Value: de.Value.(gvariant.Variant)}
	}
	return m, nil
}

// MarshalMetadata serializes an a{sv} (detached metadata, commitmeta).
func MarshalMetadata(m Metadata) ([]byte, error) {
	return gvariant.Marshal(typeMetadata, m.value())
}

// ParseMetadata parses an a{sv}.
func ParseMetadata(b []byte) (Metadata, error) {
	v, err := gvariant.Unmarshal(typeMetadata, b)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w: %w", ErrCorrupt, err)
	}
	return parseMetadataValue(v)
}

// Related is one entry of a commit's related list.
type Related struct {
	Name   string
	Commit Checksum
}

// Commit is a commit object.
type Commit struct {
	Metadata  Metadata
	Parent    Checksum // zero: no parent
	Related   []Related
	Subject   string
	Body      string
	Timestamp uint64 // seconds since the epoch, UTC
	RootTree  Checksum
	RootMeta  Checksum
}

// HasParent reports whether c names a parent commit.
func (c *Commit) HasParent() bool { return !c.Parent.IsZero() }

// ContentChecksum is ostree_commit_get_content_checksum: the SHA-256 of
// the root dirtree and dirmeta checksums.
func (c *Commit) ContentChecksum() Checksum {
	var b [64]byte
	copy(b[:32], c.RootTree[:])
	copy(b[32:], c.RootMeta[:])
	return SumBytes(b[:])
}

// Marshal serializes c in normal form.
func (c *Commit) Marshal() ([]byte, error) {
	var parent []byte
	if c.HasParent() {
		parent = c.Parent[:]
	} else {
		parent = []byte{}
	}
	rel := make([]any, len(c.Related))
	for i, r := range c.Related {
		rel[i] = []any{r.Name, r.Commit[:]}
	}
	md := c.Metadata.value()
	b, err := gvariant.Marshal(typeCommit, []any{md, parent, rel, c.Subject, c.Body, be64(c.Timestamp), c.RootTree[:], c.RootMeta[:]})
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return b, nil
}

// ParseCommit parses a commit object.
func ParseCommit(b []byte) (*Commit, error) {
	v, err := gvariant.Unmarshal(typeCommit, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	t := v.([]any)
	md, err := parseMetadataValue(t[0])
	if err != nil {
		return nil, err
	}
	c := &Commit{Metadata: md, Subject: t[3].(string), Body: t[4].(string), Timestamp: be64(t[5].(uint64))}
	if p := t[1].([]byte); len(p) > 0 {
		if c.Parent, err = checksumFromBytes(p); err != nil {
			return nil, fmt.Errorf("commit parent: %w", err)
		}
	}
	for i, e := range t[2].([]any) {
		r := e.([]any)
		rc, err := checksumFromBytes(r[1].([]byte))
		if err != nil {
			return nil, fmt.Errorf("commit related %d: %w", i, err)
		}
		c.Related = append(c.Related, Related{Name: r[0].(string), Commit: rc})
	}
	if c.RootTree, err = checksumFromBytes(t[6].([]byte)); err != nil {
		return nil, fmt.Errorf("commit root dirtree: %w", err)
	}
	if c.RootMeta, err = checksumFromBytes(t[7].([]byte)); err != nil {
		return nil, fmt.Errorf("commit root dirmeta: %w", err)
	}
	return c, nil
}

// FileMeta is the metadata of a content object: everything that is hashed
// besides the content itself. Size is not hashed, but it is stored in
// archive objects and reported by readers.
type FileMeta struct {
	UID, GID uint32
	Mode     uint32 // full st_mode: S_IFREG or S_IFLNK plus permission bits
	Rdev     uint32
	Target   string // symlink target, "" for regular files
	Xattrs   []Xattr
	Size     int64
}

// IsSymlink reports whether m describes a symlink.
func (m *FileMeta) IsSymlink() bool { return m.Mode&ModeFmt == ModeSymlink }

// Validate checks that m can be stored as a content object.
func (m *FileMeta) Validate() error {
	switch m.Mode & ModeFmt {
	case ModeRegular:
		if m.Target != "" {
			return fmt.Errorf("regular file with a symlink target: %w", ErrCorrupt)
		}
	case ModeSymlink:
		if m.Target == "" {
			return fmt.Errorf("empty symlink target: %w", ErrInvalidName)
		}
		if !utf8.ValidString(m.Target) || strings.IndexByte(m.Target, 0) >= 0 {
			return fmt.Errorf("symlink target %q is not UTF-8: %w", m.Target, ErrInvalidName)
		}
	default:
		return fmt.Errorf("file mode %#o: only regular files and symlinks are content objects: %w", m.Mode, ErrUnsupported)
	}
	return nil
}

// hashedHeader returns the bytes that precede the content in a content
// object's checksum: BE32(len H), four zero bytes, H = (uuuusa(ayay)).
func (m *FileMeta) hashedHeader() []byte {
	h, err := gvariant.Marshal(typeFileHeader, []any{be32(m.UID), be32(m.GID), be32(m.Mode), be32(m.Rdev), m.Target, xattrsValue(m.Xattrs)})
	if err != nil {
		panic(fmt.Sprintf("file header: %v", err)) // Validate rejects what Marshal would
	}
	out := make([]byte, 8+len(h))
	binary.BigEndian.PutUint32(out, uint32(len(h)))
	copy(out[8:], h)
	return out
}

// archiveHeader returns the .filez header: BE32(len H), 4 zero bytes, H =
// (tuuuusa(ayay)).
func (m *FileMeta) archiveHeader() []byte {
	h, err := gvariant.Marshal(typeArchiveHdr, []any{be64(uint64(m.Size)), be32(m.UID), be32(m.GID), be32(m.Mode), be32(m.Rdev), m.Target, xattrsValue(m.Xattrs)})
	if err != nil {
		panic(fmt.Sprintf("archive header: %v", err))
	}
	out := make([]byte, 8+len(h))
	binary.BigEndian.PutUint32(out, uint32(len(h)))
	copy(out[8:], h)
	return out
}

// maxHeaderSize bounds the header of an archive object, to refuse hostile
// lengths before allocating.
const maxHeaderSize = 16 << 20

// parseArchiveHeader parses the header of a .filez object; it returns the
// metadata and the header's total length (where the deflate stream starts).
func parseArchiveHeader(b []byte) (*FileMeta, int, error) {
	if len(b) < 8 {
		return nil, 0, fmt.Errorf("archive header truncated: %w", ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(b)
	if n > maxHeaderSize || int(n) > len(b)-8 {
		return nil, 0, fmt.Errorf("archive header length %d out of range: %w", n, ErrCorrupt)
	}
	v, err := gvariant.Unmarshal(typeArchiveHdr, b[8:8+n])
	if err != nil {
		return nil, 0, fmt.Errorf("archive header: %w: %w", ErrCorrupt, err)
	}
	t := v.([]any)
	xs, err := parseXattrs(t[6])
	if err != nil {
		return nil, 0, err
	}
	m := &FileMeta{Size: int64(be64(t[0].(uint64))), UID: be32(t[1].(uint32)), GID: be32(t[2].(uint32)), Mode: be32(t[3].(uint32)), Rdev: be32(t[4].(uint32)), Target: t[5].(string), Xattrs: xs}
	if m.Size < 0 {
		return nil, 0, fmt.Errorf("archive header size %d: %w", m.Size, ErrCorrupt)
	}
	if err := m.Validate(); err != nil {
		return nil, 0, fmt.Errorf("archive header: %w (%w)", ErrCorrupt, err)
	}
	return m, 8 + int(n), nil
}

// parseOstreeMeta parses the bare-user `user.ostreemeta` xattr.
func parseOstreeMeta(b []byte) (*FileMeta, error) {
	v, err := gvariant.Unmarshal(typeOstreeMeta, b)
	if err != nil {
		return nil, fmt.Errorf("user.ostreemeta: %w: %w", ErrCorrupt, err)
	}
	t := v.([]any)
	xs, err := parseXattrs(t[3])
	if err != nil {
		return nil, err
	}
	return &FileMeta{UID: be32(t[0].(uint32)), GID: be32(t[1].(uint32)), Mode: be32(t[2].(uint32)), Xattrs: xs}, nil
}

func marshalOstreeMeta(m *FileMeta) []byte {
	b, err := gvariant.Marshal(typeOstreeMeta, []any{be32(m.UID), be32(m.GID), be32(m.Mode), xattrsValue(m.Xattrs)})
	if err != nil {
		panic(fmt.Sprintf("user.ostreemeta: %v", err))
	}
	return b
}

var typeBytes = gvariant.MustParseType("ay")

func bytesVariant(b []byte) gvariant.Variant { return gvariant.Variant{Type: typeBytes, Value: b} }
