package fs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Taking a mount over.
//
// The kernel sends INIT once, to the first server of a mount; go-fuse's
// server reads it before it serves anything else. A successor serving a
// live /dev/fuse descriptor would wait for it for ever. So the first
// server saves the kernel's INIT (the file "init" in State), and a
// successor gives go-fuse that same INIT on a socket that stands in for
// the descriptor: go-fuse reads it there and answers it there, and the
// socket is then replaced, under the same descriptor number, by the
// mount's /dev/fuse descriptor (dup3), before go-fuse reads anything
// else. From then on the successor serves the mount with the settings
// the kernel negotiated with the first server.
//
// The requests the previous server had read and not answered are still
// the kernel's, waiting for a reply that will never come. The successor
// asks the kernel to send them again (FUSE_NOTIFY_RESEND, Linux 6.9 and
// later), marked as resent, and answers them like any other. A kernel
// without it refuses the notification: the successor then fails with EIO
// the requests its predecessor recorded as in flight (inflight.go), and
// serves every later one.

// fuseOpInit is FUSE_INIT's opcode; notifyResend FUSE_NOTIFY_RESEND's
// notification code.
const (
	fuseOpInit   = 26
	notifyResend = 7
)

// saveInit keeps the kernel's INIT in dir, whole or not at all.
func saveInit(dir string, in *fuse.InitIn) error {
	b := unsafe.Slice((*byte)(unsafe.Pointer(in)), unsafe.Sizeof(*in))
	tmp := filepath.Join(dir, "."+initFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save INIT: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, initFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save INIT: %w", err)
	}
	return nil
}

func loadInit(dir string) (*fuse.InitIn, error) {
	p := filepath.Join(dir, initFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("INIT %s: %w", p, ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("INIT: %w", err)
	}
	var in fuse.InitIn
	if len(b) != int(unsafe.Sizeof(in)) {
		return nil, fmt.Errorf("INIT %s: %d bytes, want %d: %w", p, len(b), unsafe.Sizeof(in), ErrNoState)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&in)), len(b)), b)
	return &in, nil
}

// resumeServer makes go-fuse's server for a live mount (see above).
func resumeServer(raw fuse.RawFileSystem, o Options, mo *fuse.MountOptions, flight *inflight) (*fuse.Server, error) {
	in, err := loadInit(o.State)
	if err != nil {
		return nil, err
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	defer unix.Close(sp[1])
	req := *in
	req.Length = uint32(unsafe.Sizeof(req))
	req.Opcode = fuseOpInit
	req.Unique = 1
	req.NodeId = 0
	if _, err := unix.Write(sp[1], unsafe.Slice((*byte)(unsafe.Pointer(&req)), unsafe.Sizeof(req))); err != nil {
		unix.Close(sp[0])
		return nil, fmt.Errorf("resume: %w", err)
	}
	// go-fuse owns sp[0] from here, and closes it on failure.
	srv, err := newServer(raw, fmt.Sprintf("/dev/fd/%d", sp[0]), mo, o.SpareP)
	if err != nil {
		return nil, fmt.Errorf("resume: INIT: %w", err)
	}
	if err := unix.Dup3(o.Device, sp[0], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	unix.Close(o.Device)
	err = errNoResend
	if !noResend {
		err = resend(sp[0])
	}
	if err != nil {
		n := flight.failPredecessors(sp[0])
		o.Logger.Warn("resumed: the kernel cannot resend the requests the previous server left unanswered; they fail with EIO", "failed", n, "err", err)
	} else {
		flight.clear()
		o.Logger.Info("resumed: the kernel resends the requests the previous server left unanswered")
	}
	return srv, nil
}

// noResend makes a successor act as on a kernel without
// FUSE_NOTIFY_RESEND (tests).
var noResend bool

var errNoResend = errors.New("FUSE_NOTIFY_RESEND not used")

// resend asks the kernel to send again every request read from the
// connection and not answered yet.
func resend(fd int) error {
	h := fuse.OutHeader{Length: uint32(unsafe.Sizeof(fuse.OutHeader{})), Status: notifyResend}
	_, err := unix.Write(fd, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h)))
	if err != nil {
		return fmt.Errorf("FUSE_NOTIFY_RESEND: %w", err)
	}
	return nil
}
