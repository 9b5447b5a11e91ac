package sign

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Ed25519Keys are the keys of a libostree --keys-file: secret keys sign,
// and their public halves verify too.
type Ed25519Keys struct {
	Secret []ed25519.PrivateKey
	Public []ed25519.PublicKey
}

// ParseEd25519Keys parses libostree's key file format: one base64 key per
// line, 64 bytes for a secret key (seed then public key) or 32 bytes for a
// public key. Blank lines are an error, as in libostree's base64 blob
// reader; name is for messages.
func ParseEd25519Keys(name string, b []byte) (*Ed25519Keys, error) {
	var k Ed25519Keys
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" {
			return nil, fmt.Errorf("ed25519 keys %s line %d: empty line", name, line)
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("ed25519 keys %s line %d: not base64: %w", name, line, err)
		}
		switch len(raw) {
		case ed25519.PrivateKeySize:
			sk := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
			if !bytes.Equal(sk[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
				return nil, fmt.Errorf("ed25519 keys %s line %d: the public half does not belong to the seed", name, line)
			}
			k.Secret = append(k.Secret, sk)
			k.Public = append(k.Public, sk.Public().(ed25519.PublicKey))
		case ed25519.PublicKeySize:
			k.Public = append(k.Public, ed25519.PublicKey(raw))
		default:
			return nil, fmt.Errorf("ed25519 keys %s line %d: %d bytes, want %d (secret) or %d (public)",
				name, line, len(raw), ed25519.PrivateKeySize, ed25519.PublicKeySize)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ed25519 keys %s: %w", name, err)
	}
	return &k, nil
}

// ReadEd25519Keys reads a key file.
func ReadEd25519Keys(path string) (*Ed25519Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ed25519 keys: %w", err)
	}
	return ParseEd25519Keys(path, b)
}

// ParseEd25519PublicKey parses one base64 public key (a remote's
// verification-ed25519-key).
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("ed25519 key %q: not base64: %w", s, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 key %q: %d bytes, want %d", s, len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// EncodeEd25519Secret is a secret key's line in a key file.
func EncodeEd25519Secret(sk ed25519.PrivateKey) string { return base64.StdEncoding.EncodeToString(sk) }

// EncodeEd25519Public is a public key's line in a key file.
func EncodeEd25519Public(pk ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pk) }

// SignEd25519 signs data with sk.
func SignEd25519(sk ed25519.PrivateKey, data []byte) []byte { return ed25519.Sign(sk, data) }

// verifyEd25519 reports whether one of sigs verifies data with one of the
// keys; its error is a bare reason with a detail for VerifyError.
func verifyEd25519(data []byte, sigs [][]byte, keys []ed25519.PublicKey) (detail string, reason error) {
	if len(sigs) == 0 {
		return "", ErrNoSignatures
	}
	if len(keys) == 0 {
		return "", ErrNoKeys
	}
	for i, s := range sigs {
		if len(s) != ed25519.SignatureSize {
			return fmt.Sprintf("signature %d is %d bytes, want %d", i, len(s), ed25519.SignatureSize), ErrBadSignature
		}
	}
	for _, s := range sigs {
		for _, k := range keys {
			if ed25519.Verify(k, data, s) {
				return "", nil
			}
		}
	}
	return fmt.Sprintf("none of %d signatures verifies with the %d trusted keys", len(sigs), len(keys)), ErrBadSignature
}

// systemEd25519Keys reads libostree's default key files for kind
// "trusted" or "revoked": BASE/KIND.ed25519 and BASE/KIND.ed25519.d/* for
// BASE in /etc/ostree and /usr/share/ostree. Unreadable or invalid files
// are skipped, as libostree skips them.
func systemEd25519Keys(bases []string, kind string) []ed25519.PublicKey {
	var keys []ed25519.PublicKey
	for _, base := range bases {
		file := filepath.Join(base, kind+".ed25519")
		files := []string{file}
		if ents, err := os.ReadDir(file + ".d"); err == nil {
			for _, e := range ents {
				files = append(files, filepath.Join(file+".d", e.Name()))
			}
		}
		for _, f := range files {
			if st, err := os.Stat(f); err != nil || !st.Mode().IsRegular() {
				continue
			}
			if k, err := ReadEd25519Keys(f); err == nil {
				keys = append(keys, k.Public...)
			}
		}
	}
	return keys
}
