// Package repo reads and writes OSTree repositories in pure Go, byte for
// byte as libostree 2022.7 does, and adds the primitives layered images
// need: commits whose related list names other commits, weak refs, and a
// prune that understands both.
//
// # Objects
//
// Everything is named by a SHA-256 Checksum. There are four object kinds:
//
//   - commit (a{sv}aya(say)sstayay): metadata, parent, related list,
//     subject, body, big-endian timestamp, root dirtree and dirmeta;
//   - dirtree (a(say)a(sayay)): sorted file entries (name, content
//     checksum) and subdirectory entries (name, dirtree, dirmeta);
//   - dirmeta (uuua(ayay)): uid, gid and mode (big-endian) and xattrs;
//   - file: a regular file or symlink with uid, gid, mode and xattrs.
//
// Metadata objects are GVariant in normal form (package gvariant) and are
// named by the SHA-256 of their bytes. A file is named by the SHA-256 of a
// BE32 length, four zero bytes, the header (uuuusa(ayay)) and the content.
// Detached metadata (commitmeta) is an a{sv} named after its commit.
//
// # On disk
//
// An object lives at objects/XX/YYYY….EXT, where XXYYYY… is its checksum.
// Content objects depend on the repository Mode:
//
//   - bare: a real file or symlink with real ownership, mode and xattrs;
//   - bare-user: a regular file owned by the writer, the true metadata in
//     the user.ostreemeta xattr; a symlink is a file holding its target;
//   - bare-user-only: real files and symlinks, ownership 0:0, no xattrs;
//     commits are forced to canonical permissions;
//   - archive (archive-z2): .filez, a (tuuuusa(ayay)) header followed by
//     raw deflate of the content.
//
// # Exposure
//
// A repository that holds untrusted images must not hand other local
// users privilege through its objects: no setuid, setgid or sticky
// object, none writable by group or others, none carrying security.*
// xattrs (security.capability is privilege), reachable by anyone but the
// owner. The mount's nosuid and nodev do not help, since objects can be
// run directly. What libostree (2022.7) does, and what this package does:
//
//   - bare: objects are real files with their real owner, mode and xattrs,
//     and must be: `ostree fsck` recomputes a file's checksum from its
//     stat and xattrs. libostree creates objects/ and tmp/ 0755, so a
//     setuid-root object is world-executable. Here the rule is kept by
//     reachability: Init creates objects/ and tmp/ (where objects are
//     staged) 0700, and every write transaction (Begin) makes them 0700
//     again if they are wider, as `ostree init --mode=bare` leaves them.
//     libostree keeps working in such a repository (it creates the
//     objects/XX directories below and never changes objects/ itself);
//     only root reads a bare repository's objects.
//   - bare-user: objects are regular files owned by the writer, with the
//     true metadata in the user.ostreemeta xattr; the on-disk mode is not
//     part of the checksum. libostree writes (mode & 0775) | 0400; this
//     package writes (mode & 0755) | 0400, dropping group write too.
//     Neither ever sets a security.* xattr on the object.
//   - bare-user-only: the on-disk mode is the metadata, owner 0:0 and no
//     xattrs. libostree refuses modes outside 0775 unless the commit uses
//     canonical permissions; this package forces canonical metadata
//     (mode & 0755, 0:0, no xattrs) on every content object, commits and
//     imports alike.
//   - archive: .filez objects are 0644, the metadata inside the object.
//
// The true mode, setuid and setgid included, is what ReadFileMeta returns
// and what the mount shows; only a mount with --suid honours it. Repo
// CheckExposure (run by `ostree-mount fsck`) names what breaks the rule in
// repositories made by earlier versions or other tools. A hardlink
// checkout by `ostree checkout` shares the objects' inodes with the
// checkout, which then exposes the files as the image means them; this
// package's Checkout copies.
//
// Refs are files of 64 hex characters: refs/heads/NAME,
// refs/remotes/REMOTE/NAME, refs/mirrors/COLLECTION/NAME, and this
// project's refs/weak/NAME.
//
// # Writing
//
// A Transaction holds the repository's shared OFD lock (<repo>/.lock, the
// lock libostree takes) and stages objects in tmp/staging-BOOTID-XXXXXX,
// each written as an anonymous file and linked under its name only when
// complete. Commit syncs the filesystem, renames the objects into objects/
// (commit objects last), syncs the directories, and then writes refs. A
// crash at any point leaves objects/ holding only complete objects.
// A large file (8 MiB or more) is hashed in the writer's goroutine while
// another writes it; with core.fsync its pages are handed to the disk as
// they are written, so that Commit's sync mostly finds them there; so
// are small files, by a background syncfs every 64 MiB of them. Commit
// renames the objects other than commits in parallel.
//
// # Pruning
//
// Prune holds the exclusive lock from its first read of a ref to its last
// unlink. Strong refs and live pins are its roots: each root commit stays
// with its tree, its parents as PruneOptions say, and, transitively, every
// commit a live commit's related list names. Weak refs keep nothing alive
// and go with their commits. PlanPrune decides from the object graph
// alone; the deletes then run in stages (PrunePlan.Stages): commits first,
// each before any dead commit it names, then their commitmeta, the
// dirtrees and the rest, so that a prune stopped anywhere leaves no commit
// naming a deleted object.
//
// # Concurrency
//
// The parallel work (Fsck's verification, Prune's stat and unlink of each
// stage, the files of CommitDir and of Checkout) runs in errgroup groups
// with a limit: the first error cancels the group's context, the work not
// yet started is skipped, and that error is returned. Directory walks stay
// on the calling goroutine, in order; only the files go to the group.
//
// # Reading
//
// Every metadata object is verified against its checksum when read; a
// mismatch wraps ErrChecksumMismatch. File content is verified by
// CopyFile and VerifyFile. All errors wrap the sentinels in errors.go.
package repo
