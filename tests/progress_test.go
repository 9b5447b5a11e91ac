package tests

// Import progress on a real pseudo-terminal (opened here with the
// kernel's ioctls), on a pipe, and with --quiet: pulls from the plain
// registry, through the fault proxy that holds a blob half sent, and a
// local import of a large layer.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: the master, which the test reads,
// and the slave, a terminal for the child's stderr.
func openPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	noErr(t, err)
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); e != 0 {
			m.Close()
			t.Fatalf("pty ioctl %#x: %v", req, e)
		}
	}
	var unlock int32
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	var n uint32
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m, s
}

// ptyRun is a command whose stderr is a terminal; its output is read as
// it comes.
type ptyRun struct {
	cmd    *exec.Cmd
	stdout strings.Builder
	mu     sync.Mutex
	out    bytes.Buffer
	more   chan struct{} // closed and replaced at each read, and at the end
	eof    bool
}

func startPTY(t testing.TB, env []string, name string, args ...string) *ptyRun {
	t.Helper()
	m, s := openPTY(t)
	p := &ptyRun{cmd: exec.Command(name, args...), more: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = s
	if err := p.cmd.Start(); err != nil {
		m.Close()
		s.Close()
		t.Fatal(err)
	}
	s.Close() // the child holds the only slave descriptor: EIO on the master at its exit
	go func() {
		defer m.Close()
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			p.mu.Lock()
			p.out.Write(b[:n])
			if err != nil {
				p.eof = true
			}
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

// waitFor waits until the terminal's output so far satisfies ok, and
// returns it; it fails the test if the output ends without it (the
// minute is a bound for a hung command, not a measure).
func (p *ptyRun) waitFor(t testing.TB, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		p.mu.Lock()
		out, eof, more := p.out.String(), p.eof, p.more
		p.mu.Unlock()
		if ok(out) {
			return out
		}
		if eof {
			t.Fatalf("terminal output ended without %s:\n%q", what, out)
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no %s on the terminal after a minute:\n%q", what, out)
		}
	}
}

// wait waits for the command and the end of its terminal output.
func (p *ptyRun) wait(t testing.TB) (string, error) {
	t.Helper()
	err := p.cmd.Wait()
	out := p.waitFor(t, "the end of output", func(string) bool { p.mu.Lock(); defer p.mu.Unlock(); return p.eof })
	if err != nil {
		err = fmt.Errorf("%v: %w\nstdout: %s\nterminal: %q", p.cmd.Args, err, p.stdout.String(), out)
	}
	return out, err
}

// liveLineRE is a layer's live line: bytes read of the blob's size, and
// the rate.
var liveLineRE = regexp.MustCompile(`layer (\d+): ([0-9.]+ (?:[KMGTPE]i)?B) / ([0-9.]+ (?:[KMGTPE]i)?B)  [0-9.]+ (?:[KMGTPE]i)?B/s`)

// liveLine finds a live line of layer i whose bytes read are not yet
// the size (the layer is in progress), and returns the size.
func liveLine(out string, i int) (string, bool) {
	for _, m := range liveLineRE.FindAllStringSubmatch(out, -1) {
		if m[1] == fmt.Sprint(i) && m[2] != m[3] {
			return m[3], true
		}
	}
	return "", false
}

// finishedLineRE is the line of a finished layer.
var finishedLineRE = regexp.MustCompile(`layer (\d+) (sha256:[0-9a-f]{64}): ([0-9a-f]{64}) \((imported, \d+ bytes read|already present)\)`)

// byteSizeOf formats n as the progress lines do (binary units).
func byteSizeOf(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(1024), 0
	for m := n / 1024; m >= 1024; m /= 1024 {
		div *= 1024
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// checkFinished checks that out names every layer of diffIDs as finished
// and returns the lines.
func checkFinished(t testing.TB, what, out string, diffIDs []string) {
	t.Helper()
	got := map[string]string{}
	for _, m := range finishedLineRE.FindAllStringSubmatch(out, -1) {
		got[m[1]] = m[2]
	}
	for i, d := range diffIDs {
		if got[fmt.Sprint(i)] != d {
			t.Errorf("%s: no finished line for layer %d (%s):\n%q", what, i, d, out)
		}
	}
}

// TestImportProgressTerminal: with stderr on a terminal, a pull shows a
// live line per layer with bytes read, size and rate while the layer's
// blob is in flight (the proxy holds the top blob half sent until the
// line is seen), redrawn in place with cursor-up and erase-line
// sequences, and each finished layer's line replaces its live one; a
// local import of a large layer shows the same. With --quiet the
// terminal stays empty.
func TestImportProgressTerminal(t *testing.T) {
	reg := pushFixtures(t)
	px := newFaultProxy(t, reg.Addr)
	syn := readLayoutImage(t, filepath.Join(syntheticImage(t), "img"), "layer4")
	topIdx := len(syn.LayerDigests) - 1
	top := syn.LayerDigests[topIdx]
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	env := []string{"TERM=xterm"}
	src := "docker://" + px.Addr() + "/synthetic:gzip"

	px.set("hold", top)
	p := startPTY(t, env, binary, "import", "--repo", rp, "--tls-verify=false", "--ref", "held", src)
	select {
	case <-px.hit:
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		p.wait(t)
		t.Fatal("the import never reached the top blob")
	}
	// While the top blob is held, its line shows it in progress, and
	// the layers below it, which do not need it, finish.
	out := p.waitFor(t, fmt.Sprintf("a live line of layer %d and the lines of the layers below", topIdx), func(s string) bool {
		if _, ok := liveLine(s, topIdx); !ok {
			return false
		}
		n := 0
		for _, m := range finishedLineRE.FindAllStringSubmatch(s, -1) {
			if i, err := strconv.Atoi(m[1]); err == nil && i < topIdx && m[2] == syn.DiffIDs[i] {
				n++
			}
		}
		return n >= topIdx
	})
	size, _ := liveLine(out, topIdx)
	if want := byteSizeOf(syn.LayerSizes[topIdx]); size != want {
		t.Errorf("live line of layer %d: size %s, want the blob's %s", topIdx, size, want)
	}
	for _, m := range finishedLineRE.FindAllStringSubmatch(out, -1) {
		if m[1] == fmt.Sprint(topIdx) {
			t.Errorf("layer %d finished while its blob was held:\n%q", topIdx, out)
		}
	}
	close(px.release)
	out, err := p.wait(t)
	noErr(t, err)
	px.set("", "")
	checkFinished(t, "at the end", out, syn.DiffIDs)
	if !regexp.MustCompile(`\x1b\[\d+A`).MatchString(out) || !strings.Contains(out, "\r\x1b[2K") {
		t.Errorf("no redraw in place (cursor up, erase line):\n%q", out)
	}
	if !strings.Contains(out, "ref held") {
		t.Errorf("no ref line:\n%q", out)
	}
	if got := strings.TrimSpace(p.stdout.String()); got != resolveRev(t, rp, "held") {
		t.Errorf("stdout %q, want the commit of ref held", got)
	}
	checkoutEquals(t, rp, "held", filepath.Join(syntheticImage(t), "ref", "rootfs"), dir)

	// --quiet: nothing on the terminal, the commit on stdout.
	q := startPTY(t, env, binary, "import", "--repo", rp, "--tls-verify=false", "-q", "--ref", "quiet", "docker://"+reg.Addr+"/synthetic:zstd")
	out, err = q.wait(t)
	noErr(t, err)
	if out != "" {
		t.Errorf("--quiet on a terminal printed %q", out)
	}
	if strings.TrimSpace(q.stdout.String()) != resolveRev(t, rp, "quiet") {
		t.Errorf("--quiet: stdout %q", q.stdout.String())
	}

	// A local import of a large layer: its live line at once, its size
	// that of the blob.
	big := handImage{Layers: [][]byte{
		makeTar(t, dirEnt("etc"), fileEnt("etc/hostname", "big\n")),
		makeTar(t, dirEnt("srv"), tarEntry{Name: "srv/big", Body: string(noiseBytes(7, 24<<20))}),
	}}
	layout := filepath.Join(dir, "big")
	big.write(t, layout)
	li := readLayoutImage(t, layout, "latest")
	b := startPTY(t, env, binary, "import", "--repo", rp, "--ref", "big", "oci:"+layout+":latest")
	out, err = b.wait(t)
	noErr(t, err)
	size, ok := liveLine(out, 1)
	if !ok {
		t.Fatalf("local import: no live line of layer 1 in progress:\n%q", clip(out, 2000))
	}
	if want := byteSizeOf(li.LayerSizes[1]); size != want {
		t.Errorf("local import: live line of layer 1: size %s, want %s", size, want)
	}
	checkFinished(t, "local import", out, li.DiffIDs)
}

// TestImportProgressPlain: with stderr not a terminal (a pipe, or
// TERM=dumb on a terminal), an import prints one line per finished
// layer and the ref, nothing else; --quiet prints nothing.
func TestImportProgressPlain(t *testing.T) {
	reg := pushFixtures(t)
	syn := readLayoutImage(t, filepath.Join(syntheticImage(t), "img"), "layer4")
	dir := t.TempDir()
	rp := initImageRepo(t, dir, "repo", "bare-user")
	src := "docker://" + reg.Addr + "/synthetic:gzip"
	check := func(what, out, ref string, reused bool) {
		t.Helper()
		lines := strings.Split(strings.TrimRight(strings.ReplaceAll(out, "\r\n", "\n"), "\n"), "\n")
		if len(lines) != len(syn.DiffIDs)+1 {
			t.Fatalf("%s: want %d layer lines and the ref:\n%s", what, len(syn.DiffIDs), out)
		}
		for i, l := range lines[:len(syn.DiffIDs)] {
			m := finishedLineRE.FindStringSubmatch(l)
			if m == nil || m[0] != l || m[1] != fmt.Sprint(i) || m[2] != syn.DiffIDs[i] || (m[4] == "already present") != reused {
				t.Errorf("%s: line %d: %q", what, i, l)
			}
		}
		if lines[len(lines)-1] != "ref "+ref {
			t.Errorf("%s: last line %q, want the ref", what, lines[len(lines)-1])
		}
	}
	r := omRun("import", "--repo", rp, "--tls-verify=false", "--ref", "plain", src)
	if r.Code != 0 {
		t.Fatalf("import:\n%s", r)
	}
	check("pipe", r.Stderr, "plain", false)
	if strings.Contains(r.Stderr, "\x1b") {
		t.Errorf("escape sequences on a pipe: %q", r.Stderr)
	}
	// TERM=dumb on a terminal: the plain lines (the layers are present now).
	p := startPTY(t, []string{"TERM=dumb"}, binary, "import", "--repo", rp, "--tls-verify=false", "--ref", "dumb", src)
	out, err := p.wait(t)
	noErr(t, err)
	check("TERM=dumb", out, "dumb", true)
	if strings.Contains(out, "\x1b") {
		t.Errorf("escape sequences with TERM=dumb: %q", out)
	}
	r = omRun("import", "--repo", rp, "--tls-verify=false", "-q", "--ref", "quiet", src)
	if r.Code != 0 || r.Stderr != "" || strings.TrimSpace(r.Stdout) != resolveRev(t, rp, "quiet") {
		t.Errorf("--quiet: want only the commit on stdout:\n%s", r)
	}
}
