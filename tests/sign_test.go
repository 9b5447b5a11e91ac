package tests

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/sign"
)

// gpgHome makes a GnuPG home with one signing-only ed25519 key, as
// remotes.md §2 says, and returns the home, the key's fingerprint and the
// path of its armoured public key.
func gpgHome(t testing.TB, name string) (home, fpr, pubFile string) {
	t.Helper()
	home, err := os.MkdirTemp("", "gpg") // short: gpg-agent's socket path
	check(t, err)
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	mustRun(t, "gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", name+" <"+name+"@example.invalid>", "ed25519", "sign", "never")
	out := mustRun(t, "gpg", "--homedir", home, "--batch", "--with-colons", "--list-keys").Stdout
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
	pubFile = filepath.Join(t.TempDir(), name+".asc")
	check(t, os.WriteFile(pubFile, []byte(mustRun(t, "gpg", "--homedir", home, "--batch", "--armor", "--export", fpr).Stdout), 0o644))
	return home, fpr, pubFile
}

// ostreeCommit commits a one-file tree with real ostree to branch.
func ostreeCommit(t testing.TB, repoPath, branch string) string {
	t.Helper()
	dir := t.TempDir()
	check(t, os.WriteFile(filepath.Join(dir, "f"), []byte(branch), 0o644))
	return strings.TrimSpace(ostreeCmd(t, "commit", repoArg(repoPath), "-b", branch, "--tree=dir="+dir))
}

// refusedWith checks a failed ostree-mount run: its message names the
// commit, the remote (when given) and the reason.
func refusedWith(t testing.TB, r cmdResult, commit, remote, reason string) {
	t.Helper()
	for _, want := range []string{commit, reason} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("message lacks %q:\n%s", want, r)
		}
	}
	if remote != "" && !strings.Contains(r.Stderr, `remote "`+remote+`"`) {
		t.Errorf("message does not name remote %s:\n%s", remote, r)
	}
	if n := strings.Count(strings.TrimSpace(r.Stderr), "\n"); n != 0 {
		t.Errorf("want one line of message, have %d:\n%s", n+1, r)
	}
}

// TestSignGPGFromOstree: commits that real `ostree gpg-sign` signed are
// verified by `ostree-mount sign --verify --remote=NAME` (the remote's
// policy, as pull applies it) with the keys `ostree remote add
// --gpg-import` stored; an unsigned commit, one signed by an untrusted
// key, one with a flipped byte in its signature and a remote with
// gpg-verify on but no keys are refused, each with its reason.
func TestSignGPGFromOstree(t *testing.T) {
	home, fpr, pub := gpgHome(t, "trusted")
	home2, fpr2, _ := gpgHome(t, "stranger")
	src := filepath.Join(t.TempDir(), "src")
	ostreeCmd(t, "init", repoArg(src), "--mode=archive")
	ostreeCmd(t, "remote", "add", repoArg(src), "--gpg-import="+pub, "origin", "file:///nonexistent")
	ostreeCmd(t, "remote", "add", repoArg(src), "nokeys", "file:///nonexistent")
	if _, err := os.Stat(filepath.Join(src, "origin.trustedkeys.gpg")); err != nil {
		t.Fatalf("ostree remote add --gpg-import did not make the keyring our verifier reads: %v", err)
	}

	good := ostreeCommit(t, src, "good")
	ostreeCmd(t, "gpg-sign", repoArg(src), "--gpg-homedir="+home, good, fpr)
	om(t, "sign", repoArg(src), "--verify", "--remote=origin", good)
	om(t, "sign", repoArg(src), "--verify", "--gpg-verify-remote=origin", "good")
	om(t, "sign", repoArg(src), "--verify", "--keyring="+pub, good)

	unsigned := ostreeCommit(t, src, "unsigned")
	refusedWith(t, omFail(t, "sign", repoArg(src), "--verify", "--remote=origin", unsigned), unsigned, "origin", "no signatures found")

	stranger := ostreeCommit(t, src, "stranger")
	ostreeCmd(t, "gpg-sign", repoArg(src), "--gpg-homedir="+home2, stranger, fpr2)
	r := omFail(t, "sign", repoArg(src), "--verify", "--remote=origin", stranger)
	refusedWith(t, r, stranger, "origin", "signed by unknown key")
	if !strings.Contains(r.Stderr, fpr2[len(fpr2)-16:]) {
		t.Errorf("message does not name the key %s:\n%s", fpr2, r)
	}

	refusedWith(t, omFail(t, "sign", repoArg(src), "--verify", "--remote=nokeys", good), good, "nokeys", "signed by unknown key")

	// Flip a byte inside the signature, in the commitmeta file itself.
	flipped := ostreeCommit(t, src, "flipped")
	ostreeCmd(t, "gpg-sign", repoArg(src), "--gpg-homedir="+home, flipped, fpr)
	metaPath := filepath.Join(src, "objects", flipped[:2], flipped[2:]+".commitmeta")
	b, err := os.ReadFile(metaPath)
	check(t, err)
	m, err := repo.ParseMetadata(b)
	check(t, err)
	sigs, err := sign.Signatures(m, sign.GPGMetaKey)
	check(t, err)
	if len(sigs) != 1 {
		t.Fatalf("ostree gpg-sign left %d signatures", len(sigs))
	}
	at := bytes.Index(b, sigs[0])
	if at < 0 {
		t.Fatal("signature not found in the commitmeta file")
	}
	b[at+len(sigs[0])-3] ^= 0x40
	check(t, os.WriteFile(metaPath, b, 0o644))
	refusedWith(t, omFail(t, "sign", repoArg(src), "--verify", "--remote=origin", flipped), flipped, "origin", "bad signature")
	// ostree agrees that it is bad.
	if r := ostreeRun("show", repoArg(src), "--gpg-verify-remote=origin", flipped); r.Code == 0 && !strings.Contains(r.Stdout, "BAD signature") {
		t.Errorf("ostree accepts the flipped signature:\n%s", r)
	}

	// gpg-verify=false turns verification off, as in ostree.
	ostreeCmd(t, "remote", "add", repoArg(src), "--no-gpg-verify", "open", "file:///nonexistent")
	om(t, "sign", repoArg(src), "--verify", "--remote=open", unsigned)
}

