package mount

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// This file holds the fd store's protocol: what the supervisor and its
// worker say on their socketpair, the manifest a worker (or a
// re-executed supervisor) starts from, the mount records in the run
// directory, and the restart policy.

// ctlMsg is one message on the control socketpair between a worker and
// its supervisor: a request from the worker, each answered by a reply
// (Op "ok", or Error set).
//
//   - "add": the worker made mount ID; the message carries its /dev/fuse
//     descriptor and its pin descriptor (SCM_RIGHTS), and Pin names the
//     pin file. Once the supervisor has answered, it holds them.
//   - "drop": mount ID ended (or could not be resumed); the supervisor
//     closes what it held for it.
//   - "ready": the worker resumed every mount of its manifest (Resumed,
//     Failed) and accepts on the service's socket.
//   - "ping": answered, by a supervisor that is alive.
type ctlMsg struct {
	Op      string `json:"op"`
	ID      string `json:"id,omitempty"`
	Pin     string `json:"pin,omitempty"`
	Resumed int    `json:"resumed,omitempty"`
	Failed  int    `json:"failed,omitempty"`
	Error   string `json:"error,omitempty"`
}

// maxCtlMsg bounds a control message; maxCtlFDs the descriptors one
// carries.
const (
	maxCtlMsg = 4 << 10
	maxCtlFDs = 4
)

// ctlPair makes the control socketpair: SOCK_SEQPACKET, so that each
// message and its descriptors arrive whole and apart from the next.
// The supervisor keeps sup; the worker inherits worker.
func ctlPair() (sup *net.UnixConn, worker *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("control socketpair: %w", err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "control")
	defer a.Close()
	sup, err = fileConn(a)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return sup, b, nil
}

// fileConn makes a connection of a socket descriptor (which it dups).
func fileConn(f *os.File) (*net.UnixConn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("control socket: not a unix socket")
	}
	return uc, nil
}

// sendMsg sends m with files (their descriptors, SCM_RIGHTS) on c.
func sendMsg(c *net.UnixConn, m ctlMsg, files ...*os.File) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxCtlMsg || len(files) > maxCtlFDs {
		return fmt.Errorf("control message %q: too large", m.Op)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("control message %q: %w", m.Op, err)
	}
	return nil
}

// recvMsg reads one message from c and the descriptors it carries (as
// files, close-on-exec). A message cut short, or whose descriptors did
// not all fit, is an error (and its descriptors are closed); io.EOF
// means the other end closed.
func recvMsg(c *net.UnixConn) (ctlMsg, []*os.File, error) {
	var m ctlMsg
	b := make([]byte, maxCtlMsg+1)
	oob := make([]byte, unix.CmsgSpace(maxCtlFDs*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(b, oob)
	if err != nil {
		return m, nil, err
	}
	var files []*os.File
	if oobn > 0 {
		cms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return m, nil, fmt.Errorf("control message: %w", err)
		}
		for _, cm := range cms {
			fds, err := unix.ParseUnixRights(&cm)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "received"))
			}
		}
	}
	fail := func(err error) (ctlMsg, []*os.File, error) {
		closeFiles(files)
		return ctlMsg{}, nil, err
	}
	if n == 0 && oobn == 0 {
		return fail(errEOF)
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > maxCtlMsg {
		return fail(errors.New("control message: truncated"))
	}
	if err := json.Unmarshal(b[:n], &m); err != nil {
		return fail(fmt.Errorf("control message: %w", err))
	}
	return m, files, nil
}

// errEOF: the other end of the control socketpair closed it (a
// SOCK_SEQPACKET read of nothing).
var errEOF = errors.New("control socket closed")

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// manifest is what a worker starts from, and what a supervisor passes to
// its successor across execve: the descriptors it inherits, by number,
// and the mounts they belong to. It lives in the run directory
// (manifestName), named by the process's environment.
type manifest struct {
	Socket string `json:"socket"`
	RunDir string `json:"run_dir"`
	// Listener is the service's listening socket.
	Listener int `json:"listener"`
	// Control is the worker's end of the control socketpair (workers
	// only); Reply a connection on the supervisor's control socket to
	// answer once the upgrade is done (a re-executed supervisor only,
	// 0: none); CtlListener the supervisor's control socket (a
	// re-executed supervisor only).
	Control     int `json:"control,omitempty"`
	Reply       int `json:"reply,omitempty"`
	CtlListener int `json:"ctl_listener,omitempty"`
	// Generation counts the workers the supervisor started, Restarts
	// those after a crash.
	Generation int             `json:"generation"`
	Restarts   int             `json:"restarts,omitempty"`
	Mounts     []manifestMount `json:"mounts"`
}

// manifestMount is a mount the supervisor holds: its id (its record is
// RunDir/mounts/ID), its /dev/fuse and pin descriptors and the pin's
// file name.
type manifestMount struct {
	ID      string `json:"id"`
	FUSE    int    `json:"fuse"`
	Pin     int    `json:"pin"`
	PinPath string `json:"pin_path"`
}

