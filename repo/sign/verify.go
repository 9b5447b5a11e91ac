package sign

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// Detached metadata keys of libostree's signatures (ostree-core-private.h
// _OSTREE_METADATA_GPGSIGS_NAME, ostree-sign-ed25519.h).
const (
	GPGMetaKey     = "ostree.gpgsigs"
	Ed25519MetaKey = "ostree.sign.ed25519"
)

var typeAay = gvariant.MustParseType("aay")

// Signatures returns the aay under key of m (nil when absent); a value of
// another type is an error.
func Signatures(m repo.Metadata, key string) ([][]byte, error) {
	v, ok := m.Get(key)
	if !ok {
		return nil, nil
	}
	if v.Type == nil || v.Type.String() != "aay" {
		return nil, fmt.Errorf("%s: type %v, want aay", key, v.Type)
	}
	arr, ok := v.Value.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: not an array", key)
	}
	out := make([][]byte, 0, len(arr))
	for _, e := range arr {
		b, ok := e.([]byte)
		if !ok {
			return nil, fmt.Errorf("%s: element is not a byte string", key)
		}
		out = append(out, b)
	}
	return out, nil
}

// SetSignatures sets key of m to sigs, or removes key when sigs is empty.
// Other keys keep their place.
func SetSignatures(m repo.Metadata, key string, sigs [][]byte) repo.Metadata {
	if len(sigs) == 0 {
		out := m[:0:0]
		for _, e := range m {
			if e.Key != key {
				out = append(out, e)
			}
		}
		return out
	}
	arr := make([]any, len(sigs))
	for i, s := range sigs {
		arr[i] = s
	}
	m = append(repo.Metadata(nil), m...)
	m.Set(key, gvariant.Variant{Type: typeAay, Value: arr})
	return m
}

// Verifier checks commits and summaries against a remote's configured
// keys. The zero value of the directory fields means the system ones.
type Verifier struct {
	RepoPath string       // for NAME.trustedkeys.gpg
	Config   *repo.Config // the repository's config
	// RemotesDir holds *.conf remote definitions and NAME.trustedkeys.gpg
	// (default /etc/ostree/remotes.d).
	RemotesDir string
	// GPGHome is the global keyring directory (default $OSTREE_GPG_HOME,
	// else /usr/share/ostree/trusted.gpg.d).
	GPGHome string
	// Ed25519Dirs are where trusted.ed25519 and revoked.ed25519 are looked
	// up (default /etc/ostree and /usr/share/ostree).
	Ed25519Dirs []string
}

// NewVerifier returns a Verifier for r with the system directories.
func NewVerifier(r *repo.Repo) *Verifier {
	return &Verifier{RepoPath: r.Path(), Config: r.Config()}
}

func (v *Verifier) remotesDir() string {
	if v.RemotesDir != "" {
		return v.RemotesDir
	}
	return "/etc/ostree/remotes.d"
}

// option returns remote NAME's key from the repository config, else from
// the remotes.d *.conf files (read in name order, as ostree does).
func (v *Verifier) option(remote, key string) (string, bool) {
	group := "remote \"" + remote + "\""
	if v.Config != nil {
		if s, ok := v.Config.Get(group, key); ok {
			return s, true
		}
	}
	files, _ := filepath.Glob(filepath.Join(v.remotesDir(), "*.conf"))
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		c, err := repo.ParseConfig(b)
		if err != nil {
			continue
		}
		if s, ok := c.Get(group, key); ok {
			return s, true
		}
	}
	return "", false
}

