package sign

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/ostree-mount/ostree-mount/repo"
)

// CommitBytes reads the bytes of commit c, the data its signatures cover.
func CommitBytes(r *repo.Repo, c repo.Checksum) ([]byte, error) {
	return r.ReadMetaObject(repo.ObjCommit, c)
}

// editSignatures rewrites the aay under key in c's detached metadata with
// edit, inside one transaction (so under the repository lock), keeping
// every other key. It writes nothing when edit changes nothing.
func editSignatures(ctx context.Context, r *repo.Repo, c repo.Checksum, key string, edit func(data []byte, sigs [][]byte) ([][]byte, error)) error {
	data, err := CommitBytes(r, c)
	if err != nil {
		return err
	}
	tx, err := r.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Abort()
	m, err := r.ReadCommitMeta(c)
	if err != nil {
		return err
	}
	sigs, err := Signatures(m, key)
	if err != nil {
		return fmt.Errorf("commitmeta %s: %w", c, err)
	}
	out, err := edit(data, sigs)
	if err != nil {
		return err
	}
	if equalSigs(sigs, out) {
		return nil
	}
	if err := tx.SetCommitMeta(c, SetSignatures(m, key, out)); err != nil {
		return err
	}
	return tx.Commit()
}

func equalSigs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// SignCommitEd25519 adds a signature by each of keys to commit c's
// ostree.sign.ed25519, keeping the signatures there. ed25519 signatures
// are deterministic, so signing again with a key adds nothing.
func SignCommitEd25519(ctx context.Context, r *repo.Repo, c repo.Checksum, keys []ed25519.PrivateKey) error {
	return editSignatures(ctx, r, c, Ed25519MetaKey, func(data []byte, sigs [][]byte) ([][]byte, error) {
		out := append([][]byte(nil), sigs...)
	next:
		for _, k := range keys {
			s := SignEd25519(k, data)
			for _, have := range out {
				if bytes.Equal(have, s) {
					continue next
				}
			}
			out = append(out, s)
		}
		return out, nil
	})
}

// DeleteEd25519 removes from commit c the ed25519 signatures that verify
// with one of keys and returns how many it removed.
func DeleteEd25519(ctx context.Context, r *repo.Repo, c repo.Checksum, keys []ed25519.PublicKey) (int, error) {
	n := 0
	err := editSignatures(ctx, r, c, Ed25519MetaKey, func(data []byte, sigs [][]byte) ([][]byte, error) {
		var out [][]byte
		for _, s := range sigs {
			if verifyEd25519Any(data, s, keys) {
				n++
				continue
			}
			out = append(out, s)
		}
		return out, nil
	})
	return n, err
}

func verifyEd25519Any(data, sig []byte, keys []ed25519.PublicKey) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	for _, k := range keys {
		if ed25519.Verify(k, data, sig) {
			return true
		}
	}
	return false
}

// SignCommitGPG adds a GPG signature by keyID (made by gpg, see GPGSign)
// to commit c's ostree.gpgsigs, keeping the signatures there. A commit
// that already has a signature by keyID is left alone, so signing again
// is idempotent (OpenPGP signatures carry a time and differ each time).
func SignCommitGPG(ctx context.Context, r *repo.Repo, c repo.Checksum, keyID, homedir string) error {
	return editSignatures(ctx, r, c, GPGMetaKey, func(data []byte, sigs [][]byte) ([][]byte, error) {
		for _, s := range sigs {
			if GPGSignatureMatches(s, keyID) {
				return sigs, nil
			}
		}
		s, err := GPGSign(ctx, keyID, homedir, data)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", c, err)
		}
		return append(append([][]byte(nil), sigs...), s), nil
	})
}

// DeleteGPG removes the GPG signatures by keyID from commit c, as `ostree
// gpg-sign --delete` does, and returns how many it removed.
func DeleteGPG(ctx context.Context, r *repo.Repo, c repo.Checksum, keyID string) (int, error) {
	n := 0
	err := editSignatures(ctx, r, c, GPGMetaKey, func(_ []byte, sigs [][]byte) ([][]byte, error) {
		var out [][]byte
		for _, s := range sigs {
			if GPGSignatureMatches(s, keyID) {
				n++
				continue
			}
			out = append(out, s)
		}
		return out, nil
	})
	return n, err
}

// VerifyCommitEd25519 checks commit c in r against ed25519 public keys
// given directly (sign --verify --keys-file).
func VerifyCommitEd25519(r *repo.Repo, c repo.Checksum, keys []ed25519.PublicKey) error {
	data, m, err := commitAndMeta(r, c)
	if err != nil {
		return err
	}
	sigs, err := Signatures(m, Ed25519MetaKey)
	if err == nil {
		if detail, reason := verifyEd25519(data, sigs, keys); reason != nil {
			return &VerifyError{What: "commit " + c.String(), Kind: "ed25519", Err: reason, Detail: detail}
		}
		return nil
	}
	return &VerifyError{What: "commit " + c.String(), Kind: "ed25519", Err: ErrBadSignature, Detail: err.Error()}
}

// VerifyCommitGPG checks commit c in r against the keys of kr; remote
// only names the remote in the error.
func VerifyCommitGPG(r *repo.Repo, c repo.Checksum, kr *Keyring, remote string) error {
	data, m, err := commitAndMeta(r, c)
	if err != nil {
		return err
	}
	sigs, err := Signatures(m, GPGMetaKey)
	if err == nil {
		if detail, reason := verifyGPG(data, sigs, kr); reason != nil {
			return &VerifyError{What: "commit " + c.String(), Remote: remote, Kind: "gpg", Err: reason, Detail: detail}
		}
		return nil
	}
	return &VerifyError{What: "commit " + c.String(), Remote: remote, Kind: "gpg", Err: ErrBadSignature, Detail: err.Error()}
}

func commitAndMeta(r *repo.Repo, c repo.Checksum) ([]byte, repo.Metadata, error) {
	data, err := CommitBytes(r, c)
	if err != nil {
		return nil, nil, err
	}
	m, err := r.ReadCommitMeta(c)
	if err != nil {
		return nil, nil, err
	}
	return data, m, nil
}
