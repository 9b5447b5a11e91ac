package compose

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// The side channels that let OSTree objects carry what it cannot store.
//
// A device node, fifo or socket is stored as an empty regular file object
// carrying the xattr SpecialXattr, whose value is "c MAJOR:MINOR",
// "b MAJOR:MINOR", "p" (fifo) or "s" (socket). The object's permission
// bits, owner and other xattrs are the node's. To ostree it is an ordinary
// file, so `ostree fsck` accepts it; the composer, checkout and the mount
// turn it back into the node.
//
// An implicit directory of a layer (a parent created only because an entry
// below it needed one) carries ImplicitXattr in its dirmeta; it never
// overrides the metadata of the directory it merges with, and it is hidden
// when nothing but whiteouts lies beneath it.
//
// Image content can never set either: the importer drops every xattr in
// the user.ostree-mount. namespace from layer tars.
const (
	SpecialXattr  = "user.ostree-mount.special"
	ImplicitXattr = "user.ostree-mount.implicit"
	privatePrefix = "user.ostree-mount."
)

// Special is a decoded special file.
type Special struct {
	Type         byte // 'c', 'b', 'p' or 's'
	Major, Minor uint32
}

// Mode returns the S_IFMT bits of the special file.
func (s Special) Mode() uint32 {
	switch s.Type {
	case 'c':
		return repo.ModeChar
	case 'b':
		return repo.ModeBlock
	case 'p':
		return repo.ModeFifo
	}
	return repo.ModeSocket
}

// Rdev returns the Linux dev_t of a device.
func (s Special) Rdev() uint64 {
	return uint64(s.Minor&0xff) | uint64(s.Major&0xfff)<<8 | uint64(s.Minor&^0xff)<<12 | uint64(s.Major&^0xfff)<<32
}

func (s Special) String() string {
	if s.Type == 'c' || s.Type == 'b' {
		return fmt.Sprintf("%c %d:%d", s.Type, s.Major, s.Minor)
	}
	return string(s.Type)
}

// ParseSpecial decodes a SpecialXattr value.
func ParseSpecial(v []byte) (Special, error) {
	s := string(v)
	switch {
	case s == "p" || s == "s":
		return Special{Type: s[0]}, nil
	case len(s) > 2 && (s[0] == 'c' || s[0] == 'b') && s[1] == ' ':
		maj, min, ok := strings.Cut(s[2:], ":")
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if ok && err1 == nil && err2 == nil {
			return Special{Type: s[0], Major: uint32(a), Minor: uint32(b)}, nil
		}
	}
	return Special{}, fmt.Errorf("special file marker %q: %w", s, repo.ErrCorrupt)
}

// splitPrivate separates this package's side-channel xattrs from the
// file's own.
func splitPrivate(xs []repo.Xattr) (own []repo.Xattr, special []byte, implicit bool) {
	for i, x := range xs {
		if !strings.HasPrefix(x.Name, privatePrefix) {
			continue
		}
		// Rare: copy only when there is something to drop.
		own = make([]repo.Xattr, 0, len(xs)-1)
		own = append(own, xs[:i]...)
		for _, y := range xs[i:] {
			switch y.Name {
			case SpecialXattr:
				special = y.Value
			case ImplicitXattr:
				implicit = true
			default:
				if !strings.HasPrefix(y.Name, privatePrefix) {
					own = append(own, y)
				}
			}
		}
		return own, special, implicit
	}
	return xs, nil, false
}

// Values of ImplicitXattr.
const (
	ImplicitParent    = "1" // a parent made for an entry below it
	ImplicitWhiteouts = "w" // a parent holding nothing but whiteouts
)

// ImplicitKind returns "" for an explicit directory's dirmeta, else the
// value of its ImplicitXattr (ImplicitParent or ImplicitWhiteouts).
func ImplicitKind(m *repo.DirMeta) string { return implicitKind(m) }

// HardlinksVariant encodes hardlink groups (path -> first path of its
// group) as the a{ss} value of KeyHardlinks, sorted by path.
func HardlinksVariant(m map[string]string) gvariant.Variant { return linksVariant(m) }

// BoolVariant encodes a boolean metadata value, such as KeyXattrs.
func BoolVariant(b bool) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("b"), Value: b}
}

// DroppedXattr reports whether an xattr from a layer tar is dropped:
// this package's namespace (no injection of side channels), overlayfs's
// private xattrs, and what umoci also refuses to apply.
func DroppedXattr(name string) bool {
	return strings.HasPrefix(name, privatePrefix) ||
		strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") ||
		name == "security.selinux" || name == "system.nfs4_acl" || name == "user.ostreemeta"
}
