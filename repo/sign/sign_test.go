package sign_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
	"github.com/ostree-mount/ostree-mount/repo/sign"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func runCmd(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// newCommit stores an empty-tree commit with the given subject.
func newCommit(t testing.TB, r *repo.Repo, subject string) repo.Checksum {
	t.Helper()
	tx, err := r.Begin(context.Background())
	must(t, err)
	defer tx.Abort()
	dm, err := tx.WriteDirMeta(&repo.DirMeta{Mode: 0o40755})
	must(t, err)
	dt, err := tx.WriteDirTree(&repo.DirTree{})
	must(t, err)
	c, err := tx.WriteCommitFor(dt, dm, &repo.CommitOptions{Subject: subject, NoParent: true, NoBindings: true})
	must(t, err)
	must(t, tx.Commit())
	return c
}

// opensslKey makes an ed25519 key with openssl and returns the 64-byte
// secret key libostree's --keys-file holds, built from the DER forms: the
// last 32 bytes of the PKCS#8 private key are the seed, the last 32 of the
// SubjectPublicKeyInfo the public key. It also returns the PEM file, for
// openssl to sign with.
func opensslKey(t testing.TB) (ed25519.PrivateKey, string) {
	t.Helper()
	pem := filepath.Join(t.TempDir(), "key.pem")
	runCmd(t, nil, "openssl", "genpkey", "-algorithm", "ed25519", "-out", pem)
	priv := runCmd(t, nil, "openssl", "pkey", "-in", pem, "-outform", "DER")
	pub := runCmd(t, nil, "openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER")
	if len(priv) < 32 || len(pub) < 32 {
		t.Fatalf("openssl DER forms too short: %d, %d bytes", len(priv), len(pub))
	}
	sk := append(append([]byte{}, priv[len(priv)-32:]...), pub[len(pub)-32:]...)
	return ed25519.PrivateKey(sk), pem
}

// TestEd25519Format checks the key file and signature formats against
// libostree's source (ostreedev/ostree at 4620465):
//
//   - src/libostree/ostree-sign-ed25519.c lines 37-39: the seed is 32
//     bytes and a secret key is the seed followed by the public key
//     (src/libotcore/otcore.h line 39: 32 bytes), 64 in all;
//   - ostree-sign-ed25519.c lines 143-145 (libsodium crypto_sign_detached)
//     and 151-161 (openssl EVP_DigestSign keyed by the 32-byte seed): the
//     signature is plain ed25519 over the data, the commit's bytes
//     (ostree-sign.c ostree_sign_commit), 64 bytes (otcore.h line 37);
//   - otcore.h lines 41-43: the detached metadata key ostree.sign.ed25519,
//     of type aay; ostree-sign.c lines 345-373: a new signature is
//     appended to the array already there;
//   - ostree-sign-ed25519.c lines 502-527, ostree-sign.c lines 675 and 702,
//     ostree-blob-reader-base64.c: key files hold one base64 key a line.
//
// The signature is compared with one openssl computes independently over
// the .commit file's bytes read from disk.
func TestEd25519Format(t *testing.T) {
	sk, pem := opensslKey(t)
	r := repotest.NewRepoNoSync(t, repo.ModeArchive)
	c := newCommit(t, r, "ed25519")

	keyFile := filepath.Join(t.TempDir(), "secret.ed25519")
	must(t, os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(sk)+"\n"), 0o600))
	keys, err := sign.ReadEd25519Keys(keyFile)
	must(t, err)
	if len(keys.Secret) != 1 || len(keys.Public) != 1 || !bytes.Equal(keys.Public[0], sk[32:]) {
		t.Fatalf("key file: %d secret, %d public keys; want the public key openssl printed", len(keys.Secret), len(keys.Public))
	}
	must(t, sign.SignCommitEd25519(context.Background(), r, c, keys.Secret))

	onDisk, err := os.ReadFile(r.ObjectPath(repo.ObjCommit, c))
	must(t, err)
	want := runCmd(t, nil, "openssl", "pkeyutl", "-sign", "-rawin", "-inkey", pem, "-in", r.ObjectPath(repo.ObjCommit, c))
	m, err := r.ReadCommitMeta(c)
	must(t, err)
	sigs, err := sign.Signatures(m, "ostree.sign.ed25519")
	must(t, err)
	if len(sigs) != 1 || !bytes.Equal(sigs[0], want) {
		t.Fatalf("ostree.sign.ed25519 = %x, want [%x] (openssl over the %d bytes of the .commit)", sigs, want, len(onDisk))
	}
	if v, _ := m.Get("ostree.sign.ed25519"); v.Type.String() != "aay" {
		t.Fatalf("ostree.sign.ed25519 has type %s, want aay", v.Type)
	}

	// Idempotent: the deterministic signature is not added twice.
	must(t, sign.SignCommitEd25519(context.Background(), r, c, keys.Secret))
	m2, err := r.ReadCommitMeta(c)
	must(t, err)
	if s2, _ := sign.Signatures(m2, sign.Ed25519MetaKey); len(s2) != 1 {
		t.Fatalf("signing twice left %d signatures, want 1", len(s2))
	}

	// Public-key files (32 bytes) verify; another key does not.
	must(t, sign.VerifyCommitEd25519(r, c, keys.Public))
	other, _ := opensslKey(t)
	err = sign.VerifyCommitEd25519(r, c, []ed25519.PublicKey{other.Public().(ed25519.PublicKey)})
	if !errors.Is(err, sign.ErrBadSignature) || !strings.Contains(err.Error(), c.String()) {
		t.Fatalf("verify with another key: %v, want ErrBadSignature naming the commit", err)
	}
	pubFile := filepath.Join(t.TempDir(), "public.ed25519")
	must(t, os.WriteFile(pubFile, []byte(base64.StdEncoding.EncodeToString(sk[32:])+"\n"), 0o644))
	pk, err := sign.ReadEd25519Keys(pubFile)
	must(t, err)
	if len(pk.Secret) != 0 || len(pk.Public) != 1 {
		t.Fatalf("public key file: %d secret, %d public keys", len(pk.Secret), len(pk.Public))
	}
	must(t, sign.VerifyCommitEd25519(r, c, pk.Public))

	// Delete removes that key's signatures only.
	must(t, sign.SignCommitEd25519(context.Background(), r, c, []ed25519.PrivateKey{other}))
	n, err := sign.DeleteEd25519(context.Background(), r, c, pk.Public)
	must(t, err)
	if n != 1 {
		t.Fatalf("delete removed %d signatures, want 1", n)
	}
	if err := sign.VerifyCommitEd25519(r, c, pk.Public); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("after delete: %v, want ErrBadSignature", err)
	}
	must(t, sign.VerifyCommitEd25519(r, c, []ed25519.PublicKey{other.Public().(ed25519.PublicKey)}))
}