func (v *Verifier) boolOption(remote, key string, def bool) (bool, error) {
	s, ok := v.option(remote, key)
	if !ok {
		return def, nil
	}
	switch s {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return def, fmt.Errorf("remote %s: %s=%q is not a boolean", remote, key, s)
}

// signTypes reads sign-verify or sign-verify-summary: nil when off; with
// "true", every type that has keys configured (required=false); with a
// list, those types, each required to have keys.
func (v *Verifier) signTypes(remote, key string) (types []string, required bool, err error) {
	s, ok := v.option(remote, key)
	if !ok || s == "" || s == "false" || s == "0" {
		return nil, false, nil
	}
	if s == "true" || s == "1" {
		return []string{"ed25519"}, false, nil
	}
	for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' }) {
		t = strings.TrimSpace(t)
		if t != "ed25519" {
			return nil, false, fmt.Errorf("remote %s: %s: signature type %q is not implemented (only ed25519)", remote, key, t)
		}
		types = append(types, t)
	}
	return types, true, nil
}

// GPGKeyring gathers the remote's trusted GPG keys as libostree does (see
// the package documentation).
func (v *Verifier) GPGKeyring(remote string) (*Keyring, error) {
	kr := &Keyring{}
	global := true
	for _, p := range []string{KeyringPath(v.RepoPath, remote), filepath.Join(v.remotesDir(), remote+".trustedkeys.gpg")} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("remote %s: keyring: %w", remote, err)
		}
		k, err := ParseKeys(p, b)
		if err != nil {
			return nil, fmt.Errorf("remote %s: %w", remote, err)
		}
		kr.Add(k)
		global = false
		break
	}
	if s, ok := v.option(remote, "gpgkeypath"); ok {
		for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' }) {
			if err := addKeyPath(kr, strings.TrimSpace(p)); err != nil {
				return nil, fmt.Errorf("remote %s: gpgkeypath: %w", remote, err)
			}
		}
	}
	if global {
		dir := v.GPGHome
		if dir == "" {
			dir = os.Getenv("OSTREE_GPG_HOME")
		}
		if dir == "" {
			dir = "/usr/share/ostree/trusted.gpg.d"
		}
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("global keyring directory %s: %w", dir, err)
		}
		for _, e := range ents {
			n := e.Name()
			if !e.Type().IsRegular() || !strings.HasSuffix(n, ".gpg") || n == "trustdb.gpg" || n == "secring.gpg" {
				continue
			}
			k, err := ReadKeyFile(filepath.Join(dir, n))
			if err != nil {
				return nil, err
			}
			kr.Add(k)
		}
	}
	return kr, nil
}

// addKeyPath adds a gpgkeypath entry: a directory's regular files, or a
// file.
func addKeyPath(kr *Keyring, p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	files := []string{p}
	if st.IsDir() {
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		files = files[:0]
		for _, e := range ents {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(p, e.Name()))
			}
		}
	}
	for _, f := range files {
		k, err := ReadKeyFile(f)
		if err != nil {
			return err
		}
		kr.Add(k)
	}
	return nil
}

// Ed25519Keys gathers the remote's trusted ed25519 public keys; required
// makes a remote without configured keys an error (ErrNoKeys), as a
// sign-verify list does in libostree.
func (v *Verifier) Ed25519Keys(remote string, required bool) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	file, hasFile := v.option(remote, "verification-ed25519-file")
	inline, hasKey := v.option(remote, "verification-ed25519-key")
	if hasFile {
		k, err := ReadEd25519Keys(file)
		if err != nil {
			return nil, fmt.Errorf("remote %s: verification-ed25519-file: %w", remote, err)
		}
		keys = append(keys, k.Public...)
	}
	if hasKey {
		k, err := ParseEd25519PublicKey(inline)
		if err != nil {
			return nil, fmt.Errorf("remote %s: verification-ed25519-key: %w", remote, err)
		}
		keys = append(keys, k)
	}
	if !hasFile && !hasKey {
		if required {
			return nil, nil
		}
		dirs := v.Ed25519Dirs
		if dirs == nil {
			dirs = []string{"/etc/ostree", "/usr/share/ostree"}
		}
		keys = systemEd25519Keys(dirs, "trusted")
		revoked := systemEd25519Keys(dirs, "revoked")
		keys = slicesDeleteFunc(keys, func(k ed25519.PublicKey) bool {
			for _, r := range revoked {
				if k.Equal(r) {
					return true
				}
			}
			return false
		})
	}
	return keys, nil
}

