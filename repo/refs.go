package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// RefKind says where a ref lives.
type RefKind int

// Ref kinds: refs/heads, refs/remotes/REMOTE, refs/mirrors/COLLECTION, and
// refs/weak, this project's weak refs, which never keep a commit alive.
const (
	RefHead RefKind = iota
	RefRemote
	RefMirror
	RefWeak
)

// RefName names a ref. Remote is the remote name for RefRemote and the
// collection ID for RefMirror.
type RefName struct {
	Kind   RefKind
	Remote string
	Name   string
}

// Head returns the RefName of refs/heads/name.
func Head(name string) RefName { return RefName{Kind: RefHead, Name: name} }

// Weak returns the RefName of refs/weak/name.
func Weak(name string) RefName { return RefName{Kind: RefWeak, Name: name} }

// Path returns the ref file's path relative to the repository.
func (n RefName) Path() string {
	switch n.Kind {
	case RefRemote:
		return "refs/remotes/" + n.Remote + "/" + n.Name
	case RefMirror:
		return "refs/mirrors/" + n.Remote + "/" + n.Name
	case RefWeak:
		return "refs/weak/" + n.Name
	}
	return "refs/heads/" + n.Name
}

// String returns the ref as the CLI prints and accepts it: NAME for heads,
// REMOTE:NAME for remotes, and the full path for mirrors and weak refs.
func (n RefName) String() string {
	switch n.Kind {
	case RefRemote:
		return n.Remote + ":" + n.Name
	case RefMirror, RefWeak:
		return n.Path()
	}
	return n.Name
}