func TestEd25519KeyFileErrors(t *testing.T) {
	sk := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	bad := append([]byte{}, sk...)
	bad[40] ^= 1
	for _, tc := range []struct{ name, text, want string }{
		{"short", base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n", "31 bytes"},
		{"not base64", "@@@\n", "not base64"},
		{"empty line", "\n", "empty line"},
		{"mismatched halves", base64.StdEncoding.EncodeToString(bad) + "\n", "does not belong"},
	} {
		_, err := sign.ParseEd25519Keys("F", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "F line 1") {
			t.Errorf("%s: %v, want an error naming F line 1 and %q", tc.name, err, tc.want)
		}
	}
}

// gpgKey makes a signing-only ed25519 key in a new GnuPG home and returns
// the home, the key's fingerprint and its exported public key (armoured).
func gpgKey(t testing.TB, name string) (home, fpr string, pub []byte) {
	t.Helper()
	home, err := os.MkdirTemp("", "gpg")
	must(t, err)
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	runCmd(t, nil, "gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", name+" <"+name+"@example.invalid>", "ed25519", "sign", "never")
	out := string(runCmd(t, nil, "gpg", "--homedir", home, "--batch", "--with-colons", "--list-keys"))
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
	pub = runCmd(t, nil, "gpg", "--homedir", home, "--batch", "--armor", "--export", fpr)
	return home, fpr, pub
}

// TestGPG: signatures gpg makes verify against the remote's keyring in
// REPO/NAME.trustedkeys.gpg, imported from an armoured or a binary key;
// the refusals carry their sentinel and name commit and remote.
func TestGPG(t *testing.T) {
	ctx := context.Background()
	home, fpr, pubArmored := gpgKey(t, "trusted")
	home2, fpr2, _ := gpgKey(t, "stranger")
	r := repotest.NewRepoNoSync(t, repo.ModeArchive)
	signed := newCommit(t, r, "signed")
	must(t, sign.SignCommitGPG(ctx, r, signed, fpr, home))
	// Idempotent: a second sign by the same key adds nothing.
	must(t, sign.SignCommitGPG(ctx, r, signed, fpr[len(fpr)-16:], home))
	m, err := r.ReadCommitMeta(signed)
	must(t, err)
	if s, _ := sign.Signatures(m, sign.GPGMetaKey); len(s) != 1 {
		t.Fatalf("%d GPG signatures, want 1", len(s))
	}

	pubFile := filepath.Join(t.TempDir(), "pub.asc")
	must(t, os.WriteFile(pubFile, pubArmored, 0o644))
	cfg, err := repo.ParseConfig([]byte("[core]\nrepo_version=1\n"))
	must(t, err)
	v := &sign.Verifier{RepoPath: r.Path(), Config: cfg, RemotesDir: t.TempDir(), GPGHome: t.TempDir()}

	verify := func(remote string, c repo.Checksum) error {
		data, err := sign.CommitBytes(r, c)
		must(t, err)
		m, err := r.ReadCommitMeta(c)
		must(t, err)
		return v.VerifyCommit(ctx, remote, c, data, m)
	}
	// No keys at all: the signature's key is unknown.
	if err := verify("origin", signed); !errors.Is(err, sign.ErrUnknownKey) || !strings.Contains(err.Error(), `remote "origin"`) {
		t.Fatalf("no keys: %v, want ErrUnknownKey naming the remote", err)
	}
	n, err := sign.ImportGPGKeys(r.Path(), "origin", pubFile)
	must(t, err)
	if n != 1 {
		t.Fatalf("imported %d keys, want 1", n)
	}
	must(t, verify("origin", signed))

	// A binary export imports as well, into a second remote.
	bin := runCmd(t, nil, "gpg", "--homedir", home, "--batch", "--export", fpr)
	binFile := filepath.Join(t.TempDir(), "pub.gpg")
	must(t, os.WriteFile(binFile, bin, 0o644))
	_, err = sign.ImportGPGKeys(r.Path(), "binary", binFile)
	must(t, err)
	must(t, verify("binary", signed))

	unsigned := newCommit(t, r, "unsigned")
	if err := verify("origin", unsigned); !errors.Is(err, sign.ErrNoSignatures) || !strings.Contains(err.Error(), unsigned.String()) {
		t.Fatalf("unsigned: %v, want ErrNoSignatures naming the commit", err)
	}
	stranger := newCommit(t, r, "stranger")
	must(t, sign.SignCommitGPG(ctx, r, stranger, fpr2, home2))
	err = verify("origin", stranger)
	if !errors.Is(err, sign.ErrUnknownKey) || !strings.Contains(err.Error(), fpr2[len(fpr2)-16:]) {
		t.Fatalf("stranger: %v, want ErrUnknownKey naming key %s", err, fpr2)
	}
	// A flipped byte in the signature's last MPI.
	data, err := sign.CommitBytes(r, signed)
	must(t, err)
	sigs, _ := sign.Signatures(m, sign.GPGMetaKey)
	flipped := append([]byte{}, sigs[0]...)
	flipped[len(flipped)-3] ^= 0x40
	bad := sign.SetSignatures(m, sign.GPGMetaKey, [][]byte{flipped})
	if err := v.VerifyCommit(ctx, "origin", signed, data, bad); !errors.Is(err, sign.ErrBadSignature) {
		t.Fatalf("flipped byte: %v, want ErrBadSignature", err)
	}
	// gpg-verify=false turns it off.
	cfg.Set(`remote "origin"`, "gpg-verify", "false")
	must(t, verify("origin", unsigned))
	// The bytes must be the commit's.
	if err := v.VerifyCommit(ctx, "binary", signed, append(data, 0), m); err == nil {
		t.Fatal("verify accepted bytes that are not the commit's")
	}
	// Delete as ostree gpg-sign --delete.
	n, err = sign.DeleteGPG(ctx, r, signed, fpr[len(fpr)-8:])
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d, want 1", n)
	}
	if err := verify("binary", signed); !errors.Is(err, sign.ErrNoSignatures) {
		t.Fatalf("after delete: %v, want ErrNoSignatures", err)
	}
}

