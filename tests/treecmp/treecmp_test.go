package treecmp

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// build makes a tree with every kind of entry treecmp records. It needs
// root (chown, mknod) and user xattrs on the temporary directory.
func build(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("treecmp tests need root (chown, mknod); run them as root")
	}
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	root := filepath.Join(t.TempDir(), "tree")
	must(t, os.Mkdir(root, 0o755))
	p := func(n string) string { return filepath.Join(root, n) }
	must(t, os.WriteFile(p("a file"), []byte("hello"), 0o644))
	must(t, unix.Setxattr(p("a file"), "user.b", []byte{0, 0xff}, 0))
	must(t, unix.Setxattr(p("a file"), "user.a", []byte("1"), 0))
	must(t, os.Link(p("a file"), p("hl")))
	must(t, os.Symlink("a file", p("sym")))
	must(t, os.Symlink("no\nwhere", p("dangling")))
	must(t, unix.Mkfifo(p("pipe"), 0o600))
	must(t, unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.Chmod(p("null"), 0o666))
	must(t, unix.Mknod(p("blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	must(t, os.WriteFile(p("suid"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.Chown(p("suid"), 1000, 1001))
	must(t, unix.Chmod(p("suid"), 0o4755)) // after chown, which clears setuid
	must(t, os.Mkdir(p("sticky"), 0o755))
	must(t, unix.Chmod(p("sticky"), 0o1777))
	must(t, unix.Setxattr(p("sticky"), "user.d", []byte("dir"), 0))
	must(t, os.WriteFile(p("sticky/bad\xff"), nil, 0o600))
	must(t, os.WriteFile(p("sticky/back\\slash"), []byte("x"), 0o644))
	must(t, os.Chmod(root, 0o755))
	return root
}

func TestEscape(t *testing.T) {
	got := Escape("a b\\c\xff\né~!")
	want := `a\040b\134c\377\012\303\251~!`
	if got != want {
		t.Errorf("Escape = %q, want %q", got, want)
	}
}

func TestDump(t *testing.T) {
	root := build(t)
	lines, err := Dump(root, Options{})
	must(t, err)
	want := []string{
		". type=d mode=0755 uid=0 gid=0",
		"a\\040file type=f mode=0644 uid=0 gid=0 size=5 sha256=2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 xattr:user.a=31 xattr:user.b=00ff",
		"blk type=b mode=0600 uid=0 gid=0 rdev=7:0",
		"dangling type=l mode=0777 uid=0 gid=0 target=no\\012where",
		"hl type=f mode=0644 uid=0 gid=0 size=5 sha256=2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 xattr:user.a=31 xattr:user.b=00ff",
		"null type=c mode=0666 uid=0 gid=0 rdev=1:3",
		"pipe type=p mode=0600 uid=0 gid=0",
		"sticky type=d mode=1777 uid=0 gid=0 xattr:user.d=646972",
		"sticky/back\\134slash type=f mode=0644 uid=0 gid=0 size=1 sha256=2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
		"sticky/bad\\377 type=f mode=0600 uid=0 gid=0 size=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"suid type=f mode=4755 uid=1000 gid=1001 size=10 sha256=" + sha("#!/bin/sh\n"),
		"sym type=l mode=0777 uid=0 gid=0 target=a\\040file",
	}
	if d := Diff(want, lines); d != "" {
		t.Errorf("Dump differs from the expectation:\n%s", d)
	}
	if !slices.IsSorted(lines) {
		t.Errorf("Dump output is not sorted:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if strings.Contains(l, "hardlink=") || strings.Contains(l, "mtime=") {
			t.Errorf("line %q: hardlink/mtime without the options", l)
		}
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func find(t *testing.T, lines []string, path string) string {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, Escape(path)+" ") {
			return l
		}
	}
	t.Fatalf("no line for %q in:\n%s", path, strings.Join(lines, "\n"))
	return ""
}

func TestHardlinks(t *testing.T) {
	root := build(t)
	lines, err := Dump(root, Options{Hardlinks: true})
	must(t, err)
	origPlain, err := Dump(root, Options{})
	must(t, err)
	for _, p := range []string{"a file", "hl"} {
		if l := find(t, lines, p); !strings.HasSuffix(l, ` hardlink=a\040file`) {
			t.Errorf("%s: want hardlink=a\\040file: %q", p, l)
		}
	}
	for _, p := range []string{"suid", "sym", "sticky", "."} {
		if l := find(t, lines, p); strings.Contains(l, "hardlink=") {
			t.Errorf("%s is not hardlinked: %q", p, l)
		}
	}
	// A copy instead of a link shows up in the diff only with Hardlinks.
	other := t.TempDir()
	must(t, os.Rename(root, filepath.Join(other, "t")))
	root = filepath.Join(other, "t")
	must(t, os.Remove(filepath.Join(root, "hl")))
	must(t, os.WriteFile(filepath.Join(root, "hl"), []byte("hello"), 0o644))
	must(t, unix.Setxattr(filepath.Join(root, "hl"), "user.b", []byte{0, 0xff}, 0))
	must(t, unix.Setxattr(filepath.Join(root, "hl"), "user.a", []byte("1"), 0))
	plain, err := Dump(root, Options{})
	must(t, err)
	withLinks, err := Dump(root, Options{Hardlinks: true})
	must(t, err)
	if d := Diff(origPlain, plain); d != "" {
		t.Errorf("without Hardlinks, a link and a copy must look the same:\n%s", d)
	}
	if d := Diff(lines, withLinks); !strings.Contains(d, "-hl ") || !strings.Contains(d, "+hl ") {
		t.Errorf("breaking a hardlink: want hl in the diff, got:\n%s", d)
	}
}

func TestMTimeAndIgnoreXattrs(t *testing.T) {
	root := build(t)
	f := filepath.Join(root, "suid")
	must(t, os.Chtimes(f, time.Unix(1234567890, 5e8), time.Unix(1234567890, 5e8)))
	must(t, unix.Setxattr(f, "user.ignored.x", []byte("v"), 0))
	lines, err := Dump(root, Options{MTime: true, IgnoreXattrs: []string{"user.ignored"}})
	must(t, err)
	l := find(t, lines, "suid")
	if !strings.HasSuffix(l, " mtime=1234567890.500000000") {
		t.Errorf("want mtime=1234567890.500000000: %q", l)
	}
	if strings.Contains(l, "ignored") {
		t.Errorf("ignored xattr listed: %q", l)
	}
	for _, x := range lines {
		if !strings.Contains(x, " mtime=") {
			t.Errorf("no mtime: %q", x)
		}
	}
	all, err := Dump(root, Options{})
	must(t, err)
	if l := find(t, all, "suid"); !strings.Contains(l, "xattr:user.ignored.x=76") {
		t.Errorf("xattr missing without IgnoreXattrs: %q", l)
	}
	// security.selinux, if this kernel lets root set it, is ignored too.
	if err := unix.Setxattr(f, "security.selinux", []byte("system_u:object_r:x:s0\x00"), 0); err == nil {
		withSec, err := Dump(root, Options{})
		must(t, err)
		if l := find(t, withSec, "suid"); !strings.Contains(l, "xattr:security.selinux=") {
			t.Errorf("security.selinux not listed: %q", l)
		}
		noSec, err := Dump(root, Options{IgnoreXattrs: []string{"security.selinux"}})
		must(t, err)
		if d := Diff(all, noSec); d != "" {
			t.Errorf("security.selinux not ignored:\n%s", d)
		}
	} else {
		t.Logf("cannot set security.selinux here (%v); only the user.* prefix was tested", err)
	}
}

// TestDiffDetects changes each recorded property and checks the diff
// names exactly the changed path.
func TestDiffDetects(t *testing.T) {
	root := build(t)
	base, err := Dump(root, Options{})
	must(t, err)
	if d := Diff(base, base); d != "" {
		t.Fatalf("Diff of equal lists: %q", d)
	}
	p := func(n string) string { return filepath.Join(root, n) }
	changes := []struct {
		path   string
		change func()
		undo   func()
	}{
		{"suid", func() { must(t, os.Chmod(p("suid"), 0o755)) }, func() { must(t, unix.Chmod(p("suid"), 0o4755)) }},
		{"suid", func() { must(t, os.Lchown(p("suid"), 1000, 1002)) }, func() { must(t, os.Lchown(p("suid"), 1000, 1001)); must(t, unix.Chmod(p("suid"), 0o4755)) }},
		{"sticky/back\\slash", func() { must(t, os.WriteFile(p("sticky/back\\slash"), []byte("y"), 0o644)) }, func() { must(t, os.WriteFile(p("sticky/back\\slash"), []byte("x"), 0o644)) }},
		{"sym", func() { must(t, os.Remove(p("sym"))); must(t, os.Symlink("hl", p("sym"))) }, func() { must(t, os.Remove(p("sym"))); must(t, os.Symlink("a file", p("sym"))) }},
		{"sym", func() { must(t, os.Lchown(p("sym"), 5, 6)) }, func() { must(t, os.Lchown(p("sym"), 0, 0)) }},
		{"sticky", func() { must(t, unix.Setxattr(p("sticky"), "user.d", []byte("dir2"), 0)) }, func() { must(t, unix.Setxattr(p("sticky"), "user.d", []byte("dir"), 0)) }},
		{"sticky", func() { must(t, os.Chmod(p("sticky"), 0o777)) }, func() { must(t, unix.Chmod(p("sticky"), 0o1777)) }},
		{"null", func() {
			must(t, os.Remove(p("null")))
			must(t, unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
			must(t, os.Chmod(p("null"), 0o666))
		}, func() {
			must(t, os.Remove(p("null")))
			must(t, unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
			must(t, os.Chmod(p("null"), 0o666))
		}},
		{"pipe", func() { must(t, os.Remove(p("pipe"))); must(t, os.WriteFile(p("pipe"), nil, 0o600)) }, func() { must(t, os.Remove(p("pipe"))); must(t, unix.Mkfifo(p("pipe"), 0o600)) }},
	}
	for i, c := range changes {
		c.change()
		got, err := Dump(root, Options{})
		must(t, err)
		d := Diff(base, got)
		want := "-" + Escape(c.path) + " "
		wantPlus := "+" + Escape(c.path) + " "
		if !strings.Contains(d, "\n"+want) || !strings.Contains(d, "\n"+wantPlus) || strings.Count(d, "\n") != 4 {
			t.Errorf("change %d of %s: want one -/+ pair for it, got:\n%s", i, c.path, d)
		}
		c.undo()
		again, err := Dump(root, Options{})
		must(t, err)
		if d := Diff(base, again); d != "" {
			t.Fatalf("change %d of %s not undone:\n%s", i, c.path, d)
		}
	}
	// An added and a removed path.
	must(t, os.WriteFile(p("new"), nil, 0o644))
	must(t, os.Remove(p("blk")))
	got, err := Dump(root, Options{})
	must(t, err)
	d := Diff(base, got)
	if !strings.Contains(d, "\n-blk type=b") || !strings.Contains(d, "\n+new type=f") || strings.Count(d, "\n") != 4 {
		t.Errorf("add/remove: got\n%s", d)
	}
}

func TestCanonicalRewrite(t *testing.T) {
	root := build(t)
	lines, err := Dump(root, Options{Rewrite: Canonical})
	must(t, err)
	if l := find(t, lines, "suid"); !strings.Contains(l, "mode=0755 uid=0 gid=0 ") {
		t.Errorf("canonical suid: %q", l)
	}
	if l := find(t, lines, "sticky"); l != "sticky type=d mode=0755 uid=0 gid=0" {
		t.Errorf("canonical sticky: %q", l)
	}
	if l := find(t, lines, "sym"); !strings.Contains(l, "mode=0777") {
		t.Errorf("canonical symlink keeps 0777: %q", l)
	}
	// Dropping entries.
	lines, err = Dump(root, Options{Rewrite: func(e *Entry) bool { return e.Type != 'p' }})
	must(t, err)
	for _, l := range lines {
		if strings.HasPrefix(l, "pipe ") {
			t.Errorf("dropped entry listed: %q", l)
		}
	}
}
