package repo

import "errors"

// Sentinel errors. Every error the package returns that falls in one of these
// classes wraps the sentinel, with context naming the object, ref or path;
// test them with errors.Is.
var (
	// ErrObjectNotFound: the object is not in the repository.
	ErrObjectNotFound = errors.New("object not found")
	// ErrChecksumMismatch: an object's bytes do not hash to its name.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrCorrupt: an object cannot be parsed (bad GVariant, bad names,
	// unsorted entries, bad header).
	ErrCorrupt = errors.New("corrupt object")
	// ErrInvalidChecksum: a string is not a 64-hex checksum.
	ErrInvalidChecksum = errors.New("invalid checksum")
	// ErrInvalidRef: a ref name fails ostree's validation.
	ErrInvalidRef = errors.New("invalid ref name")
	// ErrRefNotFound: no ref or commit matches a revision.
	ErrRefNotFound = errors.New("ref not found")
	// ErrAmbiguous: a checksum prefix matches more than one commit.
	ErrAmbiguous = errors.New("ambiguous checksum prefix")
	// ErrInvalidName: a file name or symlink target cannot be stored
	// (not UTF-8, empty, ".", "..", or containing "/").
	ErrInvalidName = errors.New("invalid name")
	// ErrUnsupported: a file type or feature ostree cannot store.
	ErrUnsupported = errors.New("unsupported")
	// ErrLocked: the repository lock could not be taken in time.
	ErrLocked = errors.New("repository locked")
	// ErrNotRepo: a directory is not an OSTree repository.
	ErrNotRepo = errors.New("not an ostree repository")
	// ErrExists: something that must not exist already does.
	ErrExists = errors.New("already exists")
)

// ErrUnavailable: an object could not be read now, for a reason that may
// pass (a remote store that did not answer, a fetch that timed out). It is
// never wrapped together with ErrCorrupt or ErrChecksumMismatch, and a
// consumer must not remember it as damage: a retry may succeed.
var ErrUnavailable = errors.New("object unavailable")
