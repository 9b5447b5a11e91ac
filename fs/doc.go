// Package fs serves a composed tree (package compose) as a read-only FUSE
// filesystem with go-fuse. It is the only package that imports go-fuse.
//
// # Laziness
//
// Mounting reads the commit and the layer commits' headers, nothing more.
// A directory is composed when it is first looked up or listed; a file's
// object is opened when the file is first read.
//
// # The protocol side
//
// go-fuse's server reads the kernel's requests; the operations are ours
// (raw.go), not go-fuse's node bridge: a node table (table.go) maps node
// IDs, which are the inode numbers, to nodes, and counts the kernel's
// lookups of each, so that FORGET frees a node and the table stays
// bounded by what the kernel caches. Past Options.MaxInodes, the oldest
// nodes are offered back to the kernel (FUSE_NOTIFY_PRUNE). The limiter
// keeps only the nodes the kernel holds, in a list threaded through
// them, and a file's node keeps no path of its own (its parent's and its
// name make it).
//
// # Inode numbers
//
// Numbers are derived from content and paths, so they are the same at
// every mount of the same commit: the root is 1; a directory, and a file
// that is not a hardlink, gets a hash of its parent's number and its name;
// the members of a hardlink group (as the layer tars made them, or, for a
// plain commit, identical file objects as in an ostree checkout) share a
// hash of the group's key.
//
// # Kernel caching
//
// Content never changes under a mount, so entries and attributes are
// cached by the kernel for a day, files keep their page cache
// (FOPEN_KEEP_CACHE) and directories their listing (FOPEN_CACHE_DIR).
// FLUSH is refused with ENOSYS once, so close(2) costs no message.
//
// # Surviving the server
//
// A mount can outlive the process that serves it, when something else
// holds its /dev/fuse descriptor (package mount's supervisor). With
// Options.State, the server keeps in a directory of the mount's the
// kernel's INIT and a journal of every node ID it gives the kernel, with
// its parent and name, written before the reply that gives it
// (journal.go). A successor started with Options.Resume on the same
// descriptor gives go-fuse the saved INIT instead of waiting for one,
// revives each ID the kernel sends from the journal by looking its name
// up in its revived parent (node IDs are inode numbers, which derive
// from the tree, so the IDs match), and asks the kernel to resend the
// requests its predecessor had read and not answered
// (FUSE_NOTIFY_RESEND, Linux 6.9 and later; resume.go). Open files need
// nothing: zero-message opens have no handles, a passed-through file is
// the kernel's own (it reads on while no server runs; new opens of its
// inode get the predecessor's backing ID, backing.go), and a handle of
// the predecessor's is opened again under the kernel's number when a
// read names it.
//
// Content comes through the Objects interface (objects.go), never from a
// repository directly: *repo.Repo, or a store in front of one. fs does not
// know storage modes; it asks only whether contents are files
// (Objects.ContentFiles).
//
// Opening files: when contents are files (bare modes) the daemon answers the first OPEN with
// ENOSYS, and the kernel then opens every file with no message at all
// (zero-message opens, FUSE_NO_OPEN_SUPPORT), keeping its page cache;
// reads of pages not cached yet come without a file handle, and the
// daemon preads the object file through a bounded set of open objects.
// With Options.Passthrough (--passthrough, root only), every open is a
// round trip instead, and the file is handed to the kernel (FUSE
// passthrough): reads never reach the daemon and the page cache is the
// object's, shared by every mount of an image that contains it. Stores
// whose contents are not files (archive repositories, which inflate in
// repo) always open through the daemon, which reads with ReadAt.
//
// Transport: as root, a mount without State is served over io_uring
// when the kernel offers it (FUSE_OVER_IO_URING at INIT: Linux 6.14 and
// later, with the fuse module's enable_uring set), one ring per CPU, each
// served by a thread pinned to its CPU (uring.go). A request is then
// answered on the CPU of the process that made it, with no cross-CPU
// wakeups: on this project's 2-vCPU VM a cold find took about 0.6 of the
// time it takes over /dev/fuse. go-fuse still answers INIT, FORGET,
// INTERRUPT and notifications on /dev/fuse, and every request until each
// CPU's ring is registered. Mounts with State (the mount service's)
// stay on /dev/fuse: a successor's takeover of live rings is not built.
// Such a mount is made by this package (MountDevice), since the rings
// need the connection's descriptor, which a mount go-fuse makes keeps.
//
// Directories open with no message either (OPENDIR is refused, raw.go),
// and the kernel keeps their listings. The mount's
// readahead is raised from the kernel's 128 KiB to 4 MiB, and large
// reads advise the object file sequential (its own readahead doubles)
// and are spliced from it to the kernel (no copy in the daemon; requests
// are 1 MiB less two pages, so that a reply fits a pipe).
// Listing a directory composes its subdirectories ahead, in the background
// (compose.Tree.Prefetch), since walks descend next. Once a file of a
// listed directory is read, the rest of its small files' objects are
// opened ahead of the reads that usually follow, with the kernel's
// readahead of each started (warm.go): a serial reader on a cold disk then
// finds descriptors and data ready, and a walk that reads nothing (find)
// warms nothing. Only objects held locally are warmed, so a lazy remote
// store fetches nothing for it. Requests are up to 1 MiB
// (Options.MaxRequest lowers it: go-fuse keeps a buffer of that size for
// each of its readers, idle or not, so a process serving many mounts asks
// less, and bounds its readers with Options.Readers). Xattrs
// are answered from memory; for images recorded as having none, the
// kernel is told not to ask.
//
// # Errors
//
// Every error is mapped to an errno in one place (errno.go): missing
// names are ENOENT, corrupt or unreadable objects are EIO and are logged
// once with the object's checksum, objects unavailable for now
// (repo.ErrUnavailable) are EIO for that request only, and interrupted
// requests are EINTR.
//
// # Parallelism
//
// go-fuse serves requests concurrently; the composer and its cache are
// safe for concurrent use, and file handles use pread (or a content's
// ReadAt, which repo makes safe for concurrent use).
package fs
