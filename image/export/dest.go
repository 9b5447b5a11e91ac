package export

import (
	"fmt"
	"regexp"
	"strings"
)

// Dest is a parsed export destination.
type Dest struct {
	Transport string // "oci", "oci-archive" or "docker-archive"
	Path      string
	// Tag: for oci and oci-archive the org.opencontainers.image.ref.name
	// annotation; for docker-archive NAME:TAG of RepoTags.
	Tag string
}

func (d Dest) String() string {
	if d.Tag == "" {
		return d.Transport + ":" + d.Path
	}
	return d.Transport + ":" + d.Path + ":" + d.Tag
}

var (
	tagRe  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	nameRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
)

// ParseDest parses a destination in skopeo's syntax: oci:DIR[:TAG],
// oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]. The path is
// what precedes the last ':' that starts a valid tag (for docker-archive,
// a valid NAME:TAG reference).
func ParseDest(s string) (Dest, error) {
	transport, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Dest{}, fmt.Errorf("destination %q: no transport (want oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG])", s)
	}
	d := Dest{Transport: transport, Path: rest}
	switch transport {
	case "oci", "oci-archive":
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && tagRe.MatchString(rest[i+1:]) {
			d.Path, d.Tag = rest[:i], rest[i+1:]
		}
	case "docker-archive":
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			ref := rest[i+1:]
			if j := strings.LastIndexByte(ref, ':'); j > 0 && nameRe.MatchString(ref[:j]) && tagRe.MatchString(ref[j+1:]) {
				d.Path, d.Tag = rest[:i], ref
			} else if nameRe.MatchString(ref) && !strings.Contains(ref, ":") {
				d.Path, d.Tag = rest[:i], ref+":latest"
			}
		}
	default:
		return Dest{}, fmt.Errorf("destination %q: unsupported transport %q (want oci, oci-archive or docker-archive)", s, transport)
	}
	if d.Path == "" {
		return Dest{}, fmt.Errorf("destination %q: empty path", s)
	}
	return d, nil
}
