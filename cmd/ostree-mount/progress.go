package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ostree-mount/ostree-mount/image"
)

// importProgress shows an import's layers on stderr: on a terminal, one
// live line per layer (bytes read of the blob's size, and the rate),
// redrawn in place; otherwise one line per finished layer.
type importProgress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	ls    map[int]*layerLine
	shown int // lines drawn last time (terminal)
	stop  chan struct{}
	done  chan struct{}
}

type layerLine struct {
	done, total int64
	start       time.Time
	final       string // set when the layer is finished
}

// isTerminal reports whether w is a terminal that can redraw lines: a
// file the terminal ioctls accept (not merely a character device, which
// /dev/null is too) and $TERM other than "dumb".
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

// attach sets o's progress callbacks; finish must be called after the
// import.
func newImportProgress(w io.Writer, o *image.ImportOptions) *importProgress {
	p := &importProgress{w: w, tty: isTerminal(w), ls: map[int]*layerLine{}, stop: make(chan struct{}), done: make(chan struct{})}
	o.Progress = p.layer
	if p.tty {
		o.BlobProgress = p.bytes
		go p.loop()
	} else {
		close(p.done)
	}
	return p
}

func (p *importProgress) line(i int) *layerLine {
	l, ok := p.ls[i]
	if !ok {
		l = &layerLine{start: time.Now(), total: -1}
		p.ls[i] = l
	}
	return l
}

// bytes records a blob's progress. A layer's first bytes draw its line
// at once, so that even a layer read before the next tick shows one.
func (p *importProgress) bytes(i int, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, seen := p.ls[i]
	l := p.line(i)
	l.done, l.total = done, total
	if !seen {
		p.drawLocked()
	}
}

func (p *importProgress) layer(r image.LayerReport) {
	how := fmt.Sprintf("imported, %d bytes read", r.Bytes)
	if r.Reused {
		how = "already present"
	}
	msg := fmt.Sprintf("layer %d %s: %s (%s)", r.Index, r.DiffID, r.Commit, how)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		fmt.Fprintln(p.w, msg)
		return
	}
	p.line(r.Index).final = msg
}

func (p *importProgress) loop() {
	defer close(p.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.draw()
			return
		case <-t.C:
			p.draw()
		}
	}
}

// draw redraws the layers' lines in place.
func (p *importProgress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawLocked()
}

func (p *importProgress) drawLocked() {
	var idx []int
	for i := range p.ls {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var b strings.Builder
	if p.shown > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.shown)
	}
	for _, i := range idx {
		l := p.ls[i]
		b.WriteString("\r\x1b[2K")
		if l.final != "" {
			b.WriteString(l.final)
		} else {
			fmt.Fprintf(&b, "layer %d: %s", i, byteSize(l.done))
			if l.total >= 0 {
				fmt.Fprintf(&b, " / %s", byteSize(l.total))
			}
			if s := time.Since(l.start).Seconds(); s > 0 {
				fmt.Fprintf(&b, "  %s/s", byteSize(int64(float64(l.done)/s)))
			}
		}
		b.WriteString("\n")
	}
	p.shown = len(idx)
	io.WriteString(p.w, b.String())
}

// finish stops the live display after its last redraw.
func (p *importProgress) finish() {
	if p.tty {
		select {
		case <-p.stop:
		default:
			close(p.stop)
		}
	}
	<-p.done
}

// byteSize formats n in binary units.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
