package sign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Keyring is a set of trusted OpenPGP public keys.
type Keyring struct {
	entities openpgp.EntityList
}

// Len is the number of keys (primary keys with their subkeys).
func (k *Keyring) Len() int { return len(k.entities) }

// ParseKeys parses OpenPGP public keys, ASCII-armoured or binary (a
// keyring file such as NAME.trustedkeys.gpg or an exported key); name is
// for messages.
func ParseKeys(name string, b []byte) (*Keyring, error) {
	var el openpgp.EntityList
	var err error
	if bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("-----BEGIN PGP")) {
		el, err = readArmoredKeys(b)
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(b))
	}
	if err != nil {
		return nil, fmt.Errorf("gpg keys %s: %w", name, err)
	}
	return &Keyring{entities: el}, nil
}

// readArmoredKeys reads every armoured block of b (a file may hold more
// than one).
func readArmoredKeys(b []byte) (openpgp.EntityList, error) {
	var all openpgp.EntityList
	r := bytes.NewReader(b)
	for {
		blk, err := armor.Decode(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if len(all) > 0 {
				break // trailing text after the last block
			}
			return nil, err
		}
		el, err := openpgp.ReadKeyRing(blk.Body)
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
	}
	if len(all) == 0 {
		return nil, errors.New("no keys in armoured text")
	}
	return all, nil
}

// ReadKeyFile reads keys from a file, armoured or binary.
func ReadKeyFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gpg keys: %w", err)
	}
	return ParseKeys(path, b)
}

// Add adds the keys of o not already in k (by fingerprint); a key already
// present is replaced by o's copy, which may carry new signatures or
// subkeys.
func (k *Keyring) Add(o *Keyring) {
	for _, e := range o.entities {
		fp := e.PrimaryKey.Fingerprint
		found := false
		for i, have := range k.entities {
			if bytes.Equal(have.PrimaryKey.Fingerprint, fp) {
				k.entities[i] = e
				found = true
				break
			}
		}
		if !found {
			k.entities = append(k.entities, e)
		}
	}
}

// Serialize writes the public keys as a binary keyring.
func (k *Keyring) Serialize(w io.Writer) error {
	for _, e := range k.entities {
		if err := e.Serialize(w); err != nil {
			return fmt.Errorf("gpg key %X: %w", e.PrimaryKey.Fingerprint, err)
		}
	}
	return nil
}

// KeyringPath is where ostree keeps a remote's GPG keys:
// REPO/NAME.trustedkeys.gpg (libostree ostree-remote.c).
func KeyringPath(repoPath, remote string) string {
	return filepath.Join(repoPath, remote+".trustedkeys.gpg")
}

