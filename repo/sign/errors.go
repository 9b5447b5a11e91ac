package sign

import (
	"errors"
	"fmt"
)

// Reasons a verification fails; a *VerifyError wraps one of them.
var (
	// ErrNoSignatures: verification is on but there is no signature of
	// the required kind.
	ErrNoSignatures = errors.New("no signatures found")
	// ErrUnknownKey: every signature is by a key that is not trusted.
	ErrUnknownKey = errors.New("signed by unknown key")
	// ErrBadSignature: a signature does not verify (damaged, over other
	// bytes, by an expired or revoked key, or by none of the trusted
	// ed25519 keys, which carry no key ID to tell).
	ErrBadSignature = errors.New("bad signature")
	// ErrNoKeys: verification is on but the remote has no trusted keys
	// of the required kind configured.
	ErrNoKeys = errors.New("no trusted keys")
)

// VerifyError is a refused commit or summary.
type VerifyError struct {
	What   string // "commit CHECKSUM" or "summary"
	Remote string // remote name; empty for a local check
	Kind   string // "gpg" or "ed25519"
	Err    error  // one of the Err* reasons
	Detail string // e.g. the key ID of ErrUnknownKey, or the library's message
}

func (e *VerifyError) Error() string {
	where := ""
	if e.Remote != "" {
		where = fmt.Sprintf(" from remote %q", e.Remote)
	}
	msg := e.Err.Error()
	if e.Detail != "" {
		if errors.Is(e.Err, ErrUnknownKey) {
			msg += " " + e.Detail
		} else {
			msg += " (" + e.Detail + ")"
		}
	}
	return fmt.Sprintf("%s%s: %s signature verification failed: %s", e.What, where, e.Kind, msg)
}

func (e *VerifyError) Unwrap() error { return e.Err }
