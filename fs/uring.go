package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FUSE over io_uring (Linux 6.14 and later, with the fuse module's
// enable_uring parameter set). Over /dev/fuse, each request wakes one of
// the daemon's reader threads, wherever it sleeps; on a VM a wakeup on
// the other CPU costs tens of microseconds each way, and a cold walk is
// thousands of such round trips (two READDIRPLUS per directory). Over
// io_uring the kernel queues a request on the ring of the CPU its caller
// runs on, and each ring is served by a thread pinned to that CPU: the
// caller blocks, the server runs on the same CPU, and its reply wakes
// the caller there.
//
// The INIT exchange and FORGET, INTERRUPT and notifications stay on
// /dev/fuse, served by go-fuse; every other request comes through the
// rings once each CPU's ring holds an entry. A ring entry is a header
// buffer (fuse_uring_req_header: the in header, the operation's fixed
// struct, and the entry's in/out record) and a payload buffer (names in,
// replies out). The thread of a ring answers in place, except reads of
// 128 KiB or more, which go to a goroutine so that a read waiting on the
// disk does not hold up the metadata requests queued behind it.

const (
	sysIoURingSetup = 425
	sysIoURingEnter = 426

	ioringSetupSQE128    = 1 << 10
	ioringEnterGetEvents = 1
	ioringFeatSingleMmap = 1
	ioringOpNop          = 0
	ioringOpURingCmd     = 46
	ioringOffSQRing      = 0
	ioringOffCQRing      = 0x8000000
	ioringOffSQEs        = 0x10000000

	fuseURingCmdRegister       = 1
	fuseURingCmdCommitAndFetch = 2

	sqeSize = 128 // IORING_SETUP_SQE128
	cqeSize = 16

	// The header buffer: in_out (128), op_in (128), ring_ent_in_out (32).
	uringInOut      = 0
	uringOpIn       = 128
	uringEntInOut   = 256
	uringHeaderSize = 288
	inHeaderSize    = int(unsafe.Sizeof(fuse.InHeader{}))

	// uringEntries per CPU ring: requests in flight on one CPU at once.
	uringEntries = 4
	// uringAsyncRead is the smallest read answered off the ring's thread.
	uringAsyncRead = 128 << 10
	// uringStop is the user data of the NOP that stops a ring's thread.
	uringStop = ^uint64(0)
)

type ioSQRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type ioCQRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type ioURingParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  ioSQRingOffsets
	CQOff                                                                  ioCQRingOffsets
}

// uring is one io_uring instance with 128-byte SQEs.
type uring struct {
	fd      int
	rings   []byte // SQ and CQ rings (one mapping)
	sqeMem  []byte
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqN     uint32
	sqArray unsafe.Pointer
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    unsafe.Pointer
	mu      sync.Mutex // the SQ: the ring's thread and read goroutines submit
}

