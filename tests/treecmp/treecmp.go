package treecmp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Options select what Dump and Walk record.
type Options struct {
	// Hardlinks adds hardlink=FIRST to every path of the tree that shares
	// its inode with another path of the tree (directories excluded).
	Hardlinks bool
	// MTime adds the modification time (seconds.nanoseconds).
	MTime bool
	// IgnoreXattrs lists xattr name prefixes to leave out, e.g.
	// "security.selinux".
	IgnoreXattrs []string
	// Rewrite, if set, is called on every entry after it is read (before
	// hardlink groups are computed); returning false drops the entry.
	// Tests use it to turn a source tree into the expected checkout, e.g.
	// by canonicalizing ownership and modes.
	Rewrite func(e *Entry) bool
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is what is recorded of one path.
type Entry struct {
	// Path is relative to the root, '/'-separated; the root is ".".
	Path string
	// Type is f, d, l, c, b, p or s.
	Type byte
	// Perm is the permission bits with setuid, setgid and sticky (07777).
	Perm     uint32
	UID, GID uint32
	// Size and SHA256 (hex) are set for regular files.
	Size   int64
	SHA256 string
	// Target is a symlink's target.
	Target string
	// Major and Minor are a device's rdev.
	Major, Minor uint32
	// Xattrs are sorted by name.
	Xattrs []Xattr
	// Hardlink is the first path sharing the inode (Options.Hardlinks).
	Hardlink string
	// MTimeNsec is the mtime in nanoseconds since the epoch; HasMTime
	// says whether it is printed (Options.MTime).
	MTimeNsec int64
	HasMTime  bool

	dev, ino uint64
}

// Escape returns s with every byte outside printable ASCII, the space and
// the backslash written as \ooo.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03o", c)
		}
	}
	return b.String()
}

// String formats the entry as one Dump line.
func (e *Entry) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s type=%c mode=%04o uid=%d gid=%d", Escape(e.Path), e.Type, e.Perm, e.UID, e.GID)
	switch e.Type {
	case 'f':
		fmt.Fprintf(&b, " size=%d sha256=%s", e.Size, e.SHA256)
	case 'l':
		fmt.Fprintf(&b, " target=%s", Escape(e.Target))
	case 'c', 'b':
		fmt.Fprintf(&b, " rdev=%d:%d", e.Major, e.Minor)
	}
	for _, x := range e.Xattrs {
		fmt.Fprintf(&b, " xattr:%s=%s", Escape(x.Name), hex.EncodeToString(x.Value))
	}
	if e.Hardlink != "" {
		fmt.Fprintf(&b, " hardlink=%s", Escape(e.Hardlink))
	}
	if e.HasMTime {
		fmt.Fprintf(&b, " mtime=%d.%09d", e.MTimeNsec/1e9, e.MTimeNsec%1e9)
	}
	return b.String()
}

// Dump returns one line per path of the tree at root, sorted.
func Dump(root string, opts Options) ([]string, error) {
	ents, err := Walk(root, opts)
	if err != nil {
		return nil, err
	}
	return Lines(ents), nil
}

// Lines formats entries as Dump does, sorted.
func Lines(ents []Entry) []string {
	out := make([]string, len(ents))
	for i := range ents {
		out[i] = ents[i].String()
	}
	sort.Strings(out)
	return out
}