// TestKeySources: gpgkeypath (a file and a directory), the global keyring
// directory used only when the remote has no keyring, and remotes.d.
func TestKeySources(t *testing.T) {
	ctx := context.Background()
	home, fpr, pub := gpgKey(t, "src")
	r := repotest.NewRepoNoSync(t, repo.ModeArchive)
	c := newCommit(t, r, "c")
	must(t, sign.SignCommitGPG(ctx, r, c, fpr, home))
	data, err := sign.CommitBytes(r, c)
	must(t, err)
	m, err := r.ReadCommitMeta(c)
	must(t, err)

	keyDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(keyDir, "k.asc"), pub, 0o644))
	global := t.TempDir()
	bin := runCmd(t, nil, "gpg", "--homedir", home, "--batch", "--export", fpr)
	must(t, os.WriteFile(filepath.Join(global, "vendor.gpg"), bin, 0o644))
	remotesD := t.TempDir()
	must(t, os.WriteFile(filepath.Join(remotesD, "d.conf"), []byte("[remote \"fromd\"]\nurl=file:///x\ngpgkeypath="+keyDir+"\n"), 0o644))

	cfg, err := repo.ParseConfig([]byte("[remote \"path\"]\ngpgkeypath=/nonexistent-never;" + filepath.Join(keyDir, "k.asc") + "\n"))
	must(t, err)
	cfg.Set(`remote "dir"`, "gpgkeypath", keyDir)
	v := &sign.Verifier{RepoPath: r.Path(), Config: cfg, RemotesDir: remotesD, GPGHome: global}
	for _, remote := range []string{"dir", "fromd", "global"} {
		if err := v.VerifyCommit(ctx, remote, c, data, m); err != nil {
			t.Errorf("remote %s: %v", remote, err)
		}
	}
	if err := v.VerifyCommit(ctx, "path", c, data, m); err == nil || !strings.Contains(err.Error(), "nonexistent-never") {
		t.Errorf("missing gpgkeypath entry: %v, want an error naming it", err)
	}
	// A remote keyring (here, of another key) hides the global keyrings.
	_, _, otherPub := gpgKey(t, "other")
	f := filepath.Join(t.TempDir(), "o.asc")
	must(t, os.WriteFile(f, otherPub, 0o644))
	_, err = sign.ImportGPGKeys(r.Path(), "global", f)
	must(t, err)
	if err := v.VerifyCommit(ctx, "global", c, data, m); !errors.Is(err, sign.ErrUnknownKey) {
		t.Errorf("remote keyring without the key: %v, want ErrUnknownKey", err)
	}
}