// TestSignGPGForOstree: commits that ostree-mount signs with GPG (commit
// --gpg-sign, sign --gpg-sign on an existing commit, import --gpg-sign) are
// pulled by real ostree from a file:// remote with gpg-verify=true, with
// the key imported by `ostree remote add --gpg-import` and, for a second
// remote, by sign.ImportGPGKeys (the keyring file ostree-mount writes).
func TestSignGPGForOstree(t *testing.T) {
	home, fpr, pub := gpgHome(t, "signer")
	src := filepath.Join(t.TempDir(), "src")
	ostreeCmd(t, "init", repoArg(src), "--mode=archive")
	dir := t.TempDir()
	check(t, os.WriteFile(filepath.Join(dir, "f"), []byte("signed by ostree-mount"), 0o644))
	c1 := strings.TrimSpace(om(t, "commit", repoArg(src), "-b", "committed", "--gpg-sign="+fpr, "--gpg-homedir="+home, dir))
	c2 := strings.TrimSpace(om(t, "commit", repoArg(src), "-b", "later", "--tree=dir="+dir, "-s", "later"))
	om(t, "sign", repoArg(src), "--gpg-sign="+fpr, "--gpg-homedir="+home, "later")
	om(t, "sign", repoArg(src), "--gpg-sign="+fpr, "--gpg-homedir="+home, "later") // idempotent
	om(t, "commit", repoArg(src), "-b", "unsigned", "--tree=dir="+dir, "-s", "unsigned")
	img := syntheticImage(t)
	om(t, "import", repoArg(src), "-q", "--ref=img", "--gpg-sign="+fpr, "--gpg-homedir="+home, "oci:"+filepath.Join(img, "img")+":layer4")

	dst := filepath.Join(t.TempDir(), "dst")
	ostreeCmd(t, "init", repoArg(dst), "--mode=archive")
	ostreeCmd(t, "remote", "add", repoArg(dst), "--gpg-import="+pub, "src", "file://"+src)
	ostreeCmd(t, "pull", repoArg(dst), "src", "committed", "later", "img")
	for ref, want := range map[string]string{"committed": c1, "later": c2} {
		if got := strings.TrimSpace(ostreeCmd(t, "rev-parse", repoArg(dst), "src:"+ref)); got != want {
			t.Errorf("pulled %s = %s, want %s", ref, got, want)
		}
	}
	show := ostreeCmd(t, "show", repoArg(dst), "--gpg-verify-remote=src", "src:later")
	if n := strings.Count(show, "Good signature"); n != 1 {
		t.Errorf("ostree show: %d good signatures on the twice-signed commit, want 1:\n%s", n, show)
	}
	// ostree does verify: the unsigned branch is refused.
	if r := ostreeRun("pull", repoArg(dst), "src", "unsigned"); r.Code == 0 || !strings.Contains(r.Stderr, "no signatures found") {
		t.Errorf("ostree pulled an unsigned commit with gpg-verify=true:\n%s", r)
	}

	// The keyring ostree-mount writes serves ostree as well.
	ostreeCmd(t, "remote", "add", repoArg(dst), "ours", "file://"+src)
	n, err := sign.ImportGPGKeys(dst, "ours", pub)
	check(t, err)
	if n != 1 {
		t.Fatalf("imported %d keys, want 1", n)
	}
	ostreeCmd(t, "pull", repoArg(dst), "ours", "committed")

	// sign --delete --gpg-sign=KEYID, as ostree gpg-sign --delete.
	out := om(t, "sign", repoArg(src), "--delete", "--gpg-sign="+fpr[len(fpr)-16:], "committed")
	if !strings.Contains(out, "signatures deleted: 1") {
		t.Errorf("sign --delete printed %q", out)
	}
	refusedWith(t, omFail(t, "sign", repoArg(src), "--verify", "--keyring="+pub, c1), c1, "", "no signatures found")
}