// Walk reads the tree at root (without following symlinks) and returns its
// entries sorted by escaped path.
func Walk(root string, opts Options) ([]Entry, error) {
	var ents []Entry
	var walk func(abs, rel string) error
	walk = func(abs, rel string) error {
		e, err := readEntry(abs, rel, opts)
		if err != nil {
			return err
		}
		keep := true
		if opts.Rewrite != nil {
			keep = opts.Rewrite(&e)
		}
		if keep {
			ents = append(ents, e)
		}
		var st unix.Stat_t
		if err := unix.Lstat(abs, &st); err != nil {
			return fmt.Errorf("treecmp: %w", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil
		}
		d, err := os.Open(abs)
		if err != nil {
			return fmt.Errorf("treecmp: %w", err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("treecmp: %s: %w", abs, err)
		}
		sort.Strings(names)
		for _, n := range names {
			crel := n
			if rel != "." {
				crel = rel + "/" + n
			}
			if err := walk(filepath.Join(abs, n), crel); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, "."); err != nil {
		return nil, err
	}
	sort.SliceStable(ents, func(i, j int) bool { return Escape(ents[i].Path) < Escape(ents[j].Path) })
	if opts.Hardlinks {
		type key struct{ dev, ino uint64 }
		groups := map[key][]int{}
		for i, e := range ents {
			if e.Type != 'd' {
				k := key{e.dev, e.ino}
				groups[k] = append(groups[k], i)
			}
		}
		for _, idx := range groups {
			if len(idx) < 2 {
				continue
			}
			first := ents[idx[0]].Path
			for _, i := range idx {
				ents[i].Hardlink = first
			}
		}
	}
	return ents, nil
}

func readEntry(abs, rel string, opts Options) (Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil {
		return Entry{}, fmt.Errorf("treecmp: %w", err)
	}
	e := Entry{Path: rel, Perm: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, dev: st.Dev, ino: st.Ino}
	if opts.MTime {
		e.HasMTime = true
		e.MTimeNsec = st.Mtim.Sec*1e9 + st.Mtim.Nsec
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = 'f'
		e.Size = st.Size
		sum, err := fileSHA256(abs)
		if err != nil {
			return e, err
		}
		e.SHA256 = sum
	case unix.S_IFDIR:
		e.Type = 'd'
	case unix.S_IFLNK:
		e.Type = 'l'
		t, err := os.Readlink(abs)
		if err != nil {
			return e, fmt.Errorf("treecmp: %w", err)
		}
		e.Target = t
	case unix.S_IFCHR:
		e.Type = 'c'
		e.Major, e.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFBLK:
		e.Type = 'b'
		e.Major, e.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFIFO:
		e.Type = 'p'
	case unix.S_IFSOCK:
		e.Type = 's'
	default:
		return e, fmt.Errorf("treecmp: %s: unknown file type %#o", abs, st.Mode&unix.S_IFMT)
	}
	xs, err := readXattrs(abs)
	if err != nil {
		return e, err
	}
	for _, x := range xs {
		if !ignored(x.Name, opts.IgnoreXattrs) {
			e.Xattrs = append(e.Xattrs, x)
		}
	}
	return e, nil
}

func ignored(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func fileSHA256(p string) (string, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return "", fmt.Errorf("treecmp: open %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("treecmp: read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readXattrs lists a path's xattrs (not following a symlink), sorted.
func readXattrs(p string) ([]Xattr, error) {
	var list []byte
	for size := 4096; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("treecmp: listxattr %s: %w", p, err)
		}
		list = buf[:n]
		break
	}
	var xs []Xattr
	for _, name := range bytes.Split(list, []byte{0}) {
		if len(name) == 0 {
			continue
		}
		var val []byte
		for size := 256; ; size *= 4 {
			buf := make([]byte, size)
			n, err := unix.Lgetxattr(p, string(name), buf)
			if errors.Is(err, unix.ERANGE) {
				continue
			}
			if errors.Is(err, unix.ENODATA) {
				buf, n = nil, -1 // removed meanwhile
			} else if err != nil {
				return nil, fmt.Errorf("treecmp: getxattr %s %s: %w", p, name, err)
			}
			if n >= 0 {
				val = buf[:n]
			}
			break
		}
		if val == nil {
			continue
		}
		xs = append(xs, Xattr{Name: string(name), Value: val})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
	return xs, nil
}

// Diff returns the lines only in a (prefixed "-") and only in b (prefixed
// "+"), under a "--- a / +++ b" header, ordered by path with a path's "-"
// line before its "+" line. It returns "" when a and b hold the same
// lines.
func Diff(a, b []string) string {
	a = sortedCopy(a)
	b = sortedCopy(b)
	type diffLine struct {
		sign byte
		line string
	}
	var ds []diffLine
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || i < len(a) && a[i] < b[j]:
			ds = append(ds, diffLine{'-', a[i]})
			i++
		case i >= len(a) || b[j] < a[i]:
			ds = append(ds, diffLine{'+', b[j]})
			j++
		default:
			i++
			j++
		}
	}
	if len(ds) == 0 {
		return ""
	}
	key := func(l string) string { k, _, _ := strings.Cut(l, " "); return k }
	sort.SliceStable(ds, func(i, j int) bool {
		ki, kj := key(ds[i].line), key(ds[j].line)
		if ki != kj {
			return ki < kj
		}
		return ds[i].sign == '-' && ds[j].sign == '+'
	})
	var out strings.Builder
	out.WriteString("--- a\n+++ b\n")
	for _, d := range ds {
		out.WriteByte(d.sign)
		out.WriteString(d.line)
		out.WriteByte('\n')
	}
	return out.String()
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// Canonical is a Rewrite that gives an entry the metadata ostree's
// --canonical-permissions (and a bare-user-only repository) produce:
// uid and gid 0, no xattrs, and for everything but symlinks the mode
// masked to 0755.
func Canonical(e *Entry) bool {
	e.UID, e.GID = 0, 0
	e.Xattrs = nil
	if e.Type != 'l' {
		e.Perm &= 0o755
	}
	return true
}