// ostree's ref regex, `^(?:[\w\d][-._\w\d]*/)*[\w\d][-._\w\d]*$` with
// Unicode-aware \w. They are compiled on first use: every process start
// (a mount starts two) would otherwise pay for the Unicode classes.
var (
	refRE    = lazyRE(`^(?:[\p{L}\p{N}_][-._\p{L}\p{N}_]*/)*[\p{L}\p{N}_][-._\p{L}\p{N}_]*$`)
	remoteRE = lazyRE(`^[\p{L}\p{N}_][-._\p{L}\p{N}_]*$`)
	collRE   = lazyRE(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$`)
)

func lazyRE(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// ValidateRef checks a ref name as ostree does. A 64-hex checksum is not a
// valid ref name, so that refs and checksums cannot be confused.
func ValidateRef(name string) error {
	if !refRE().MatchString(name) {
		return fmt.Errorf("ref %q: only letters, digits, '_', '-' and '.' in '/'-separated components that do not start with '-' or '.': %w", name, ErrInvalidRef)
	}
	if IsValidChecksum(name) {
		return fmt.Errorf("ref %q: a checksum cannot be a ref name: %w", name, ErrInvalidRef)
	}
	return nil
}

// ValidateCollectionID checks a collection ID (a D-Bus interface name).
func ValidateCollectionID(id string) error {
	if len(id) > 255 || !collRE().MatchString(id) {
		return fmt.Errorf("collection ID %q: want at least two '.'-separated elements of [A-Za-z0-9_] not starting with a digit: %w", id, ErrInvalidRef)
	}
	return nil
}

// Validate checks every part of n.
func (n RefName) Validate() error {
	switch n.Kind {
	case RefRemote:
		if !remoteRE().MatchString(n.Remote) {
			return fmt.Errorf("remote name %q: %w", n.Remote, ErrInvalidRef)
		}
	case RefMirror:
		if err := ValidateCollectionID(n.Remote); err != nil {
			return err
		}
	}
	return ValidateRef(n.Name)
}

// ParseRefName parses the CLI form of a ref: NAME, REMOTE:NAME,
// refs/heads/NAME, refs/remotes/REMOTE/NAME, refs/mirrors/COLLECTION/NAME
// or refs/weak/NAME. The result is validated.
func ParseRefName(s string) (RefName, error) {
	var n RefName
	switch {
	case strings.HasPrefix(s, "refs/heads/"):
		n = RefName{Kind: RefHead, Name: strings.TrimPrefix(s, "refs/heads/")}
	case strings.HasPrefix(s, "refs/weak/"):
		n = RefName{Kind: RefWeak, Name: strings.TrimPrefix(s, "refs/weak/")}
	case strings.HasPrefix(s, "refs/remotes/"), strings.HasPrefix(s, "refs/mirrors/"):
		kind := RefRemote
		if strings.HasPrefix(s, "refs/mirrors/") {
			kind = RefMirror
		}
		rest := s[len("refs/remotes/"):]
		remote, name, ok := strings.Cut(rest, "/")
		if !ok {
			return n, fmt.Errorf("ref %q: missing name after %q: %w", s, remote, ErrInvalidRef)
		}
		n = RefName{Kind: kind, Remote: remote, Name: name}
	default:
		if remote, name, ok := strings.Cut(s, ":"); ok {
			n = RefName{Kind: RefRemote, Remote: remote, Name: name}
		} else {
			n = RefName{Kind: RefHead, Name: s}
		}
	}
	return n, n.Validate()
}

// ReadRef returns the commit a ref points at.
func (r *Repo) ReadRef(n RefName) (Checksum, error) {
	b, err := os.ReadFile(filepath.Join(r.path, n.Path()))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EISDIR) {
			return Checksum{}, fmt.Errorf("ref %s: %w", n, ErrRefNotFound)
		}
		return Checksum{}, fmt.Errorf("ref %s: %w", n, err)
	}
	s := strings.TrimRight(string(b), " \t\r\n")
	if !IsValidChecksum(s) {
		return Checksum{}, fmt.Errorf("ref %s: content %q is not a checksum: %w", n, truncate(s, 80), ErrCorrupt)
	}
	return ParseChecksum(s)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// writeRef writes a ref file atomically and bumps the repository mtime, as
// libostree does.
func (r *Repo) writeRef(n RefName, c Checksum) error {
	if err := n.Validate(); err != nil {
		return err
	}
	p := filepath.Join(r.path, n.Path())
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("ref %s: %w", n, err)
	}
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return fmt.Errorf("ref %s: a ref directory of that name exists: %w", n, ErrExists)
	}
	if err := writeFileAtomic(p, []byte(c.String()+"\n"), 0o644, r.fsync); err != nil {
		return fmt.Errorf("ref %s: %w", n, err)
	}
	now := time.Now()
	_ = os.Chtimes(r.path, now, now)
	return nil
}

// deleteRef removes a ref file and the directories it leaves empty.
func (r *Repo) deleteRef(n RefName) error {
	p := filepath.Join(r.path, n.Path())
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ref %s: %w", n, ErrRefNotFound)
		}
		return fmt.Errorf("ref %s: %w", n, err)
	}
	top := filepath.Join(r.path, "refs")
	for d := filepath.Dir(p); d != top && strings.HasPrefix(d, top); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	// Keep the top-level kinds ostree expects.
	for _, d := range []string{"heads", "remotes", "mirrors"} {
		_ = os.Mkdir(filepath.Join(top, d), 0o755)
	}
	now := time.Now()
	_ = os.Chtimes(r.path, now, now)
	return nil
}

// SetRef points a ref at a commit, under the repository's shared lock.
func (r *Repo) SetRef(ctx context.Context, n RefName, c Checksum) error {
	unlock, err := r.lock.Lock(ctx, LockShared)
	if err != nil {
		return err
	}
	defer unlock()
	return r.writeRef(n, c)
}

// DeleteRef removes a ref, under the repository's shared lock.
func (r *Repo) DeleteRef(ctx context.Context, n RefName) error {
	unlock, err := r.lock.Lock(ctx, LockShared)
	if err != nil {
		return err
	}
	defer unlock()
	return r.deleteRef(n)
}

// Ref is a ref and the commit it points at.
type Ref struct {
	Name   RefName
	Commit Checksum
}

// ListRefs returns the refs of the given kinds, sorted by path. A ref file
// that does not hold a checksum is an error naming it.
func (r *Repo) ListRefs(kinds ...RefKind) ([]Ref, error) {
	var out []Ref
	for _, k := range kinds {
		var base string
		switch k {
		case RefHead:
			base = "refs/heads"
		case RefRemote:
			base = "refs/remotes"
		case RefMirror:
			base = "refs/mirrors"
		case RefWeak:
			base = "refs/weak"
		}
		root := filepath.Join(r.path, base)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return nil // skip temporary files of writers
			}
			rel, _ := filepath.Rel(root, p)
			n := RefName{Kind: k, Name: rel}
			if k == RefRemote || k == RefMirror {
				remote, name, ok := strings.Cut(rel, "/")
				if !ok {
					return nil
				}
				n.Remote, n.Name = remote, name
			}
			c, err := r.ReadRef(n)
			if err != nil {
				return err
			}
			out = append(out, Ref{Name: n, Commit: c})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list refs: %w", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name.Path() < out[j].Name.Path() })
	return out, nil
}

// Resolve turns a revision into a commit checksum. A revision is, in
// order of precedence:
//   - a full 64-hex checksum;
//   - a ref in any form ParseRefName accepts; a bare NAME is looked up in
//     refs/heads, then refs/remotes (as REMOTE/NAME), then refs/weak;
//   - a unique prefix (at least 4 hex characters) of a commit checksum.
//
// A trailing "^" (repeatable) means the parent.
func (r *Repo) Resolve(rev string) (Checksum, error) {
	if strings.HasSuffix(rev, "^") {
		c, err := r.Resolve(rev[:len(rev)-1])
		if err != nil {
			return c, err
		}
		cm, err := r.ReadCommit(context.TODO(), c)
		if err != nil {
			return c, err
		}
		if !cm.HasParent() {
			return c, fmt.Errorf("revision %s: commit %s has no parent: %w", rev, c.Str(), ErrRefNotFound)
		}
		return cm.Parent, nil
	}
	if IsValidChecksum(rev) {
		return ParseChecksum(rev)
	}
	if n, err := ParseRefName(rev); err == nil {
		cands := []RefName{n}
		if n.Kind == RefHead && !strings.HasPrefix(rev, "refs/") {
			if remote, name, ok := strings.Cut(rev, "/"); ok {
				cands = append(cands, RefName{Kind: RefRemote, Remote: remote, Name: name})
			}
			cands = append(cands, Weak(rev))
		}
		for _, cand := range cands {
			c, err := r.ReadRef(cand)
			if err == nil {
				return c, nil
			}
			if !errors.Is(err, ErrRefNotFound) {
				return c, err
			}
		}
	}
	if c, ok, err := r.resolvePrefix(rev); ok || err != nil {
		return c, err
	}
	return Checksum{}, fmt.Errorf("revision %q: no such ref or commit: %w", rev, ErrRefNotFound)
}

func (r *Repo) resolvePrefix(p string) (Checksum, bool, error) {
	if len(p) < 4 || len(p) >= 64 {
		return Checksum{}, false, nil
	}
	for i := 0; i < len(p); i++ {
		if !(p[i] >= '0' && p[i] <= '9' || p[i] >= 'a' && p[i] <= 'f') {
			return Checksum{}, false, nil
		}
	}
	ents, err := os.ReadDir(filepath.Join(r.path, "objects", p[:2]))
	if err != nil {
		return Checksum{}, false, nil
	}
	var found []Checksum
	for _, e := range ents {
		c, ext, ok := parseObjectName(p[:2], e.Name())
		if ok && ext == "commit" && strings.HasPrefix(c.String(), p) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return Checksum{}, false, nil
	case 1:
		return found[0], true, nil
	}
	return Checksum{}, false, fmt.Errorf("revision %q matches %d commits: %w", p, len(found), ErrAmbiguous)
}