// TestEd25519Policy: sign-verify=ed25519 with verification-ed25519-key or
// -file; an explicit type with no keys is ErrNoKeys; the summary check.
func TestEd25519Policy(t *testing.T) {
	ctx := context.Background()
	sk := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	r := repotest.NewRepoNoSync(t, repo.ModeArchive)
	c := newCommit(t, r, "c")
	must(t, sign.SignCommitEd25519(ctx, r, c, []ed25519.PrivateKey{sk}))
	data, err := sign.CommitBytes(r, c)
	must(t, err)
	m, err := r.ReadCommitMeta(c)
	must(t, err)
	keyFile := filepath.Join(t.TempDir(), "trusted")
	must(t, os.WriteFile(keyFile, []byte(sign.EncodeEd25519Public(other.Public().(ed25519.PublicKey))+"\n"+sign.EncodeEd25519Public(sk.Public().(ed25519.PublicKey))+"\n"), 0o644))
	cfg, err := repo.ParseConfig([]byte(`[remote "key"]
gpg-verify=false
sign-verify=ed25519
verification-ed25519-key=` + sign.EncodeEd25519Public(sk.Public().(ed25519.PublicKey)) + `
[remote "file"]
gpg-verify=false
sign-verify=true
verification-ed25519-file=` + keyFile + `
[remote "wrong"]
gpg-verify=false
sign-verify=ed25519
verification-ed25519-key=` + sign.EncodeEd25519Public(other.Public().(ed25519.PublicKey)) + `
[remote "nokeys"]
gpg-verify=false
sign-verify=ed25519
`))
	must(t, err)
	v := &sign.Verifier{RepoPath: r.Path(), Config: cfg, RemotesDir: t.TempDir(), Ed25519Dirs: []string{t.TempDir()}}
	must(t, v.VerifyCommit(ctx, "key", c, data, m))
	must(t, v.VerifyCommit(ctx, "file", c, data, m))
	if err := v.VerifyCommit(ctx, "wrong", c, data, m); !errors.Is(err, sign.ErrBadSignature) {
		t.Errorf("wrong key: %v, want ErrBadSignature", err)
	}
	if err := v.VerifyCommit(ctx, "nokeys", c, data, m); !errors.Is(err, sign.ErrNoKeys) {
		t.Errorf("no keys: %v, want ErrNoKeys", err)
	}
	if err := v.VerifyCommit(ctx, "key", c, data, nil); !errors.Is(err, sign.ErrNoSignatures) {
		t.Errorf("unsigned: %v, want ErrNoSignatures", err)
	}

	// summary.sig: an a{sv} like commitmeta, over the summary's bytes.
	summary := []byte("not really a summary, but bytes all the same")
	sigMeta := sign.SetSignatures(nil, sign.Ed25519MetaKey, [][]byte{sign.SignEd25519(sk, summary)})
	sig, err := repo.MarshalMetadata(sigMeta)
	must(t, err)
	cfg.Set(`remote "key"`, "sign-verify-summary", "ed25519")
	if req, err := v.SummaryRequired("key"); err != nil || !req {
		t.Fatalf("SummaryRequired = %v, %v", req, err)
	}
	must(t, v.VerifySummary(ctx, "key", summary, sig))
	if err := v.VerifySummary(ctx, "key", append(summary, '!'), sig); !errors.Is(err, sign.ErrBadSignature) || !strings.Contains(err.Error(), "summary") {
		t.Errorf("changed summary: %v, want ErrBadSignature naming the summary", err)
	}
	if err := v.VerifySummary(ctx, "key", summary, nil); !errors.Is(err, sign.ErrNoSignatures) {
		t.Errorf("no summary.sig: %v, want ErrNoSignatures", err)
	}
	// Not required: an absent summary.sig is fine.
	must(t, v.VerifySummary(ctx, "file", summary, nil))
}

// TestRemoteGroupName: options are looked up in the group GKeyFile
// writes, remote "NAME" with NAME verbatim (Go's %q would escape the
// backslash and miss the group).
func TestRemoteGroupName(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeArchive)
	c := newCommit(t, r, "c")
	data, err := sign.CommitBytes(r, c)
	must(t, err)
	cfg, err := repo.ParseConfig([]byte("[remote \"a\\b\"]\ngpg-verify=false\n"))
	must(t, err)
	v := &sign.Verifier{RepoPath: r.Path(), Config: cfg, RemotesDir: t.TempDir(), GPGHome: t.TempDir()}
	must(t, v.VerifyCommit(context.Background(), `a\b`, c, data, nil))
}
