package repo

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
)

// Checksum is the SHA-256 name of an object. On disk and in refs it is 64
// lowercase hex characters; inside GVariant objects it is 32 raw bytes.
type Checksum [32]byte

var (
	_ encoding.TextMarshaler   = Checksum{}
	_ encoding.TextUnmarshaler = (*Checksum)(nil)
)

// ParseChecksum parses 64 lowercase or uppercase hex characters.
func ParseChecksum(s string) (Checksum, error) {
	var c Checksum
	if len(s) != 64 {
		return c, fmt.Errorf("checksum %q: want 64 hex characters, have %d: %w", s, len(s), ErrInvalidChecksum)
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return c, fmt.Errorf("checksum %q: %w", s, ErrInvalidChecksum)
	}
	return c, nil
}

// checksumFromBytes converts a 32-byte GVariant `ay` into a Checksum.
func checksumFromBytes(b []byte) (Checksum, error) {
	var c Checksum
	if len(b) != len(c) {
		return c, fmt.Errorf("checksum of %d bytes, want 32: %w", len(b), ErrCorrupt)
	}
	copy(c[:], b)
	return c, nil
}

// IsValidChecksum reports whether s is 64 lowercase hex characters, which
// is what ostree accepts as a checksum (and refuses as a ref name).
func IsValidChecksum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
			return false
		}
	}
	return true
}

// String returns the 64-character hex form.
func (c Checksum) String() string { return hex.EncodeToString(c[:]) }

// Str returns a short form for messages.
func (c Checksum) Str() string { return hex.EncodeToString(c[:5]) }

// IsZero reports whether c is the zero value (no checksum).
func (c Checksum) IsZero() bool { return c == Checksum{} }

// MarshalText implements encoding.TextMarshaler.
func (c Checksum) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Checksum) UnmarshalText(b []byte) error {
	v, err := ParseChecksum(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// SumBytes returns the SHA-256 of b, the checksum of a metadata object.
func SumBytes(b []byte) Checksum { return sha256.Sum256(b) }

// ObjectType is the kind of an object, numbered as in libostree.
type ObjectType int

// Object types, with libostree's numbers.
const (
	ObjFile           ObjectType = 1
	ObjDirTree        ObjectType = 2
	ObjDirMeta        ObjectType = 3
	ObjCommit         ObjectType = 4
	ObjTombstone      ObjectType = 5
	ObjCommitMeta     ObjectType = 6
	ObjPayloadLink    ObjectType = 7
	ObjFileXattrs     ObjectType = 8
	ObjFileXattrsLink ObjectType = 9
)

func (t ObjectType) String() string {
	switch t {
	case ObjFile:
		return "file"
	case ObjDirTree:
		return "dirtree"
	case ObjDirMeta:
		return "dirmeta"
	case ObjCommit:
		return "commit"
	case ObjTombstone:
		return "tombstone-commit"
	case ObjCommitMeta:
		return "commitmeta"
	case ObjPayloadLink:
		return "payload-link"
	case ObjFileXattrs:
		return "file-xattrs"
	case ObjFileXattrsLink:
		return "file-xattrs-link"
	}
	return fmt.Sprintf("objtype(%d)", int(t))
}

// IsMeta reports whether objects of type t are GVariant metadata whose
// checksum is the SHA-256 of their bytes.
func (t ObjectType) IsMeta() bool {
	return t == ObjDirTree || t == ObjDirMeta || t == ObjCommit
}