// opensslEd25519 makes an ed25519 key with openssl (remotes.md §2) and
// writes libostree key files: the secret key (seed then public key,
// ostree-sign-ed25519.c:37-39) and the public key, base64 one a line.
func opensslEd25519(t testing.TB) (pem, secretFile, publicFile, publicB64 string) {
	t.Helper()
	d := t.TempDir()
	pem = filepath.Join(d, "key.pem")
	mustRun(t, "openssl", "genpkey", "-algorithm", "ed25519", "-out", pem)
	priv := []byte(mustRun(t, "openssl", "pkey", "-in", pem, "-outform", "DER").Stdout)
	pub := []byte(mustRun(t, "openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER").Stdout)
	seed, pk := priv[len(priv)-32:], pub[len(pub)-32:]
	publicB64 = base64.StdEncoding.EncodeToString(pk)
	secretFile, publicFile = filepath.Join(d, "secret"), filepath.Join(d, "public")
	check(t, os.WriteFile(secretFile, []byte(base64.StdEncoding.EncodeToString(append(append([]byte{}, seed...), pk...))+"\n"), 0o600))
	check(t, os.WriteFile(publicFile, []byte(publicB64+"\n"), 0o644))
	return pem, secretFile, publicFile, publicB64
}

// TestSignEd25519: `sign --keys-file` signatures verify with `sign
// --verify --keys-file` and fail with another key; the bytes are what
// openssl computes over the .commit file (libostree signs the commit's
// bytes with plain ed25519, src/libostree/ostree-sign-ed25519.c lines
// 143-161, into the aay ostree.sign.ed25519, src/libotcore/otcore.h lines
// 41-43); a remote with
// sign-verify=ed25519 and verification-ed25519-key accepts it and refuses
// an unsigned commit; --delete removes the key's signature.
func TestSignEd25519(t *testing.T) {
	pem, secret, public, publicB64 := opensslEd25519(t)
	_, _, otherPublic, _ := opensslEd25519(t)
	r := filepath.Join(t.TempDir(), "repo")
	om(t, "init", repoArg(r), "--mode=archive")
	dir := t.TempDir()
	check(t, os.WriteFile(filepath.Join(dir, "f"), []byte("ed25519"), 0o644))
	c := strings.TrimSpace(om(t, "commit", repoArg(r), "-b", "main", dir))
	u := strings.TrimSpace(om(t, "commit", repoArg(r), "-b", "unsigned", "-s", "u", dir))

	om(t, "sign", repoArg(r), "--sign-type=ed25519", "--keys-file="+secret, "main")
	metaPath := filepath.Join(r, "objects", c[:2], c[2:]+".commitmeta")
	first, err := os.ReadFile(metaPath)
	check(t, err)
	om(t, "sign", repoArg(r), "--keys-file="+secret, c)
	if again, _ := os.ReadFile(metaPath); !bytes.Equal(again, first) {
		t.Error("signing again changed the commitmeta")
	}
	om(t, "sign", repoArg(r), "--verify", "--keys-file="+public, c)
	om(t, "sign", repoArg(r), "--verify", "--keys-file="+secret, c)
	refusedWith(t, omFail(t, "sign", repoArg(r), "--verify", "--keys-file="+otherPublic, c), c, "", "bad signature")
	refusedWith(t, omFail(t, "sign", repoArg(r), "--verify", "--keys-file="+public, u), u, "", "no signatures found")

	commitFile := filepath.Join(r, "objects", c[:2], c[2:]+".commit")
	want := mustRun(t, "openssl", "pkeyutl", "-sign", "-rawin", "-inkey", pem, "-in", commitFile).Stdout
	m, err := repo.ParseMetadata(first)
	check(t, err)
	sigs, err := sign.Signatures(m, "ostree.sign.ed25519")
	check(t, err)
	if len(sigs) != 1 || string(sigs[0]) != want {
		t.Errorf("ostree.sign.ed25519 = %x, want [%x], openssl's signature of %s", sigs, want, commitFile)
	}

	cfg := filepath.Join(r, "config")
	b, err := os.ReadFile(cfg)
	check(t, err)
	b = append(b, []byte("\n[remote \"ed\"]\nurl=file:///nonexistent\ngpg-verify=false\nsign-verify=ed25519\nverification-ed25519-key="+publicB64+"\n"+
		"\n[remote \"edfile\"]\nurl=file:///nonexistent\ngpg-verify=false\nsign-verify=true\nverification-ed25519-file="+otherPublic+"\n")...)
	check(t, os.WriteFile(cfg, b, 0o644))
	om(t, "sign", repoArg(r), "--verify", "--remote=ed", c)
	refusedWith(t, omFail(t, "sign", repoArg(r), "--verify", "--remote=ed", u), u, "ed", "no signatures found")
	refusedWith(t, omFail(t, "sign", repoArg(r), "--verify", "--remote=edfile", c), c, "edfile", "bad signature")

	out := om(t, "sign", repoArg(r), "--delete", "--keys-file="+public, c)
	if !strings.Contains(out, "signatures deleted: 1") {
		t.Errorf("sign --delete printed %q", out)
	}
	refusedWith(t, omFail(t, "sign", repoArg(r), "--verify", "--keys-file="+public, c), c, "", "no signatures found")
}