func slicesDeleteFunc(s []ed25519.PublicKey, del func(ed25519.PublicKey) bool) []ed25519.PublicKey {
	out := s[:0]
	for _, k := range s {
		if !del(k) {
			out = append(out, k)
		}
	}
	return out
}

// VerifyCommit checks commitBytes, the bytes of the commit object commit,
// against the signatures of its detached metadata, by the policy of the
// remote's config: gpg-verify (default true) and sign-verify. It returns
// nil when every enabled kind has a valid signature from a trusted key,
// else a *VerifyError.
func (v *Verifier) VerifyCommit(ctx context.Context, remoteName string, commit repo.Checksum, commitBytes []byte, detachedMeta repo.Metadata) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if repo.SumBytes(commitBytes) != commit {
		return fmt.Errorf("commit %s from remote %q: the bytes given hash to %s", commit, remoteName, repo.SumBytes(commitBytes))
	}
	gpgOn, err := v.boolOption(remoteName, "gpg-verify", true)
	if err != nil {
		return err
	}
	types, required, err := v.signTypes(remoteName, "sign-verify")
	if err != nil {
		return err
	}
	return v.verify("commit "+commit.String(), remoteName, commitBytes, detachedMeta, gpgOn, types, required)
}

// VerifySummary checks a remote's summary against summary.sig (an a{sv}
// as the detached metadata of a commit), by the remote's
// gpg-verify-summary (default false) and sign-verify-summary options. A
// nil sig stands for a summary.sig that is absent.
func (v *Verifier) VerifySummary(ctx context.Context, remoteName string, summary, sig []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	gpgOn, err := v.boolOption(remoteName, "gpg-verify-summary", false)
	if err != nil {
		return err
	}
	types, required, err := v.signTypes(remoteName, "sign-verify-summary")
	if err != nil {
		return err
	}
	if !gpgOn && len(types) == 0 {
		return nil
	}
	var m repo.Metadata
	if sig != nil {
		if m, err = repo.ParseMetadata(sig); err != nil {
			return fmt.Errorf("summary.sig from remote %q: %w", remoteName, err)
		}
	}
	return v.verify("summary", remoteName, summary, m, gpgOn, types, required)
}

// SummaryRequired reports whether the remote's config requires a signed
// summary (gpg-verify-summary or sign-verify-summary), so that the caller
// knows to fetch summary.sig.
func (v *Verifier) SummaryRequired(remoteName string) (bool, error) {
	gpgOn, err := v.boolOption(remoteName, "gpg-verify-summary", false)
	if err != nil {
		return false, err
	}
	types, _, err := v.signTypes(remoteName, "sign-verify-summary")
	return gpgOn || len(types) > 0, err
}

func (v *Verifier) verify(what, remote string, data []byte, m repo.Metadata, gpgOn bool, types []string, required bool) error {
	fail := func(kind string, reason error, detail string) error {
		return &VerifyError{What: what, Remote: remote, Kind: kind, Err: reason, Detail: detail}
	}
	if gpgOn {
		sigs, err := Signatures(m, GPGMetaKey)
		if err != nil {
			return fail("gpg", ErrBadSignature, err.Error())
		}
		var kr *Keyring
		if len(sigs) > 0 {
			if kr, err = v.GPGKeyring(remote); err != nil {
				return err
			}
		}
		if detail, reason := verifyGPG(data, sigs, kr); reason != nil {
			return fail("gpg", reason, detail)
		}
	}
	for range types { // only ed25519
		keys, err := v.Ed25519Keys(remote, required)
		if err != nil {
			return err
		}
		sigs, err := Signatures(m, Ed25519MetaKey)
		if err != nil {
			return fail("ed25519", ErrBadSignature, err.Error())
		}
		if detail, reason := verifyEd25519(data, sigs, keys); reason != nil {
			if errors.Is(reason, ErrNoKeys) {
				detail = "set verification-ed25519-key or verification-ed25519-file"
			}
			return fail("ed25519", reason, detail)
		}
	}
	return nil
}