func newURing(entries uint32) (*uring, error) {
	var p ioURingParams
	p.Flags = ioringSetupSQE128
	fd, _, errno := unix.Syscall(sysIoURingSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	u := &uring{fd: int(fd)}
	if p.Features&ioringFeatSingleMmap == 0 {
		u.close()
		return nil, errors.New("io_uring: the kernel maps its rings separately (too old)")
	}
	size := max(p.SQOff.Array+p.SQEntries*4, p.CQOff.CQEs+p.CQEntries*cqeSize)
	var err error
	if u.rings, err = unix.Mmap(u.fd, ioringOffSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		u.close()
		return nil, fmt.Errorf("io_uring rings: %w", err)
	}
	if u.sqeMem, err = unix.Mmap(u.fd, ioringOffSQEs, int(p.SQEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		u.close()
		return nil, fmt.Errorf("io_uring SQEs: %w", err)
	}
	at := func(off uint32) unsafe.Pointer { return unsafe.Pointer(&u.rings[off]) }
	u.sqHead, u.sqTail = (*uint32)(at(p.SQOff.Head)), (*uint32)(at(p.SQOff.Tail))
	u.sqMask, u.sqN = *(*uint32)(at(p.SQOff.RingMask)), p.SQEntries
	u.sqArray = at(p.SQOff.Array)
	u.cqHead, u.cqTail = (*uint32)(at(p.CQOff.Head)), (*uint32)(at(p.CQOff.Tail))
	u.cqMask = *(*uint32)(at(p.CQOff.RingMask))
	u.cqes = at(p.CQOff.CQEs)
	return u, nil
}

func (u *uring) close() {
	if u.sqeMem != nil {
		_ = unix.Munmap(u.sqeMem)
	}
	if u.rings != nil {
		_ = unix.Munmap(u.rings)
	}
	unix.Close(u.fd)
}

// push fills the next SQE and publishes it; the caller then submits it
// with enter. The ring has room for every entry's command and a stop.
func (u *uring) push(fill func(sqe []byte)) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	tail := *u.sqTail
	if tail-atomic.LoadUint32(u.sqHead) >= u.sqN {
		return errors.New("io_uring: submission queue full")
	}
	i := tail & u.sqMask
	sqe := u.sqeMem[int(i)*sqeSize : int(i+1)*sqeSize]
	clear(sqe)
	fill(sqe)
	*(*uint32)(unsafe.Add(u.sqArray, 4*uintptr(i))) = i
	atomic.StoreUint32(u.sqTail, tail+1)
	return nil
}

func (u *uring) enter(submit, wait uint32) error {
	flags := uintptr(0)
	if wait > 0 {
		flags = ioringEnterGetEvents
	}
	for {
		_, _, errno := unix.Syscall6(sysIoURingEnter, uintptr(u.fd), uintptr(submit), uintptr(wait), flags, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			if wait == 0 {
				continue
			}
			return nil // the caller reaps what there is, and waits again
		default:
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// cqe is a completion: the user data of its SQE and the result.
type cqe struct {
	data uint64
	res  int32
}

// reap appends the completions posted so far to out.
func (u *uring) reap(out []cqe) []cqe {
	head := *u.cqHead
	tail := atomic.LoadUint32(u.cqTail)
	for ; head != tail; head++ {
		p := unsafe.Add(u.cqes, uintptr(head&u.cqMask)*cqeSize)
		out = append(out, cqe{data: *(*uint64)(p), res: *(*int32)(unsafe.Add(p, 8))})
	}
	atomic.StoreUint32(u.cqHead, head)
	return out
}

// uringEnt is a ring entry: its header and payload buffers.
type uringEnt struct {
	idx     uint64
	mem     []byte // the mapping of both
	hdr     []byte
	payload []byte
	iov     [2]unix.Iovec
}

// uringQueue is the ring of one CPU and the thread pinned to it.
type uringQueue struct {
	qid  uint16
	dev  int // the /dev/fuse descriptor
	u    *uring
	ents []*uringEnt
	fs   fuse.RawFileSystem
	// noXattrs: the image has none, and xattr requests are refused with
	// ENOSYS, as go-fuse does with DisableXAttrs, so that the kernel
	// stops sending them.
	noXattrs bool
	log      func(msg string, args ...any)
	done     chan struct{}
	// reads answered by goroutines, waited for before the ring closes
	reads  sync.WaitGroup
	served atomic.Int64 // requests answered
}

// uringServer is a mount's set of rings.
type uringServer struct {
	dev    int
	queues []*uringQueue
}

// uringOffered reports whether the kernel offered FUSE over io_uring at
// INIT (it does when the fuse module's enable_uring is set).
func uringOffered(in *fuse.InitIn) bool {
	return in.Flags64()&fuse.CAP_OVER_IO_URING != 0
}

// possibleCPUs is the kernel's count of possible CPUs, one ring each.
func possibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("cpu/possible %q: %w", b, err)
		}
		z := a
		if found {
			if z, err = strconv.Atoi(hi); err != nil {
				return 0, fmt.Errorf("cpu/possible %q: %w", b, err)
			}
		}
		n = max(n, z+1)
	}
	return n, nil
}

// startURing registers uringEntries entries on a ring for each CPU, each
// with a payload buffer of payload bytes, and starts their threads. The
// kernel switches to the rings once every CPU's is registered; until
// then, and should this fail, requests keep coming through /dev/fuse.
func startURing(dev int, fsys fuse.RawFileSystem, noXattrs bool, payload int, log func(string, ...any)) (*uringServer, error) {
	n, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	// The rings' own descriptor of the connection: go-fuse closes its
	// own when its loop ends, and the rings may still commit then.
	fd, err := unix.FcntlInt(uintptr(dev), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("dup /dev/fuse: %w", err)
	}
	dev = fd
	s := &uringServer{dev: fd}
	started := make(chan error, n)
	for q := 0; q < n; q++ {
		u, err := newURing(2*uringEntries + 2)
		if err != nil {
			s.stop()
			return nil, err
		}
		uq := &uringQueue{qid: uint16(q), dev: dev, u: u, fs: fsys, noXattrs: noXattrs, log: log, done: make(chan struct{})}
		pg := os.Getpagesize()
		for i := 0; i < uringEntries; i++ {
			// The header on the first page, the payload from the second.
			mem, err := unix.Mmap(-1, 0, pg+payload, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				uq.release()
				s.stop()
				return nil, fmt.Errorf("ring buffers: %w", err)
			}
			e := &uringEnt{idx: uint64(i), mem: mem, hdr: mem[:uringHeaderSize], payload: mem[pg:]}
			e.iov[0].Base, e.iov[0].Len = &e.hdr[0], uint64(len(e.hdr))
			e.iov[1].Base, e.iov[1].Len = &e.payload[0], uint64(len(e.payload))
			uq.ents = append(uq.ents, e)
		}
		s.queues = append(s.queues, uq)
		go uq.run(started)
	}
	for range s.queues {
		if err := <-started; err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

// served is the count of requests the rings answered.
func (s *uringServer) served() int64 {
	if s == nil {
		return 0
	}
	var n int64
	for _, q := range s.queues {
		n += q.served.Load()
	}
	return n
}

// stop ends every ring's thread (after the kernel ended the connection,
// or when startURing fails) and releases the rings.
func (s *uringServer) stop() {
	if s == nil {
		return
	}
	for _, q := range s.queues {
		_ = q.u.push(func(sqe []byte) {
			sqe[0] = ioringOpNop
			binary.LittleEndian.PutUint64(sqe[32:], uringStop)
		})
		_ = q.u.enter(1, 0)
	}
	for _, q := range s.queues {
		select {
		case <-q.done:
		case <-time.After(5 * time.Second):
			q.log("a ring's thread did not stop", "queue", q.qid)
			continue
		}
		q.reads.Wait()
		q.release()
	}
	s.queues = nil
	unix.Close(s.dev)
}

// release closes the ring and unmaps its entries' buffers.
func (q *uringQueue) release() {
	q.u.close()
	for _, e := range q.ents {
		_ = unix.Munmap(e.mem)
	}
	q.ents = nil
}

// cmd fills sqe with a FUSE ring command for entry e.
func (q *uringQueue) cmd(sqe []byte, op uint32, e *uringEnt, commit uint64) {
	sqe[0] = ioringOpURingCmd
	binary.LittleEndian.PutUint32(sqe[4:], uint32(q.dev))
	binary.LittleEndian.PutUint32(sqe[8:], op) // cmd_op
	binary.LittleEndian.PutUint64(sqe[16:], uint64(uintptr(unsafe.Pointer(&e.iov[0]))))
	binary.LittleEndian.PutUint32(sqe[24:], 2)
	binary.LittleEndian.PutUint64(sqe[32:], e.idx)
	// The command (fuse_uring_cmd_req) at 48: flags, commit_id, qid.
	binary.LittleEndian.PutUint64(sqe[56:], commit)
	binary.LittleEndian.PutUint16(sqe[64:], q.qid)
}

func (q *uringQueue) run(started chan<- error) {
	defer close(q.done)
	// The thread stays this ring's for its life, and ends with it.
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(int(q.qid))
	_ = unix.SchedSetaffinity(0, &set) // a CPU offline now: unpinned
	for _, e := range q.ents {
		if err := q.u.push(func(sqe []byte) { q.cmd(sqe, fuseURingCmdRegister, e, 0) }); err != nil {
			started <- err
			return
		}
	}
	if err := q.u.enter(uint32(len(q.ents)), 0); err != nil {
		started <- err
		return
	}
	started <- nil
	var cqes []cqe
	pending := uint32(0)
	for {
		if err := q.u.enter(pending, 1); err != nil {
			q.log("FUSE ring stopped", "queue", q.qid, "err", err)
			return
		}
		pending = 0
		cqes = q.u.reap(cqes[:0])
		for _, c := range cqes {
			if c.data == uringStop {
				return
			}
			if c.res < 0 {
				// ENOTCONN and ECANCELED: the connection ended.
				errno := syscall.Errno(-c.res)
				if errno != syscall.ENOTCONN && errno != syscall.ECANCELED && errno != syscall.ENODEV {
					q.log("FUSE ring entry failed", "queue", q.qid, "err", errno)
				}
				continue
			}
			if c.data >= uint64(len(q.ents)) {
				continue
			}
			e := q.ents[c.data]
			if q.async(e) {
				q.reads.Add(1)
				go func() {
					defer q.reads.Done()
					commit := q.serve(e)
					if q.u.push(func(sqe []byte) { q.cmd(sqe, fuseURingCmdCommitAndFetch, e, commit) }) == nil {
						_ = q.u.enter(1, 0)
					}
				}()
				continue
			}
			commit := q.serve(e)
			if q.u.push(func(sqe []byte) { q.cmd(sqe, fuseURingCmdCommitAndFetch, e, commit) }) == nil {
				pending++
			}
		}
	}
}

// async reports whether e holds a read large enough to answer off the
// ring's thread.
func (q *uringQueue) async(e *uringEnt) bool {
	h := (*fuse.InHeader)(unsafe.Pointer(&e.hdr[uringInOut]))
	if h.Opcode != opRead {
		return false
	}
	size := binary.LittleEndian.Uint32(e.hdr[uringOpIn+16:]) // fuse_read_in.size
	return size >= uringAsyncRead
}

// Opcodes served on the rings (include/uapi/linux/fuse.h).
const (
	opLookup      = 1
	opGetattr     = 3
	opSetattr     = 4
	opReadlink    = 5
	opOpen        = 14
	opRead        = 15
	opStatfs      = 17
	opRelease     = 18
	opGetxattr    = 22
	opListxattr   = 23
	opFlush       = 25
	opOpendir     = 27
	opReaddir     = 28
	opReleasedir  = 29
	opAccess      = 34
	opReaddirplus = 44
	opLseek       = 46
)

// serve answers the request in e in place: the out header in in_out,
// the reply in the payload, its size in ring_ent_in_out. It returns the
// commit ID of the request.
func (q *uringQueue) serve(e *uringEnt) uint64 {
	ent := e.hdr[uringEntInOut:]
	commit := binary.LittleEndian.Uint64(ent[8:])
	inSize := min(int(binary.LittleEndian.Uint32(ent[16:])), len(e.payload))
	// The in header and the operation's struct, contiguous as go-fuse's
	// request types are.
	var in [inHeaderSize + 128]byte
	copy(in[:inHeaderSize], e.hdr[uringInOut:])
	copy(in[inHeaderSize:], e.hdr[uringOpIn:uringOpIn+128])
	h := (*fuse.InHeader)(unsafe.Pointer(&in[0]))
	var n int
	var st fuse.Status
	if q.noXattrs && (h.Opcode == opGetxattr || h.Opcode == opListxattr) {
		st = fuse.ENOSYS
	} else {
		n, st = dispatch(q.fs, h, unsafe.Pointer(&in[0]), e.payload[:inSize], e.payload)
	}
	q.served.Add(1)
	if !st.Ok() {
		n = 0
	}
	// fuse_out_header: len, error, unique.
	binary.LittleEndian.PutUint32(e.hdr[0:], uint32(16+n))
	binary.LittleEndian.PutUint32(e.hdr[4:], uint32(-int32(st)))
	binary.LittleEndian.PutUint64(e.hdr[8:], h.Unique)
	binary.LittleEndian.PutUint32(ent[16:], uint32(n))
	return commit
}

// outStruct is a reply struct of type T at the start of out, zeroed,
// and its size.
func outStruct[T any](out []byte) (*T, int) {
	var z T
	n := int(unsafe.Sizeof(z))
	clear(out[:n])
	return (*T)(unsafe.Pointer(&out[0])), n
}

// cstring is a NUL-terminated name of a request's payload.
func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// dispatch calls fsys for the request h (in: the header and its
// operation's struct) with the request's payload, and writes the reply
// into out, returning its size. payload and out share the ring entry's
// buffer: a name is copied out before the reply is written.
func dispatch(fsys fuse.RawFileSystem, h *fuse.InHeader, in unsafe.Pointer, payload, out []byte) (int, fuse.Status) {
	switch h.Opcode {
	case opLookup:
		name := cstring(payload) // before the reply overwrites it
		o, n := outStruct[fuse.EntryOut](out)
		return n, fsys.Lookup(nil, h, name, o)
	case opGetattr:
		o, n := outStruct[fuse.AttrOut](out)
		return n, fsys.GetAttr(nil, (*fuse.GetAttrIn)(in), o)
	case opSetattr:
		o, n := outStruct[fuse.AttrOut](out)
		return n, fsys.SetAttr(nil, (*fuse.SetAttrIn)(in), o)
	case opReadlink:
		b, st := fsys.Readlink(nil, h)
		return copy(out, b), st
	case opOpen:
		o, n := outStruct[fuse.OpenOut](out)
		return n, fsys.Open(nil, (*fuse.OpenIn)(in), o)
	case opOpendir:
		o, n := outStruct[fuse.OpenOut](out)
		return n, fsys.OpenDir(nil, (*fuse.OpenIn)(in), o)
	case opRead:
		ri := (*fuse.ReadIn)(in)
		buf := out[:min(int(ri.Size), len(out))]
		rr, st := fsys.Read(nil, ri, buf)
		if !st.Ok() || rr == nil {
			return 0, st
		}
		defer rr.Done()
		b, st := rr.Bytes(buf)
		if !st.Ok() {
			return 0, st
		}
		if len(b) > 0 && &b[0] != &buf[0] {
			return copy(buf, b), fuse.OK
		}
		return len(b), fuse.OK
	case opStatfs:
		o, n := outStruct[fuse.StatfsOut](out)
		return n, fsys.StatFs(nil, h, o)
	case opRelease:
		fsys.Release(nil, (*fuse.ReleaseIn)(in))
		return 0, fuse.OK
	case opReleasedir:
		fsys.ReleaseDir((*fuse.ReleaseIn)(in))
		return 0, fuse.OK
	case opGetxattr, opListxattr:
		gi := (*fuse.GetXAttrIn)(in)
		dest := out[:min(int(gi.Size), len(out))]
		var n uint32
		var st fuse.Status
		if h.Opcode == opGetxattr {
			n, st = fsys.GetXAttr(nil, h, cstring(payload), dest)
		} else {
			n, st = fsys.ListXAttr(nil, h, dest)
		}
		if gi.Size == 0 {
			if st == fuse.ERANGE {
				st = fuse.OK
			}
			o, size := outStruct[fuse.GetXAttrOut](out)
			o.Size = n
			return size, st
		}
		return int(min(n, uint32(len(dest)))), st
	case opFlush:
		return 0, fsys.Flush(nil, (*fuse.FlushIn)(in))
	case opAccess:
		return 0, fsys.Access(nil, (*fuse.AccessIn)(in))
	case opReaddir, opReaddirplus:
		ri := (*fuse.ReadIn)(in)
		l := fuse.NewDirEntryList(out[:min(int(ri.Size), len(out))], ri.Offset)
		var st fuse.Status
		if h.Opcode == opReaddir {
			st = fsys.ReadDir(nil, ri, l)
		} else {
			st = fsys.ReadDirPlus(nil, ri, l)
		}
		return len(l.Bytes()), st
	case opLseek:
		o, n := outStruct[fuse.LseekOut](out)
		return n, fsys.Lseek(nil, (*fuse.LseekIn)(in), o)
	}
	return 0, fuse.ENOSYS
}
