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
// Serve is a long-lived service ('ostree-mount serve') that serves any
// number of mounts from one worker process, so that a mount costs no
// process start. A
// background mount as root asks it first (Request); when no service
// listens, it starts a daemon as above. The wire protocol on the unix
// socket is one JSON Options value from the client and one JSON Reply
// ({"error": "..."} or {}) from the service, after which the connection
// closes. Only root may connect (SO_PEERCRED). A stale socket, one that
// nobody accepts on, is replaced at start; a live one or anything that is
// not a socket is an error.
//
// # Mounts that outlive their worker
//
// The service is two processes, so that its mounts survive the process
// that serves them. The supervisor (Serve) is small and does no FUSE
// work: it holds the listening socket, every mount's /dev/fuse
// descriptor and its pin descriptor (the pin's OFD lock belongs to the
// open file description, so whoever holds a descriptor of it holds the
// pin), and runs the worker (RunWorker: this executable, told by its
// environment) as its child with all of those inherited, named in a
// manifest (RunDir/manifest.json). The run directory,
// /run/ostree-mount/service-HASH (HASH of the socket's path, mode 0700),
// has a directory per mount, mounts/ID, with the mount's record
// (mount.json: its Options, its device number and its pin file) and fs's
// state (mounts/ID/fs, fs.Options.State: the kernel's INIT settings and
// the journal of node IDs, written before each reply).
//
// The worker serves the mounts as a single-process service would. It
// makes each new mount itself (fs.OpenDevice, fs.MountDevice, then
// fs.Mount on the descriptor), writes its record, and hands the
// /dev/fuse and pin descriptors to the supervisor (an "add" message with
// SCM_RIGHTS on a SOCK_SEQPACKET socketpair) before it answers the
// client; when a mount ends it says "drop", and removes the record and
// the pin file. Each message is answered, one at a time (fdStore). A
// worker that dies while it makes a mount, after mount(2) and before the
// supervisor holds the descriptor, leaves that one mount dead (ENOTCONN,
// which 'ostree-mount umount' cleans up); its client gets no answer.
//
// When the worker dies (the supervisor reaps it), even by SIGKILL, the
// kernel keeps each mount's connection open, because the supervisor
// holds a descriptor of it: requests queue. The supervisor starts a new
// worker at once, which serves every mount again (fs.Options{Device,
// DeviceNumber, State, Resume: true}): fs does not wait for INIT, revives
// the node IDs the kernel knows from the journal, and sends
// FUSE_NOTIFY_RESEND so that the requests the dead worker had read and
// not answered come again (Linux 6.9 and later; an older kernel fails
// those with EIO, and the mount survives). A mount the new worker cannot
// serve (its repository gone, say) is detached and dropped, so that
// nothing waits on it for ever. Then the worker says "ready" and accepts
// on the socket, whose backlog kept the connections made meanwhile. The
// pins are the supervisor's all along, so prune gets no window. A worker
// that dies within a second of its start counts as a quick death: three
// in a row restart at once, then each restart waits twice as long, from
// 100 ms up to 10 s (restartPolicy). Every death and start is logged.
//
// An upgrade (SIGHUP, or 'serve --upgrade' on the supervisor's control
// socket, RunDir/supervisor.sock) first runs the executable at the
// supervisor's path as a probe, which must answer with the same
// protocol; then sends the worker SIGUSR1, on which it stops accepting,
// answers the mount requests it has and exits without unmounting
// anything; then re-executes the supervisor (execve of that executable,
// its descriptors kept open and named in the manifest), which starts a
// new worker as after a crash. The kernel queues the mounts' requests
// meanwhile, so none fails. (A SIGTERM that lands within the execve,
// before the new image handles signals, kills the supervisor.) A probe
// that fails leaves everything as it was; an execve that fails restarts
// the worker from the old executable. Workers are started from
// /proc/self/exe, so
// a crash restart runs the supervisor's own version, never one renamed
// over it but not yet upgraded to.
//
// SIGTERM or SIGINT to the supervisor stops the worker with SIGTERM,
// which unmounts everything; the supervisor detaches what is left and
// removes the socket and the run directory. The worker is started with
// SIGTERM as its parent-death signal, so that a supervisor killed
// outright takes its mounts with it, unmounted, rather than leaving a
// worker no one restarts; the worker then finds the supervisor gone (it
// answers no "ping") and removes the socket and the run directory.
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
// fails) and the daemon exits; the service unmounts all of its mounts. A
// mount's own daemon (not under the service) holds its descriptors
// alone: if it dies, its mount dies with it (ENOTCONN).
// Unmount detaches a mount of this filesystem type, also one whose daemon
// died, and refuses any other.
package mount
