package fs

import (
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/compose"
)

// Options configure a mount.
type Options struct {
	// AllowOther lets other users see the mount (off by default).
	AllowOther bool
	// Suid honours setuid/setgid bits; by default the mount is nosuid.
	// Device nodes are never usable (nodev).
	Suid bool
	// Verify checks every file object's checksum before serving its
	// first byte; a mismatch gives EIO and is logged.
	Verify bool
	// Passthrough hands each opened file to the kernel (FUSE passthrough)
	// when the repository stores plain files and the process may (root):
	// reads bypass the daemon and share the page cache with every other
	// mount of the same objects, but each open(2) is a round trip to the
	// daemon. By default files open with no message at all (the daemon
	// answers OPEN with ENOSYS once) and reads of cold pages come to the
	// daemon, which preads the object file. A store whose contents are not
	// files (Objects.ContentFiles false: archive repositories, which
	// inflate) always opens through the daemon.
	Passthrough bool
	// NoURing keeps every request on /dev/fuse. Otherwise a root mount
	// without State is served over io_uring, one ring per CPU
	// (uring.go), when the kernel offers it (Linux 6.14 and later, with
	// the fuse module's enable_uring set).
	NoURing bool `json:",omitempty"`
	// SpareP runs the process with two Ps more than go-fuse's readers (see
	// newServer), for a process that serves this one mount; it sets
	// GOMAXPROCS. A process serving many mounts leaves it off.
	SpareP bool
	// MaxRequest is the largest request the mount negotiates (max_read,
	// max_write, max_pages): a READ brings at most this much. 0 means
	// 1 MiB. Each of go-fuse's readers of /dev/fuse holds a buffer of
	// this size, idle or not (up to three a mount on two CPUs), so a
	// process serving many mounts sets less.
	MaxRequest int
	// Readers bounds the requests the mount reads from the kernel at
	// once, waiting or being served (go-fuse's readers, each with a
	// request buffer of MaxRequest bytes, idle or not). 0 leaves
	// go-fuse's own bound: one more than GOMAXPROCS, at least three.
	Readers int
	// MaxInodes bounds the inodes the daemon keeps; past it the oldest are
	// offered back to the kernel. 0 means DefaultMaxInodes; -1, no bound.
	MaxInodes int
	// NoWarm turns off the warming of listed directories' small files
	// (warm.go) for handle-less reads.
	NoWarm bool
	// Device, when positive, is a /dev/fuse descriptor that MountDevice
	// mounted at the mountpoint, usually in the parent process: Mount
	// then serves it instead of mounting. DeviceNumber is the mount's
	// st_dev, which MountDevice returned.
	Device       int
	DeviceNumber uint64
	// State, when set, is a directory of this mount's own (it must
	// exist) where the server keeps what a successor needs to take the
	// mount over: the kernel's INIT settings and the journal of the node
	// IDs it gave the kernel (journal.go). The process that owns the
	// mount sets it; it is not a request's to choose.
	State string `json:",omitempty"`
	// Resume takes over the live mount on Device (mounted, its INIT
	// answered), whose previous server, another process that kept State,
	// died or exited. The kernel is not asked for INIT again: the saved
	// settings are; node IDs the kernel still holds are revived from the
	// journal when it sends them; and the kernel is told to send again
	// the requests the previous server had read but not answered
	// (FUSE_NOTIFY_RESEND, Linux 6.9 and later). Mount then takes Device
	// over and closes it when done.
	Resume bool `json:",omitempty"`
	// Name is the source shown in /proc/mounts.
	Name   string
	Logger *slog.Logger
	Debug  bool
}

// openObjects bounds the object files kept open for handle-less reads.
const openObjects = 1024

// DefaultMaxInodes keeps the daemon's inode tree, the largest part of its
// memory, to a few tens of megabytes.
const DefaultMaxInodes = 40000

// Server is a running mount.
type Server struct {
	*fuse.Server
	Mountpoint string
	// Dev is the mount's device number (st_dev of its root), which tells
	// this mount from a later one at the same path.
	Dev        uint64
	handedOver bool          // mounted by MountDevice: go-fuse does not know where
	limiter    *inodeLimiter // nil: no bound
	nodes      *nodeTable
}

// Revived is how many node IDs of a predecessor's this server has
// revived from its journal (Options.Resume), and Stale how many IDs the
// kernel sent that neither knew (answered ESTALE).
func (s *Server) Revived() int64 { return s.nodes.revived.Load() }

// Stale: see Revived.
func (s *Server) Stale() int64 { return s.nodes.stale.Load() }