// ImportGPGKeys adds the keys of the file at src (armoured or binary) to
// the remote's keyring REPO/NAME.trustedkeys.gpg, as `ostree remote add
// --gpg-import=FILE` does, and returns how many keys it read. The keyring
// is replaced atomically, mode 0644 as ostree makes it.
func ImportGPGKeys(repoPath, remote, src string) (int, error) {
	add, err := ReadKeyFile(src)
	if err != nil {
		return 0, fmt.Errorf("remote %s: import: %w", remote, err)
	}
	dst := KeyringPath(repoPath, remote)
	have := &Keyring{}
	if b, err := os.ReadFile(dst); err == nil {
		if have, err = ParseKeys(dst, b); err != nil {
			return 0, fmt.Errorf("remote %s: %w", remote, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("remote %s: keyring: %w", remote, err)
	}
	have.Add(add)
	var buf bytes.Buffer
	if err := have.Serialize(&buf); err != nil {
		return 0, fmt.Errorf("remote %s: %w", remote, err)
	}
	tmp, err := os.CreateTemp(repoPath, "."+remote+".trustedkeys.gpg.tmp*")
	if err != nil {
		return 0, fmt.Errorf("remote %s: keyring: %w", remote, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err == nil {
		err = tmp.Chmod(0o644)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), dst)
		}
		if err != nil {
			return 0, fmt.Errorf("remote %s: keyring %s: %w", remote, dst, err)
		}
	} else {
		tmp.Close()
		return 0, fmt.Errorf("remote %s: keyring %s: %w", remote, dst, err)
	}
	return add.Len(), nil
}

// issuer names the key that made a signature packet: its fingerprint when
// the packet carries one, else its 64-bit key ID, in hex as gpg prints.
func issuer(s *packet.Signature) string {
	if len(s.IssuerFingerprint) > 0 {
		return fmt.Sprintf("%X", s.IssuerFingerprint)
	}
	if s.IssuerKeyId != nil {
		return fmt.Sprintf("%016X", *s.IssuerKeyId)
	}
	return "(no issuer)"
}

// verifyGPG checks that one of sigs, each a binary OpenPGP signature,
// verifies data with a key of kr. Its result is a bare reason with a
// detail, for VerifyError: when no signature verifies, a signature by a
// trusted key that fails (ErrBadSignature) is reported before one by an
// unknown key.
func verifyGPG(data []byte, sigs [][]byte, kr *Keyring) (detail string, reason error) {
	if len(sigs) == 0 {
		return "", ErrNoSignatures
	}
	var bad, unknown string
	for i, s := range sigs {
		p, err := packet.Read(bytes.NewReader(s))
		sp, ok := p.(*packet.Signature)
		if err != nil || !ok {
			if bad == "" {
				bad = fmt.Sprintf("signature %d is not an OpenPGP signature packet", i)
			}
			continue
		}
		who := issuer(sp)
		if kr == nil || len(kr.entities) == 0 {
			if unknown == "" {
				unknown = who
			}
			continue
		}
		_, err = openpgp.CheckDetachedSignature(kr.entities, bytes.NewReader(data), bytes.NewReader(s), nil)
		switch {
		case err == nil:
			return "", nil
		case errors.Is(err, pgperrors.ErrUnknownIssuer):
			if unknown == "" {
				unknown = who
			}
		default:
			if bad == "" {
				bad = fmt.Sprintf("key %s: %v", who, err)
			}
		}
	}
	if bad != "" {
		return bad, ErrBadSignature
	}
	if kr == nil || len(kr.entities) == 0 {
		return unknown + "; no trusted GPG keys are configured", ErrUnknownKey
	}
	return unknown, ErrUnknownKey
}

// GPGSign makes a binary detached OpenPGP signature of data with the
// secret key keyID by running gpg, as libostree does through gpgme:
// gpg --homedir DIR --batch --detach-sign --local-user KEYID. An empty
// homedir leaves gpg's default ($GNUPGHOME, ~/.gnupg).
func GPGSign(ctx context.Context, keyID, homedir string, data []byte) ([]byte, error) {
	if keyID == "" {
		return nil, errors.New("gpg sign: no key ID")
	}
	args := []string{"--batch", "--detach-sign", "--local-user", keyID, "--output", "-"}
	if homedir != "" {
		args = append([]string{"--homedir", homedir}, args...)
	}
	cmd := exec.CommandContext(ctx, "gpg", args...)
	cmd.Stdin = bytes.NewReader(data)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg sign with key %s: %w: %s", keyID, err, strings.TrimSpace(errb.String()))
	}
	p, err := packet.Read(bytes.NewReader(out.Bytes()))
	if _, ok := p.(*packet.Signature); err != nil || !ok {
		return nil, fmt.Errorf("gpg sign with key %s: gpg's output is not a signature packet", keyID)
	}
	return out.Bytes(), nil
}

// GPGSignatureMatches reports whether the signature sig was made by the key
// keyID: a fingerprint, or a long or short key ID, matched as a suffix of
// the issuer's fingerprint or key ID (as `ostree gpg-sign --delete` matches
// key IDs).
func GPGSignatureMatches(sig []byte, keyID string) bool {
	p, err := packet.Read(bytes.NewReader(sig))
	sp, ok := p.(*packet.Signature)
	if err != nil || !ok {
		return false
	}
	id := strings.ToUpper(strings.TrimPrefix(strings.ReplaceAll(keyID, " ", ""), "0x"))
	if id == "" {
		return false
	}
	if len(sp.IssuerFingerprint) > 0 && strings.HasSuffix(fmt.Sprintf("%X", sp.IssuerFingerprint), id) {
		return true
	}
	return sp.IssuerKeyId != nil && strings.HasSuffix(fmt.Sprintf("%016X", *sp.IssuerKeyId), id)
}
