package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// The rule that keeps a repository from handing out privilege (doc.go,
// "Exposure"): no user but the owner reaches an object that is setuid,
// setgid or sticky, writable by group or others, or that carries a
// security.* xattr (security.capability is privilege). In bare mode objects
// must keep their real metadata, so the rule is kept by reachability:
// objects/ and tmp/ (where objects are staged) are 0700. In the other
// modes the object files themselves never carry such bits.

// privateDirs are the repository directories that bare mode keeps 0700.
var privateDirs = []string{"objects", "tmp"}

func privateDir(d string) bool {
	for _, p := range privateDirs {
		if d == p {
			return true
		}
	}
	return false
}

// protectBare makes objects/ and tmp/ of a bare repository 0700 if they
// are wider, as `ostree init --mode=bare` (0755) and earlier versions made
// them. It costs one fstat per directory when nothing needs changing.
func (r *Repo) protectBare() error {
	if r.mode != ModeBare {
		return nil
	}
	if err := tighten(int(r.objects.Fd()), "objects"); err != nil {
		return err
	}
	fd, err := unix.Openat(int(r.dir.Fd()), "tmp", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s/tmp: %w", r.path, err)
	}
	defer unix.Close(fd)
	return tighten(fd, "tmp")
}

func tighten(fd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if st.Mode&0o7777 == 0o700 {
		return nil
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("make %s private (chmod 0700): %w", name, err)
	}
	return nil
}

// ExposureWarning is one way a repository breaks the rule.
type ExposureWarning struct {
	Path    string // relative to the repository: "objects", "objects/ab/cd….file"
	Problem string
	Fix     string // how to fix it, "" when another warning says
}

func (w ExposureWarning) String() string { return w.Path + ": " + w.Problem }

// maxExposureListed is how many objects CheckExposure names; the rest are
// counted in one last warning.
const maxExposureListed = 20

// CheckExposure reports what in the repository breaks the rule, for
// repositories made by earlier versions or by other tools. In bare mode
// the dangerous objects are only reported when objects/ or tmp/ is
// reachable by group or others, since they are harmless otherwise.
func (r *Repo) CheckExposure(ctx context.Context) ([]ExposureWarning, error) {
	var out []ExposureWarning
	var dirs []string // where to look for objects
	if r.mode == ModeBare {
		for _, d := range privateDirs {
			var st unix.Stat_t
			if err := unix.Fstatat(int(r.dir.Fd()), d, &st, 0); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return nil, fmt.Errorf("check exposure: %s: %w", d, err)
			}
			if st.Mode&0o077 == 0 {
				continue
			}
			out = append(out, ExposureWarning{
				Path:    d,
				Problem: fmt.Sprintf("mode %04o: a bare repository's objects are real files with their real modes, owners and xattrs, and other users can reach them", st.Mode&0o7777),
				Fix:     fmt.Sprintf("chmod 0700 %s %s (every ostree-mount write transaction also does it)", filepath.Join(r.path, "objects"), filepath.Join(r.path, "tmp")),
			})
			dirs = append(dirs, d)
		}
		if len(dirs) == 0 {
			return nil, nil
		}
	} else {
		dirs = privateDirs
	}
	var bad []ExposureWarning
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(r.path, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if e.IsDir() {
				return ctx.Err()
			}
			if !e.Type().IsRegular() {
				return nil // symlinks have no mode and carry no capability
			}
			if problem := objectExposure(p); problem != "" {
				rel, _ := filepath.Rel(r.path, p)
				bad = append(bad, ExposureWarning{Path: rel, Problem: problem})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("check exposure: %w", err)
		}
	}
	if len(bad) == 0 {
		return out, nil
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Path < bad[j].Path })
	n := len(bad)
	if n > maxExposureListed {
		bad = bad[:maxExposureListed]
	}
	out = append(out, bad...)
	if n > maxExposureListed {
		out = append(out, ExposureWarning{Path: "objects", Problem: fmt.Sprintf("and %d more objects like these", n-maxExposureListed)})
	}
	if r.mode != ModeBare {
		out[len(out)-1].Fix = r.exposureFix()
	}
	return out, nil
}

// exposureFix says how to fix dangerous objects outside bare mode.
func (r *Repo) exposureFix() string {
	if r.mode == ModeBareUserOnly {
		// The on-disk mode is the object's metadata: changing it would
		// break its checksum.
		return "these objects' modes are part of their checksums: re-import or re-commit their trees into a new repository"
	}
	// bare-user and archive: the on-disk mode is not the object's metadata.
	return fmt.Sprintf("find %s -type f -perm /7022 -exec chmod u+r,go-w,ug-s,-t {} + ; security.* xattrs: setfattr -x NAME FILE",
		filepath.Join(r.path, "objects"))
}

// objectExposure says what is wrong with the object file at p, or "".
func objectExposure(p string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Sprintf("stat: %v", err)
	}
	var what []string
	if st.Mode&unix.S_ISUID != 0 {
		what = append(what, "setuid")
	}
	if st.Mode&unix.S_ISGID != 0 {
		what = append(what, "setgid")
	}
	if st.Mode&unix.S_ISVTX != 0 {
		what = append(what, "sticky")
	}
	if st.Mode&0o020 != 0 {
		what = append(what, "group-writable")
	}
	if st.Mode&0o002 != 0 {
		what = append(what, "world-writable")
	}
	names, err := securityXattrs(p)
	if err != nil {
		what = append(what, fmt.Sprintf("xattrs: %v", err))
	}
	for _, n := range names {
		what = append(what, "carries "+n)
	}
	if len(what) == 0 {
		return ""
	}
	return fmt.Sprintf("mode %04o, uid %d: %s", st.Mode&0o7777, st.Uid, strings.Join(what, ", "))
}

// securityXattrs lists the security.* xattrs of p that grant or record
// privilege. security.selinux is a label the host's policy puts on every
// file, not a privilege, and is left out.
func securityXattrs(p string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var out []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if strings.HasPrefix(name, "security.") && name != "security.selinux" {
				out = append(out, name)
			}
		}
		return out, nil
	}
}

// bareUserMode returns the on-disk mode of a bare-user regular file
// object, whose true mode is in user.ostreemeta: no setuid, setgid or
// sticky bit, no group or other write, always readable by its owner.
// (libostree masks with 0775, keeping group write.)
func bareUserMode(mode uint32) uint32 { return mode&0o755 | 0o400 }

// canonicalize forces the metadata a bare-user-only object can keep: its
// on-disk mode is its metadata, so it must be harmless itself. uid and gid
// are 0 and there are no xattrs, as in libostree's bare-user-only mode;
// permissions are masked to 0755 (libostree refuses bits outside 0775).
func canonicalize(m *FileMeta) {
	m.UID, m.GID, m.Xattrs = 0, 0, nil
	if !m.IsSymlink() {
		m.Mode = m.Mode&ModeFmt | m.Mode&0o755
	}
}