// InodeStats are the counts of a mount's inodes: those the daemon holds
// for the kernel now, the most it has held at once, and its bound
// (Options.MaxInodes; 0: none).
type InodeStats struct {
	Live, Peak, Bound int
}

// Inodes reports the mount's inode counts. Past the bound, the daemon
// asks the kernel to forget the oldest inodes, and it may run ahead of
// the kernel's forgetting for a while: the peak tells by how much.
func (s *Server) Inodes() InodeStats {
	if s.limiter == nil {
		return InodeStats{}
	}
	live, peak := s.limiter.counts()
	return InodeStats{Live: live, Peak: peak, Bound: s.limiter.max}
}

// Unmount unmounts the filesystem; Wait then returns.
func (s *Server) Unmount() error {
	if s.handedOver {
		return unix.Unmount(s.Mountpoint, 0)
	}
	return s.Server.Unmount()
}

// OpenDevice opens /dev/fuse for MountDevice.
func OpenDevice() (*os.File, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/fuse"), nil
}

// MountDevice makes the kernel side of a mount, as root, with mount(2)
// on dev, a /dev/fuse descriptor from OpenDevice. Nothing answers the
// mount until Mount serves dev (Options.Device), usually in a daemon
// that inherited it: until then the kernel holds every request to the
// mount, starting with its INIT. This lets a command return as soon as
// the mount exists, while its daemon starts.
//
// It returns the mount's device number (its st_dev), found without
// touching the mount.
func MountDevice(dev *os.File, mountpoint string, o Options) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return 0, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	data := []string{
		fmt.Sprintf("fd=%d", dev.Fd()),
		fmt.Sprintf("rootmode=%o", st.Mode&unix.S_IFMT),
		fmt.Sprintf("user_id=%d", os.Geteuid()),
		fmt.Sprintf("group_id=%d", os.Getegid()),
		fmt.Sprintf("max_read=%d", o.maxRequest()),
		"default_permissions",
	}
	if o.AllowOther {
		data = append(data, "allow_other")
	}
	if err := unix.Mount(o.source(), mountpoint, "fuse.ostree-mount", directMountFlags(o), strings.Join(data, ",")); err != nil {
		return 0, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	mi, ok, err := MountedAt(mountpoint)
	if err == nil && (!ok || mi.FSType != "fuse.ostree-mount") {
		err = fmt.Errorf("the new mount is not in /proc/self/mountinfo")
	}
	if err != nil {
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		return 0, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return mi.Dev, nil
}

// maxWrite is the largest request the kernel sends (and max_read),
// unless Options.MaxRequest says less: 1 MiB but two pages, so that a
// reply, its header and the page go-fuse adds fit a pipe of the default
// pipe-max-size (1 MiB), for splicing.
const maxWrite = 1<<20 - 8<<10

// requestSlack is more than what go-fuse accounts for a request beyond
// its payload (the largest request header, a page of alignment, its
// request struct) and less than any payload it negotiates: Readers
// requests fit in Readers times (MaxRequest + requestSlack), and one
// more does not.
const requestSlack = 16 << 10

func (o Options) maxRequest() int {
	if o.MaxRequest > 0 && o.MaxRequest < maxWrite {
		return o.MaxRequest
	}
	return maxWrite
}

func (o Options) source() string {
	if o.Name == "" {
		return "ostree-mount"
	}
	return o.Name
}

// MountOptionsFor returns the kernel mount options: always ro and nodev,
// nosuid unless asked, and default_permissions so that the kernel checks
// modes.
func MountOptionsFor(o Options) []string {
	opts := []string{"ro", "nodev", "default_permissions"}
	if o.Suid {
		opts = append(opts, "suid")
	} else {
		opts = append(opts, "nosuid")
	}
	return opts
}

// directMountFlags are the mount(2) flags of a direct (root) mount;
// go-fuse would otherwise use MS_NOSUID|MS_NODEV whatever the options.
func directMountFlags(o Options) uintptr {
	f := uintptr(syscall.MS_RDONLY | syscall.MS_NODEV)
	if !o.Suid {
		f |= syscall.MS_NOSUID
	}
	return f
}

// Mount serves tree at mountpoint, reading file content from objs, and
// returns once the kernel has the mount.
func Mount(mountpoint string, objs Objects, tree *compose.Tree, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	f := newFilesystem(objs, tree, o)
	if o.Resume && (o.Device <= 0 || o.State == "") {
		return nil, fmt.Errorf("mount %s: resuming needs the mount's descriptor and its state", mountpoint)
	}
	if err := f.openState(o); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	mo := &fuse.MountOptions{
		AllowOther:           o.AllowOther,
		Options:              MountOptionsFor(o),
		FsName:               o.source(),
		Name:                 "ostree-mount",
		DirectMount:          os.Geteuid() == 0 && o.Device <= 0,
		DirectMountFlags:     directMountFlags(o),
		EnableSymlinkCaching: true,
		MaxReadAhead:         1 << 20,
		MaxWrite:             o.maxRequest(),
		// 0: no bound.
		MaxInflightRequestBytes: o.Readers * (o.maxRequest() + requestSlack),
		DisableXAttrs:           !treeHasXattrs(tree),
		Debug:                   o.Debug,
		// Large reads of zero-message opens splice from the object
		// file (fileResult); every other reply is bytes that go-fuse
		// writes with writev (sliceResult), never trying a pipe.
		DisableSplice: !f.splice,
		// go-fuse's own log (mount options) goes to the daemon's log.
		Logger: log.New(os.Stderr, "", log.LstdFlags),
	}
	raw := newRawFS(f)
	// FUSE over io_uring needs the mount's /dev/fuse descriptor, which a
	// mount go-fuse makes keeps to itself: such a mount is made here.
	var ownDev *os.File
	uring := wantURing(o)
	if uring {
		mo.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
		if o.Device <= 0 {
			dev, fd, devnum, err := mountOwn(mountpoint, o)
			if err != nil {
				f.journal.close()
				f.inflight.close()
				return nil, err
			}
			if dev != nil {
				ownDev, o.Device, o.DeviceNumber = dev, fd, devnum
				mo.DirectMount = false
			}
		}
	}
	var srv *fuse.Server
	var err error
	switch {
	case o.Resume:
		srv, err = resumeServer(raw, o, mo, f.inflight)
	case o.Device > 0:
		// go-fuse serves a descriptor mounted elsewhere when given the
		// mountpoint /dev/fd/N (libfuse's convention).
		srv, err = newServer(raw, fmt.Sprintf("/dev/fd/%d", o.Device), mo, o.SpareP)
	default:
		srv, err = newServer(raw, mountpoint, mo, o.SpareP)
	}
	if err == nil && o.State != "" && !o.Resume {
		if serr := saveInit(o.State, srv.KernelSettings()); serr != nil {
			o.Logger.Error("the mount cannot be resumed by a successor", "err", serr)
		}
	}
	if err != nil && ownDev != nil {
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		ownDev.Close()
	}
	if err == nil {
		// NewServer has mounted and answered INIT. go-fuse's WaitMount
		// would add only its "poll hack" (opening a file of the mount to
		// have the kernel learn that POLL is not supported, for a server
		// that opens files in its own mount, which ours never does): four
		// round trips on a just-started server, on every mount.
		// A POLL from a client is answered ENOSYS when it comes.
		go srv.Serve()
	}
	if err != nil {
		f.journal.close()
		f.inflight.close()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	devnum := o.DeviceNumber
	if o.Device <= 0 {
		var st unix.Stat_t
		if err := unix.Stat(mountpoint, &st); err == nil {
			devnum = st.Dev
		}
	}
	var rings *uringServer
	if uring && o.Device > 0 && uringOffered(srv.KernelSettings()) {
		payload := (max(o.maxRequest(), 8192) + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
		logf := func(msg string, args ...any) { o.Logger.Error(msg, args...) }
		var err error
		if rings, err = startURing(o.Device, raw, mo.DisableXAttrs, payload, logf); err != nil {
			o.Logger.Info("FUSE over io_uring not used", "err", err)
		} else {
			o.Logger.Info("serving over io_uring", "rings", len(rings.queues))
		}
	}
	if err := setReadAhead(devnum, readAheadKB); err != nil {
		o.Logger.Info("readahead left at the kernel's default", "err", err)
	}
	if f.limiter != nil {
		f.limiter.notify = func(ids []uint64) bool { return srv.PruneNotify(ids).Ok() }
		go f.limiter.run()
	}
	go func() {
		srv.Wait()
		if rings != nil {
			o.Logger.Info("io_uring rings stopped", "requests", rings.served())
		}
		rings.stop()
		if ownDev != nil {
			ownDev.Close()
		}
		if f.limiter != nil {
			f.limiter.close()
		}
		f.warm.stop()
		if f.fds != nil {
			f.fds.close()
		}
		f.journal.close()
		f.inflight.close()
		f.backings.close()
	}()
	return &Server{Server: srv, Mountpoint: mountpoint, Dev: devnum, handedOver: o.Device > 0, limiter: f.limiter, nodes: f.nodes}, nil
}

// mountOwn makes the kernel side of the mount on a /dev/fuse descriptor
// of its own (MountDevice), for the rings, and returns it with the
// duplicate go-fuse is to serve (and close). No /dev/fuse to open leaves
// the mount to go-fuse: dev nil, no error.
func mountOwn(mountpoint string, o Options) (dev *os.File, fd int, devnum uint64, err error) {
	if dev, err = OpenDevice(); err != nil {
		return nil, 0, 0, nil
	}
	if devnum, err = MountDevice(dev, mountpoint, o); err != nil {
		dev.Close()
		return nil, 0, 0, err
	}
	if fd, err = unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 3); err != nil {
		_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		dev.Close()
		return nil, 0, 0, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return dev, fd, devnum, nil
}

// wantURing reports whether the mount is to be served over io_uring if
// the kernel offers it: a root mount, not one a successor may take over
// (State), and not refused by Options.NoURing.
func wantURing(o Options) bool {
	if o.NoURing || o.State != "" || o.Resume || os.Geteuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/sys/module/fuse/parameters/enable_uring")
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// readAheadKB is the mount's readahead window. The kernel gives a FUSE
// mount the default 128 KiB whatever the daemon asks, which makes a
// large cold read a series of 128 KiB round trips; 4 MiB keeps several
// 1 MiB reads in flight.
const readAheadKB = 4096

// setReadAhead sets the readahead of the mount's backing device info
// (needs root; the bdi of a FUSE mount is named after its device number).
// The kernel caps it at INIT, so it is set after.
func setReadAhead(dev uint64, kb int) error {
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(dev), unix.Minor(dev))
	return os.WriteFile(p, []byte(fmt.Sprintf("%d\n", kb)), 0)
}

// treeHasXattrs reports whether an image may carry xattrs; only images
// recorded at import as having none let the kernel skip xattr requests.
func treeHasXattrs(t *compose.Tree) bool {
	_, cm := t.Commit()
	if cm == nil {
		return true
	}
	v, ok := cm.Metadata.Get(compose.KeyXattrs)
	if !ok {
		return true
	}
	b, ok := v.Value.(bool)
	return !ok || b
}

// newServer mounts and starts go-fuse's server; with spare, it keeps a P
// free for the Go scheduler.
//
// go-fuse keeps up to GOMAXPROCS+1 goroutines blocked in read(2) on
// /dev/fuse, and a goroutine blocked in a system call holds its P. With
// every P held so, the runtime's sysmon keeps taking one back and
// starting a thread that finds nothing to do and sleeps again, on every
// request: on a 2-vCPU VM a large share of the daemon's CPU per request
// (bench/results has the numbers). So go-fuse sizes its readers from the process's first
// GOMAXPROCS and the process then runs with two Ps more (spareProcs).
// An explicit $GOMAXPROCS is left as it is. The mount service does without:
// its mounts' readers outnumber any Ps, and changing GOMAXPROCS stops the
// world, which cost its other mounts milliseconds.
func newServer(fs fuse.RawFileSystem, target string, o *fuse.MountOptions, spare bool) (*fuse.Server, error) {
	if !spare || os.Getenv("GOMAXPROCS") != "" {
		return fuse.NewServer(fs, target, o)
	}
	serverMu.Lock()
	defer serverMu.Unlock()
	if baseProcs == 0 {
		baseProcs = runtime.GOMAXPROCS(0)
	}
	readers, procs := spareProcs(baseProcs)
	runtime.GOMAXPROCS(readers)
	defer runtime.GOMAXPROCS(procs)
	return fuse.NewServer(fs, target, o)
}

var (
	// serverMu serializes newServer, which changes GOMAXPROCS.
	serverMu sync.Mutex
	// baseProcs is GOMAXPROCS as the process started, before newServer
	// raised it.
	baseProcs int
)

// spareProcs returns the GOMAXPROCS that go-fuse sizes its readers from
// (as it would have picked, at least 2) and the GOMAXPROCS to run with,
// so that its readers, at most one more than that, leave a P idle.
func spareProcs(base int) (readers, procs int) {
	readers = max(base, 2)
	return readers, readers + 2
}

// openState starts the journal in o.State, or, resuming, opens the
// predecessor's and indexes it.
func (f *filesystem) openState(o Options) error {
	if o.State == "" {
		return nil
	}
	c, _ := f.tree.Commit()
	var err error
	if o.Resume {
		f.journal, f.nodes.index, err = openJournal(o.State, c, f.log)
	} else {
		f.journal, err = createJournal(o.State, c, f.log)
	}
	if err != nil {
		return err
	}
	f.journal.table = f.nodes
	if f.inflight, err = openInflight(o.State, !o.Resume); err != nil {
		f.journal.close()
		return err
	}
	if err := f.backings.openState(o.State, o.Resume); err != nil {
		f.journal.close()
		f.inflight.close()
		return err
	}
	return nil
}
