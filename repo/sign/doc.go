// Package sign signs and verifies OSTree commits and summaries in
// libostree's formats, so that the signatures ostree makes verify here and
// the ones made here verify in ostree. It is the only package that imports
// the OpenPGP library (github.com/ProtonMail/go-crypto, the maintained
// successor of the frozen golang.org/x/crypto/openpgp).
//
// # Formats
//
// Signatures live in a commit's detached metadata (the commitmeta a{sv}):
//
//   - ostree.gpgsigs (aay): binary OpenPGP detached signatures over the
//     bytes of the .commit object, one per element;
//   - ostree.sign.ed25519 (aay): 64-byte ed25519 signatures over the same
//     bytes (libostree's ostree-sign-ed25519.c).
//
// A summary's signatures are the file summary.sig beside it: an a{sv} with
// the same two keys, over the bytes of summary.
//
// # Keys
//
// GPG keys of a remote NAME are read as libostree 2022.7 reads them
// (ostree-repo.c _ostree_repo_gpg_prepare_verifier, ostree-gpg-verifier.c):
//
//   - the keyring REPO/NAME.trustedkeys.gpg, where `ostree remote add
//     --gpg-import` stores the keys, or else
//     /etc/ostree/remotes.d/NAME.trustedkeys.gpg;
//   - only when neither exists, the global keyrings: every *.gpg file
//     (except trustdb.gpg and secring.gpg) in $OSTREE_GPG_HOME, or else
//     /usr/share/ostree/trusted.gpg.d. libostree does not read an
//     /etc/ostree/trusted.gpg.d; neither does this package;
//   - in addition, the remote's gpgkeypath= option: files or directories
//     (every regular file in it), separated by ';' or ',', of ASCII-armoured
//     or binary keys.
//
// ImportGPGKeys adds keys (armoured or binary) to NAME.trustedkeys.gpg, as
// `ostree remote add --gpg-import=FILE` does; the file is a binary keyring
// that ostree reads too.
//
// ed25519 keys are libostree's --keys-file format: one base64 key per
// line, a 64-byte secret key (the 32-byte seed, then the public key) or a
// 32-byte public key. A remote's keys are its verification-ed25519-key
// (one base64 public key) and verification-ed25519-file options; with
// neither and sign-verify=true, the system files /etc/ostree/trusted.ed25519
// and /usr/share/ostree/trusted.ed25519 (and the files of their .d
// directories), less the keys of the matching revoked.ed25519 files.
//
// # Policy
//
// Verifier reads a remote's options from the repository config (group
// `remote "NAME"`) and then from /etc/ostree/remotes.d/*.conf, as ostree
// does: gpg-verify (default true), gpg-verify-summary (default false),
// sign-verify and sign-verify-summary (unset, "true", or a list of types:
// only ed25519 is known). A commit passes when every enabled kind has at
// least one signature that verifies with a trusted key. A refusal is a
// *VerifyError naming the commit (or summary), the remote and the reason,
// whose Unwrap is one of ErrNoSignatures, ErrUnknownKey, ErrBadSignature or
// ErrNoKeys (test them with errors.Is).
//
// # Signing
//
// SignEd25519 signs in pure Go (crypto/ed25519). GPG signatures are made
// by running `gpg --homedir DIR --batch --detach-sign --local-user KEYID`,
// as libostree signs through gpgme, which drives the same binary: secret
// keys stay in the user's keyring, agent or smartcard, and gpg-agent asks
// for passphrases as it always does; this package never reads a secret
// OpenPGP key.
package sign
