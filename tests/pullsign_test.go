package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/sign"
)

// TestPullVerifiesSignatures: pull over nginx from an archive repository
// whose commits real `ostree gpg-sign` signed, into a remote added with
// `remote add --gpg-import`. A commit signed by a trusted key is pulled;
// an unsigned one, one signed by an untrusted key, one with a flipped byte
// in its signature, and any commit of a remote with verification on but no
// keys are refused with one message naming commit, remote and reason,
// leaving no ref and no commit object. A remote with gpg-verify-summary
// pulls through a summary that ostree signed, and refuses a summary with
// no summary.sig.
func TestPullVerifiesSignatures(t *testing.T) {
	home, fpr, pub := gpgHome(t, "trusted")
	home2, fpr2, _ := gpgHome(t, "stranger")
	src := filepath.Join(t.TempDir(), "src")
	ostreeCmd(t, "init", repoArg(src), "--mode=archive")
	good := ostreeCommit(t, src, "good")
	ostreeCmd(t, "gpg-sign", repoArg(src), "--gpg-homedir="+home, good, fpr)
	unsigned := ostreeCommit(t, src, "unsigned")
	stranger := ostreeCommit(t, src, "stranger")
	ostreeCmd(t, "gpg-sign", repoArg(src), "--gpg-homedir="+home2, stranger, fpr2)
	flipped := ostreeCommit(t, src, "flipped")
	ostreeCmd(t, "gpg-sign", repoArg(src), "--gpg-homedir="+home, flipped, fpr)
	metaPath := filepath.Join(src, "objects", flipped[:2], flipped[2:]+".commitmeta")
	b, err := os.ReadFile(metaPath)
	check(t, err)
	m, err := repo.ParseMetadata(b)
	check(t, err)
	sigs, err := sign.Signatures(m, sign.GPGMetaKey)
	check(t, err)
	at := bytes.Index(b, sigs[0])
	if len(sigs) != 1 || at < 0 {
		t.Fatalf("ostree gpg-sign left %d signatures", len(sigs))
	}
	b[at+len(sigs[0])-3] ^= 0x40
	check(t, os.WriteFile(metaPath, b, 0o644))
	ostreeCmd(t, "summary", "-u", repoArg(src), "--gpg-sign="+fpr, "--gpg-homedir="+home)
	srv := startNginx(t, src, nginxOptions{})

	cl := filepath.Join(t.TempDir(), "client")
	om(t, "init", "--repo", cl, "--mode", "bare-user")
	om(t, "remote", "add", "--repo", cl, "--gpg-import="+pub, "origin", srv.URL)
	om(t, "remote", "add", "--repo", cl, "nokeys", srv.URL)
	om(t, "pull", "--repo", cl, "origin", "good")
	if got := readRefFile(t, cl, "refs/remotes/origin/good"); got != good {
		t.Fatalf("pull of a signed commit set refs/remotes/origin/good to %q, want %s", got, good)
	}
	// What ostree says of the pulled commit agrees.
	ostreeCmd(t, "fsck", repoArg(cl))

	refused := func(remoteName, ref, commit, reason string) {
		t.Helper()
		refusedWith(t, omFail(t, "pull", "--repo", cl, remoteName, ref), commit, remoteName, reason)
		if _, err := os.Stat(filepath.Join(cl, "refs/remotes", remoteName, ref)); err == nil {
			t.Errorf("refused pull of %s/%s left a ref", remoteName, ref)
		}
		if _, err := os.Stat(filepath.Join(cl, "objects", commit[:2], commit[2:]+".commit")); err == nil && commit != good {
			t.Errorf("refused pull of %s/%s stored commit %s", remoteName, ref, commit)
		}
	}
	refused("origin", "unsigned", unsigned, "no signatures found")
	refused("origin", "stranger", stranger, "signed by unknown key")
	refused("origin", "flipped", flipped, "bad signature")
	refused("nokeys", "good", good, "signed by unknown key")
	ostreeCmd(t, "fsck", repoArg(cl))

	// The same policy on lazy mounts, into a fresh client: the trusted
	// commit mounts, the others are refused before anything is stored as
	// a ref or mounted.
	lc := filepath.Join(t.TempDir(), "lazy")
	om(t, "init", "--repo", lc, "--mode", "bare-user")
	om(t, "remote", "add", "--repo", lc, "--gpg-import="+pub, "origin", srv.URL)
	om(t, "remote", "add", "--repo", lc, "nokeys", srv.URL)
	mnt := mountRev(t, lc, "origin:good")
	if b, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(b) != "good" {
		t.Fatalf("lazy mount of a signed commit: f = %q, %v", b, err)
	}
	refusedMount := func(remoteName, ref, commit, reason string) {
		t.Helper()
		m := newMountpoint(t)
		cleanupMount(t, m, "")
		refusedWith(t, omFail(t, "--repo", lc, "mount", remoteName+":"+ref, m), commit, remoteName, reason)
		if len(mountedAt(t, m)) != 0 {
			t.Errorf("refused %s:%s was mounted", remoteName, ref)
		}
		if _, err := os.Stat(filepath.Join(lc, "refs/remotes", remoteName, ref)); err == nil {
			t.Errorf("refused mount of %s:%s left a ref", remoteName, ref)
		}
	}
	refusedMount("origin", "unsigned", unsigned, "no signatures found")
	refusedMount("origin", "stranger", stranger, "signed by unknown key")
	refusedMount("origin", "flipped", flipped, "bad signature")
	refusedMount("nokeys", "good", good, "signed by unknown key")

	// A signed summary, required by the remote's config.
	om(t, "remote", "add", "--repo", cl, "--gpg-import="+pub, "--set=gpg-verify-summary=true", "sums", srv.URL)
	om(t, "pull", "--repo", cl, "sums", "good")
	check(t, os.Remove(filepath.Join(src, "summary.sig")))
	r := omFail(t, "pull", "--repo", cl, "sums", "good")
	if !bytes.Contains([]byte(r.Stderr), []byte("summary")) || !bytes.Contains([]byte(r.Stderr), []byte("no signatures found")) {
		t.Errorf("a missing summary.sig on a remote that requires it:\n%s", r)
	}
}

