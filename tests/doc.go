// Package tests holds the end-to-end tests of ostree-mount: the real
// binary, built once by TestMain, run against the real ostree 2022.7
// command line on real repositories in temporary directories.
//
// # What is covered
//
// The repository acceptance tests (repo_test.go):
//
//   - test vectors: every commit of the format document's recipe, made by
//     ostree-mount and by ostree in bare-user and archive repositories,
//     has the document's checksum; show and log agree with ostree;
//   - our writes pass ostree: a tree with every kind of entry (sizes,
//     exec, setuid, sticky, symlinks, ownership, xattrs), committed by
//     ostree-mount in every mode, passes `ostree fsck`, has ostree's
//     checksum, and `ostree checkout` gives back the source tree;
//   - we read ostree's repositories: ls (byte for byte), cat and checkout
//     (full, -U, --subpath) of commits written by ostree agree with
//     ostree's own, cat of a symlink included;
//   - a real tree: a copy of the Go distribution committed by both tools
//     gets the same checksums (and the wall-clock times are logged);
//   - bad input: flipped bytes in each object kind are found by fsck and
//     refused by cat, ls and checkout; invalid ref names and non-UTF-8
//     names and symlink targets are rejected without leaving anything;
//   - crash safety: ostree-mount commit killed with SIGKILL at several
//     points leaves a repository both fsck's accept, and the next commit
//     cleans up after it;
//   - concurrent commits into one repository all succeed and are whole;
//   - locking: the repository lock is libostree's OFD lock on .lock, so
//     the Go API and ostree exclude each other.
//
// The helpers are in main_test.go (running commands: om, ostreeCmd, run)
// and trees_test.go (the trees and repository probes).
//
// Package treecmp (tests/treecmp) turns directory trees into sorted text
// lines and diffs them; every test that compares trees uses it.
//
// # Running
//
// The tests need root (chown, bare repositories, device nodes), the
// ostree and attr packages, and user xattrs on the temporary directory's
// filesystem. Install the dependencies and run them with
//
//	make deps
//	make e2e    # go test -count=1 -p 1 ./tests/...
//
// E2E_TRACE=1 logs every command the tests run with its duration.
//
// A missing tool fails the run (with a pointer to make deps) rather than
// skipping tests.
package tests
