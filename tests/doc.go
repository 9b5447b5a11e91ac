// Package tests holds the end-to-end tests of ostree-mount: the real
// binary, built once by TestMain, run against the real ostree 2022.7
// command line, umoci, skopeo, buildah, strace and the kernel's FUSE, on
// real repositories in temporary directories.
//
// # What is covered
//
// The repository acceptance tests (repo_test.go), against ostree:
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
//     gets the same checksums (the wall-clock times are logged, not
//     asserted);
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
// Fsck (fsck_test.go): five objects of a commit that ostree made are
// damaged (corrupt and deleted dirtrees, files and a dirmeta); ostree
// fsck stops at the first, ostree-mount fsck names that one and all the
// others, each with its type and path.
//
// Crashes (crash_test.go), with strace as the kill switch: SIGKILL on
// entry to one chosen rename or unlink, found by a first traced run.
//
//   - an import killed at each of its renames (staging, every object into
//     objects/, the refs), and each commit object's rename failed with
//     EIO, leaves a repository both fsck's accept, and the import run
//     again completes;
//   - a prune of a whole image killed at each of its unlinks, or failing
//     one with EIO, leaves no commit that names a deleted object (both
//     fsck's pass), and the prune run again leaves nothing of the image;
//   - the staging directory of a killed import is removed by
//     `ostree-mount fsck` and by the next transaction, while those of
//     live transactions (ostree's and ours) are left alone.
//
// Import (import_test.go): the done images of images_test.go, imported
// in the three modes (layered, precomposed, squashed) and the repository
// modes, check out as umoci's reference rootfs and have the storage
// model's shape (manifest commit, related layer commits, weak refs,
// metadata); the default ref, --platform of a multi-platform index, layer
// sharing between images (a shared layer's blob is never opened again),
// layer reuse that must not depend on what was imported before, prune
// of imported images, and no garbage right after an import.
//
// Export (export_test.go): the realistic image and its skopeo
// conversions to zstd and Docker schema 2, imported layered and
// precomposed (the conversions into fresh repositories, where they get
// the original's layer commits), export with the original's config
// digest and diff_ids (the blobs decompressed by gzip and zstd hash to
// them), the precomposed export is the layered one byte for byte, and
// umoci unpack of it is the original's, mtimes and hardlinks included
// (the zstd export through skopeo copy, as Debian's umoci reads no zstd);
// the export pushed to the registry by skopeo and imported with docker://
// into a fresh repository has the original's related list and weak refs,
// as do gzip, zstd and uncompressed exports of the synthetic image
// imported into fresh repositories; a squashed image exports as one layer
// that unpacks as the original; oci-archive and docker-archive exports
// pass skopeo inspect with the original's diff_ids (and the docker-archive
// copies and unpacks as the original); layers stripped of their tar-split
// record export with synthesized headers, a warning per layer on stderr
// and new diff_ids that umoci checks; prune deletes a record with its
// layer commit and keeps the shared base's, real ostree show reads it and
// ostree fsck accepts the repository.
//
// Registries (registry_test.go): Debian's docker-registry on 127.0.0.1,
// one plain instance and one with htpasswd basic auth, each started once
// per run and stopped by TestMain (stopServers), images pushed in by
// skopeo. Pulls of OCI gzip, zstd, Docker schema 2 and a multi-platform
// index, by tag and by digest, check out as umoci's rootfs; a second
// image sharing the base layer makes no GET of that blob (the registry's
// access log); no or wrong credentials fail cleanly with no ref, --creds,
// --authfile, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json
// and ~/.docker/config.json work, and so do credential helpers (real
// docker-credential-NAME executables on $PATH, named by an auth file's
// credHelpers, by registry or repository, and credsStore), while a
// helper's wrong or missing credentials, or a missing helper, fail
// cleanly with no ref; a fault proxy gives one-line errors
// with no ref for an unknown host, tag or repository, a digest mismatch,
// a server gone mid-blob and an unsupported manifest media type, and
// stalls a blob for kill -9 mid-pull (ostree fsck passes, no ref, a
// re-run completes); ls -R, ls -R -C, cat, checkout --subpath, images
// and inspect of the pulled image agree with umoci unpack, ostree ls of
// a squashed import and skopeo inspect.
//
// Progress (progress_test.go), on a pseudo-terminal the test opens: a
// pull shows each layer's live line (bytes read, blob size, rate) while
// the fault proxy holds its blob half sent, redrawn in place, each
// replaced by the finished layer's line; a local import of a 24 MiB
// layer shows its live line too; on a pipe or with TERM=dumb there is
// one line per finished layer and the ref; --quiet prints nothing.
//
// Hostile images (import_attack_test.go, oci-layers.md §3): hand-made
// layer tars and metadata that try path traversal (.., absolute names,
// symlinks and hardlinks out of the tree, whiteouts through symlinks),
// devices and setuid, xattr injection, a gzip bomb, broken tars, entry
// and path limits, digest and size mismatches. Nothing outside the
// repository changes, a refused import leaves the repository as it was,
// and its error says why (a limit names itself and its value).
//
// Import limits (import_limits_test.go): a sparse bomb is refused
// having written almost nothing, and a sparse file within the limit is
// stored sparsely (also one made by GNU tar --sparse); a tree at the
// depth, path-length and name limits passes real ostree fsck and checkout,
// one step past them is refused; directories named as whiteouts compose
// as umoci unpacks them.
//
// Prune (prune_test.go), through the CLI on images built by hand with
// commit --related and refs --weak: the three storage strategies; the
// related list as a keep-alive, where ostree prune --refs-only deletes
// the commit; prune racing commits; --dry-run changing nothing yet
// announcing what the real prune deletes; --depth and
// --keep-younger-than; live and dead pins.
//
// Mounts (mount_test.go, with fixtures in mount_fixtures_test.go): the
// mount of an image in every import mode and bare, bare-user and archive
// repositories is umoci's rootfs, hardlink groups and xattrs included,
// with no repository-private xattr; a plain ostree commit mounts as
// ostree checks it out; link counts and statfs; testing/fstest over
// subtrees and a whole image; the mount as a container rootfs (chroot,
// exec, mmap; nosuid, nodev, --suid, --allow-other); read semantics
// (pread, mmap, O_DIRECT, sparse files, EROFS) with and without
// --passthrough; concurrent readers; stable inodes across remounts and
// recovery after the daemon is killed; a mounted image surviving prune;
// failed mounts leaving nothing; --verify; the daemon's memory after a
// walk of 100k entries; SIGTERM and SIGINT; the handoff of /dev/fuse and
// the pin to the daemon; the mount service (serve).
//
// FUSE over io_uring (uring_test.go): with the fuse module's
// enable_uring set for the test, the realistic image and a tree of a
// 5 MiB file, a symlink and xattrs, mounted over io_uring and with
// --io-uring=false, pass fstest.TestFS and equal their sources in
// metadata, xattrs and content (whole reads, a pread at an offset, a
// negative lookup); the daemon's log names the transport and the count
// of requests its rings answered.
//
// Density (density_test.go): ten mounts of one image through the mount
// service, each walked with find, compose its directories once: the
// count of directories the service logs after the first walk does not
// grow over the nine others, since the mounts share their caches. A
// mount of an image of many times its inode bound, walked twice reading
// every file, equals the source tree both times, and the inodes it held
// at once (the service logs the peak) stay within three times the bound.
// A path unmounted with umount(8) is mounted again at once, ten times;
// one unmounted with umount -l while a file stays open is mounted again
// while the old mount still serves that file; and a service stopped with
// a detached mount open exits, the file's reads failing with ENOTCONN.
//
// Survival (survive_test.go): the mount service's worker killed with
// SIGKILL and the service upgraded, under readers that must not notice.
// 32 readers read random files of the Go tree (each dropped from the
// page cache after its read, so reads reach the worker) through ten
// kills and an upgrade: no read fails, every byte is the source's, and after each kill
// a file never read before reads within a second of the kill; the pin
// stays live, the supervisor logs each death and each resumption, and
// the last worker revived node IDs from the journal and met no stale one.
// A prune while the worker is dead and not yet replaced (the supervisor
// held with SIGSTOP) deletes nothing of the mounted image whose ref is
// gone; the mount then equals the source and ostree fsck passes, and
// the same prune after the unmount deletes the image. A lazy mount of a
// remote's ref survives a kill and fetches from nginx after it, the
// remote's ref deleted (the new worker finds the remote by the mount's
// rev); it equals ostree checkout. Runc runs a container of a bundle
// mounted by the service whose loop reads /usr/bin and checks each
// file's MD5 (dd iflag=nocache): no read fails across a kill of the
// worker and an upgrade ('serve --upgrade') to a freshly built binary
// renamed over the old one, after which the supervisor (same pid) and
// its worker run the new binary.
//
// Bundles and mount(8) (bundle_test.go): config.json of a bundle of the
// realistic image, and of variants made with umoci config (an
// entrypoint, a user by name, name:group, uid:group and numbers, a
// working directory, Env, labels, ports, a volume), equals umoci's in
// process (args, env, uid, gid, groups, cwd), mounts, capabilities,
// rlimits, namespaces and annotations; Debian's runc runs a command in a
// read-only bundle as the image's user with its environment (id -u,
// $FOO, dpkg -l bash) and its writes fail with EROFS; crun does the same
// where it works (crun 1.8 refuses hybrid cgroups: skipped, with the
// reason logged); a --writable bundle takes writes and deletions into
// its directory while the repository stays unchanged (fsck, checkout)
// and a new bundle shows none of them; bundle --remove cleans up after a
// killed daemon and refuses a directory that is not a bundle; prune
// keeps a bundle's image whole after its ref is deleted; make install,
// mount -t fuse.ostree-mount, an fstab line and umount(8) work through
// mount.fuse3, and a bad ref or option fails by name, leaving nothing
// mounted; an unprivileged mount logs under $XDG_RUNTIME_DIR.
//
// Security (security_test.go), acting as uid 65534: a repository that
// holds an untrusted image offers other users no setuid, setgid or
// capability-carrying object and none they can write, in every mode and
// in repositories that ostree init made; fsck warns of exposed objects
// and the next transaction closes the store; the mount shows the true
// modes and honours setuid only with --suid; the side-channel xattrs
// that mark devices mean something only in commits that import made.
//
// Containment (resilience_test.go): a damaged directory fails only what
// needs it (EIO, its siblings readable); import refuses a FIFO blob and
// stops on SIGTERM while it waits for the lock; serve refuses a file or a
// live socket at its path; an overflowing --cache-size is refused; umount
// leaves a foreign mount alone; the daemons of different mountpoints log
// to different files.
//
// Unprivileged (unprivileged_test.go): the kernel-free unit tests of
// package fs, built with go test -c and run as uid 65534 under setpriv.
//
// Signatures (sign_test.go), with keys made by gpg --batch and openssl:
// commits that real ostree gpg-sign signed verify with the keyring ostree
// remote add --gpg-import wrote, and unsigned, untrusted-key, flipped-byte
// and no-keys commits are refused with their reason; commits, images and
// existing commits that ostree-mount signs with GPG are pulled by real
// ostree with gpg-verify=true (also with a keyring sign.ImportGPGKeys
// wrote); ed25519 sign, verify, delete and remote policy, the signature
// bytes checked against openssl's over the .commit file.
//
// Lazy mounts (lazy_test.go), over nginx: REMOTE:REF of an archive
// repository written by ostree mounts as ostree checks it out, marked
// partial, with ostree fsck passing and prune keeping what was fetched;
// the debootstrap image imported into an archive repository by
// ostree-mount mounts lazily (short form) as umoci unpacks it, a chroot
// runs /bin/sh -c 'ls / && id' fetching a logged fraction of the image
// (nginx's access log), and with nginx stopped it mounts again and reads
// whole; with nginx stopped mid-use an unfetched file fails with EIO
// within the timeout while the rest is served, and reads once nginx is
// back; a tampered object fails with EIO, is not stored, and the log names
// its URL.
//
// Remotes (remote_test.go), over a real nginx: the remote config we write
// is what ostree reads and the other way round (remote add, list -u,
// delete, gpg-verify's default); real ostree pulls and fscks a repository
// ostree-mount wrote and summarized (our summary is ostree's, byte for
// byte but for last-modified; remote refs lists it); ostree-mount pulls
// an ostree-written archive repository into bare-user and bare
// repositories (ls -R -C as ostree's, ostree fsck clean, all refs of the
// summary, nothing fetched twice), an image with its layer commits
// (checkout equals umoci's rootfs), and file:// remotes of archive and
// bare-user repositories; faults: a stopped server (a clear error, no
// ref, and the same pull succeeding once it is back), a tampered object
// and an HTML page with status 200 (named with their URL; nothing
// stored; ostree fsck clean).
//
// Verified pulls (pullsign_test.go), over nginx: a commit that real ostree
// gpg-sign signed is pulled from a remote added with --gpg-import; an
// unsigned commit, one signed by a stranger, one with a flipped signature
// byte and a remote with no keys are refused with one message naming the
// commit, the remote and the reason, leaving no ref and no commit; a
// remote with gpg-verify-summary pulls through ostree's signed summary and
// refuses one without summary.sig. Lazy mounts apply the same policy: the
// signed commit mounts, the four others are refused with nothing mounted
// and no ref; a remote with sign-verify=ed25519 mounts an image whose
// manifest commit ostree-mount signed and refuses an unsigned one.
//
// # Helpers and fixtures
//
//   - main_test.go: TestMain (root, the required tools, user xattrs on
//     the temporary directory, the binary's build) and running commands:
//     run, mustRun, mustFail, om, omRun, omFail, ostreeCmd, ostreeRun,
//     and tree dumps (dumpTree, checkTreesEqual, goTree);
//   - trees_test.go: the rich tree, the expected checkout of a mode, and
//     repository probes (object names, refs, staging directories);
//   - images_test.go: the done images built once per run from the scripts
//     in tests/images (umoci, skopeo, buildah), hand-made OCI layouts and
//     docker-archives from layer tars (handImage, dockerArchive,
//     tarEntry), and probes of objects, refs, related lists and prune's
//     report;
//   - nginx_test.go: startNginx serves a directory with Debian's nginx on
//     a free 127.0.0.1 port (optional limit_rate), Stop and Start it
//     again on the same port, and its access log (requests, status and
//     body bytes) for tests that count what was fetched;
//   - mount_fixtures_test.go: the mount images (synthetic with hardlinks,
//     debootstrap, special files), mountAt, which always unmounts and
//     waits for the daemon in a cleanup, and mountinfo probes.
//
// Package treecmp (tests/treecmp) turns directory trees into sorted text
// lines and diffs them; every test that compares trees uses it.
//
// Tests wait by polling with a deadline, never by sleeping.
//
// # Running
//
// The tests need root (chown, bare repositories, device nodes, mounts),
// /dev/fuse, the Makefile's APT_PACKAGES (ostree, fuse3, attr, umoci,
// skopeo, buildah, strace, docker-registry, apache2-utils...), and user xattrs on the temporary
// directory's filesystem. Install the dependencies and run them with
//
//	make deps
//	make e2e    # go test -count=1 -p 1 ./tests/...
//
// E2E_TRACE=1 logs every command the tests run with its duration.
//
// A missing tool fails the run (with a pointer to make deps) rather than
// skipping tests.
package tests
