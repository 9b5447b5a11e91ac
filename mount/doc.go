// Package mount owns the life of a mount: from the checks before it
// exists, through the process that serves it, to its unmount.
//
// # Options
//
// A mount is described by one Options value: the repository, the commit
// (or the rev to resolve), the mountpoint, the size of the metadata
// cache, where a background mount logs, and the fs.Options of the
// filesystem. The same value is what the mount service receives on its
// socket, so nothing is copied field by field between the command line,
// the daemon and the service.
//
// # Foreground and background
//
// Mount with Foreground set serves the mount in the calling process until
// it is unmounted. Without it, Mount returns once the mount exists, as
// mount(8) does, and leaves a daemon (this executable, in a new session,
// its output in the mount's log) that serves it. Such a daemon runs
// RunDaemon instead of the command line: IsDaemon tells it from its
// environment, which carries its Options as JSON (the commit resolved,
// so that a ref that moves meanwhile does not change what is mounted).
//
// As an unprivileged user the daemon mounts itself: the command waits on
// the ready pipe, on which the daemon writes "ready" or "error: MESSAGE"
// and closes it. A daemon that exits without a word is reported as such,
// with the path of its log; the command never hangs on it.
//
// As root the command hands off: it pins the commit, opens /dev/fuse and
// starts the daemon with both descriptors and a control pipe (the
// handoff, named in the daemon's environment). While the daemon starts,
// the command checks the image, mounts the /dev/fuse descriptor with
// mount(2), writes "mounted DEVNUM" on the control pipe and returns. The
// kernel holds the first requests until the daemon answers, as with a
// libfuse filesystem. A daemon that fails after the mount exists detaches
// it (if it is still the one it was handed) rather than leave a mount
// that nothing serves; a command that fails closes the pipe unwritten,
// and the daemon gives up quietly.
//
// # The pin
//
// A mounted commit is pinned against prune (repo.Pin) for as long as it
// is served. In a handoff the command's pin is inherited by the daemon
// (repo.AdoptPin), so there is no moment at which the commit is unpinned.
//
// # The mount service
//
// Serve is a long-lived process ('ostree-mount serve') that serves any
// number of mounts itself, so that a mount costs no process start. A
// background mount as root asks it first (Request); when no service
// listens, it starts a daemon as above. The wire protocol on the unix
// socket is one JSON Options value from the client and one JSON Reply
// ({"error": "..."} or {}) from the service, after which the connection
// closes. Only root may connect (SO_PEERCRED). A stale socket, one that
// nobody accepts on, is replaced at start; a live one or anything that is
// not a socket is an error.
//
// # Memory
//
// A daemon's heap is its metadata cache plus the inodes the kernel
// holds: its memory limit is the cache size and 48 MiB, and its
// collector is off until the mount is served.
//
// The service's mounts share one set of metadata caches (compose.Caches,
// whose keys are content-derived) with one budget, so that N mounts of
// an image hold its composed directories once: a walk of a second mount
// composes nothing (the service logs the count of directories composed
// with each mount and unmount). What each mount still holds alone is its
// inode tree, bounded to 1024 inodes unless the request sets
// fs.Options.MaxInodes (the service logs each mount's peak at unmount),
// two request buffers of 128 KiB (fs.Options.Readers and MaxRequest; a
// daemon reads up to three requests of 1 MiB at once), its
// verified-object memo and its open object files: about 1.3 MB a mount
// after a walk of the Go distribution. Its collector runs at GOGC 50
// under a limit of a base, the shared caches and a little for each
// mount.
//
// # Bundles
//
// MakeBundle makes an OCI runtime bundle: DIR/config.json from the image
// config (package image/bundle), then the image's background mount at
// DIR/rootfs, or, writable, at DIR/lower under a kernel overlayfs at
// DIR/rootfs whose upper and work directories are in DIR (nodev, and
// nosuid unless the mount honours setuid). A marker file
// (BundleMarker), written first, says the directory is a bundle: a
// failed MakeBundle and RemoveBundle remove only such a directory,
// unmounting the overlay, then the image (Unmount, which also detaches a
// mount whose daemon died), and refusing while anything else or anything
// busy is mounted there. The image's pin is the mount's, so the bundle's
// commit outlives its ref for as long as the bundle is mounted.
//
// # Signals and unmount
//
// SIGTERM or SIGINT unmounts a daemon's mount (lazily, if the unmount
// fails) and the daemon exits; the service unmounts all of its mounts.
// Unmount detaches a mount of this filesystem type, also one whose daemon
// died, and refuses any other.
package mount