// TestLazyMountEd25519: a remote with sign-verify=ed25519 and the public
// key file mounts an image whose manifest commit ostree-mount signed with
// ed25519 (its layers are trusted through the related list's checksums),
// and refuses an unsigned image with nothing mounted and no ref.
func TestLazyMountEd25519(t *testing.T) {
	_, secret, public, _ := opensslEd25519(t)
	src := filepath.Join(t.TempDir(), "src")
	om(t, "init", "--repo", src, "--mode", "archive")
	for _, img := range []string{"signed", "unsigned"} {
		dir := filepath.Join(t.TempDir(), img)
		handImage{Layers: [][]byte{
			makeTar(t, fileEnt("base", "base\n")),
			makeTar(t, fileEnt("which", img+"\n")),
		}, Gzip: true}.write(t, dir)
		om(t, "import", "--repo", src, "--ref", img, "oci:"+dir)
	}
	om(t, "sign", "--repo", src, "--keys-file="+secret, "signed")
	om(t, "summary", "--repo", src, "-u")
	srv := startNginx(t, src, nginxOptions{})

	cl := filepath.Join(t.TempDir(), "client")
	om(t, "init", "--repo", cl, "--mode", "bare-user")
	om(t, "remote", "add", "--repo", cl, "--set=gpg-verify=false", "--set=sign-verify=ed25519",
		"--set=verification-ed25519-file="+public, "origin", srv.URL)
	mnt := mountRev(t, cl, "origin:signed")
	for name, want := range map[string]string{"base": "base\n", "which": "signed\n"} {
		if b, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || string(b) != want {
			t.Errorf("%s in the ed25519-signed image: %q, %v", name, b, err)
		}
	}
	unsigned := strings.TrimSpace(ostreeCmd(t, "rev-parse", "--repo="+src, "unsigned"))
	m := newMountpoint(t)
	cleanupMount(t, m, "")
	refusedWith(t, omFail(t, "--repo", cl, "mount", "origin:unsigned", m), unsigned, "origin", "no signatures found")
	if len(mountedAt(t, m)) != 0 {
		t.Error("the unsigned image was mounted")
	}
	if _, err := os.Stat(filepath.Join(cl, "refs/remotes/origin/unsigned")); err == nil {
		t.Error("refused mount left refs/remotes/origin/unsigned")
	}
}