const (
	manifestName = "manifest.json"
	// manifestEnv names the manifest of a worker; supervisorEnv that of
	// a supervisor re-executed by an upgrade; probeEnv asks the binary
	// to say which supervisor protocol it speaks (probeReply) and exit.
	manifestEnv   = "OSTREE_MOUNT_WORKER"
	supervisorEnv = "OSTREE_MOUNT_SUPERVISOR"
	probeEnv      = "OSTREE_MOUNT_PROBE"
	probeReply    = "ostree-mount supervisor protocol 1"
)

// writeManifest writes m to m.RunDir/manifestName, atomically.
func writeManifest(m manifest) (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	p := filepath.Join(m.RunDir, manifestName)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	return p, nil
}

// readManifest reads the manifest at p.
func readManifest(p string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(p)
	if err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w", p, err)
	}
	if m.Listener < 3 || m.RunDir == "" || m.Socket == "" {
		return m, fmt.Errorf("manifest %s: no listener, run directory or socket", p)
	}
	for _, mm := range m.Mounts {
		if !validID(mm.ID) || mm.FUSE < 3 || mm.Pin < 3 || mm.PinPath == "" {
			return m, fmt.Errorf("manifest %s: bad mount %+v", p, mm)
		}
	}
	return m, nil
}

// runDirFor is the run directory of the service at socket (absolute):
// one per socket, so that services on distinct sockets keep apart.
func runDirFor(socket string) string {
	h := sha256.Sum256([]byte(socket))
	return filepath.Join("/run/ostree-mount", "service-"+hex.EncodeToString(h[:8]))
}

// ctlSocketName is the supervisor's control socket in its run
// directory ('serve --upgrade' asks it).
const ctlSocketName = "supervisor.sock"

// newID returns a new mount id.
func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// validID: 16 lower-case hexadecimal digits, so that an id names a
// directory of RunDir/mounts and nothing else.
func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// mountRecord is a mount's record, RunDir/mounts/ID/mount.json: what a
// worker needs to serve the mount again. The mount's fs state
// (fs.Options.State) is RunDir/mounts/ID/fs.
type mountRecord struct {
	Options Options `json:"options"`
	// Devnum is the mount's device number (st_dev), which a worker that
	// cannot serve it again checks before detaching it.
	Devnum uint64 `json:"devnum"`
	Pin    string `json:"pin"`
}

const (
	mountsDir  = "mounts"
	recordName = "mount.json"
	fsStateDir = "fs"
)

// mountDir is mount id's directory in runDir.
func mountDir(runDir, id string) string { return filepath.Join(runDir, mountsDir, id) }

// writeRecord makes mount id's directory (0700), its fs state directory
// and its record.
func writeRecord(runDir, id string, rec mountRecord) error {
	d := mountDir(runDir, id)
	if err := os.MkdirAll(filepath.Join(d, fsStateDir), 0o700); err != nil {
		return fmt.Errorf("mount state: %w", err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(d, recordName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("mount state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(d, recordName)); err != nil {
		return fmt.Errorf("mount state: %w", err)
	}
	return nil
}

// readRecord reads mount id's record.
func readRecord(runDir, id string) (mountRecord, error) {
	var rec mountRecord
	b, err := os.ReadFile(filepath.Join(mountDir(runDir, id), recordName))
	if err != nil {
		return rec, fmt.Errorf("mount %s: record: %w", id, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("mount %s: record: %w", id, err)
	}
	return rec, nil
}

// restartPolicy bounds how fast the supervisor restarts a worker that
// keeps dying: a worker that lived less than minUptime counts as a quick
// death; the first freeRestarts quick deaths in a row restart at once,
// then each waits twice as long as the last, from firstDelay up to
// maxDelay. A worker that lived minUptime resets the count.
type restartPolicy struct {
	minUptime    time.Duration
	freeRestarts int
	firstDelay   time.Duration
	maxDelay     time.Duration
	quick        int // quick deaths in a row
}

func defaultRestartPolicy() restartPolicy {
	return restartPolicy{minUptime: time.Second, freeRestarts: 3, firstDelay: 100 * time.Millisecond, maxDelay: 10 * time.Second}
}

// next records a worker's death after uptime and returns how long to
// wait before the next start.
func (p *restartPolicy) next(uptime time.Duration) time.Duration {
	if uptime >= p.minUptime {
		p.quick = 0
	}
	p.quick++
	if p.quick <= p.freeRestarts {
		return 0
	}
	d := p.firstDelay
	for i := p.freeRestarts + 1; i < p.quick && d < p.maxDelay; i++ {
		d *= 2
	}
	return min(d, p.maxDelay)
}

// fdStore is a worker's end of the control socketpair: one request at a
// time, each answered.
type fdStore struct {
	mu   sync.Mutex
	conn *net.UnixConn
}

// call sends m with files and waits for the supervisor's answer.
func (f *fdStore) call(m ctlMsg, files ...*os.File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := sendMsg(f.conn, m, files...); err != nil {
		return fmt.Errorf("the supervisor: %w", err)
	}
	r, extra, err := recvMsg(f.conn)
	closeFiles(extra)
	if err != nil {
		return fmt.Errorf("the supervisor: %w", err)
	}
	if r.Error != "" {
		return fmt.Errorf("the supervisor: %s", r.Error)
	}
	return nil
}
