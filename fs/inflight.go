package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The requests in flight, for kernels without FUSE_NOTIFY_RESEND.
//
// A server that dies leaves the requests it had read unanswered, and
// their readers wait. Where the kernel can resend them (resume.go) that
// is all a successor needs. Where it cannot, the successor fails them
// with EIO instead, so that no reader waits for ever: each request's
// unique ID is stored, while it is served, in a slot of a small file of
// the mount's State that is mapped shared, so that the stores outlive
// the process without a system call each. A slot is freed when its
// handler returns and keeps the ID until reused; failing an ID that was
// answered meanwhile is refused by the kernel (it knows no such
// request), and IDs are never reused, so a stale slot costs nothing.
//
// The gap between a handler's return and go-fuse's writing of the reply
// is not covered: a request whose slot was reused in that gap, in a
// process killed in it, waits until unmount.
const (
	inflightFile  = "inflight"
	inflightSlots = 128
)

type inflight struct {
	mem   []byte
	ids   *[inflightSlots]atomic.Uint64
	busy  [inflightSlots]atomic.Bool
	start atomic.Uint32
}

// openInflight maps the slots in dir, keeping what a predecessor left
// there for failPredecessors; fresh clears them.
func openInflight(dir string, fresh bool) (*inflight, error) {
	p := filepath.Join(dir, inflightFile)
	flags := os.O_CREATE | os.O_RDWR | unix.O_CLOEXEC
	if fresh {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("in-flight slots: %w", err)
	}
	defer f.Close()
	size := inflightSlots * 8
	if err := f.Truncate(int64(size)); err != nil {
		return nil, fmt.Errorf("in-flight slots %s: %w", p, err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("in-flight slots %s: %w", p, err)
	}
	return &inflight{mem: mem, ids: (*[inflightSlots]atomic.Uint64)(unsafe.Pointer(&mem[0]))}, nil
}

// begin records request id in a free slot; end frees it. With every
// slot busy, the request goes unrecorded.
func (in *inflight) begin(id uint64) int {
	if in == nil {
		return -1
	}
	s := int(in.start.Add(1))
	for k := range inflightSlots {
		i := (s + k) % inflightSlots
		if in.busy[i].CompareAndSwap(false, true) {
			in.ids[i].Store(id)
			return i
		}
	}
	return -1
}

func (in *inflight) end(slot int) {
	if slot >= 0 {
		in.busy[slot].Store(false)
	}
}

// failPredecessors answers EIO to every request a predecessor recorded,
// and clears the slots. It returns how many the kernel took.
func (in *inflight) failPredecessors(fd int) int {
	n := 0
	for i := range in.ids {
		id := in.ids[i].Swap(0)
		if id == 0 {
			continue
		}
		h := fuse.OutHeader{Length: uint32(unsafe.Sizeof(fuse.OutHeader{})), Status: -int32(unix.EIO), Unique: id}
		if _, err := unix.Write(fd, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h))); err == nil {
			n++
		}
	}
	return n
}

// clear forgets what a predecessor recorded (the kernel resends it).
func (in *inflight) clear() {
	for i := range in.ids {
		in.ids[i].Store(0)
	}
}

func (in *inflight) close() {
	if in != nil && in.mem != nil {
		_ = unix.Munmap(in.mem)
		in.mem = nil
	}
}
