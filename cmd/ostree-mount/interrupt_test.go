package main

import (
	"bytes"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the signal goroutine's writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInterruptible: SIGTERM cancels the command's context; a command
// that does not return within the grace period (a step blocked in the
// kernel) ends the process with status 1; one that returns does not.
func TestInterruptible(t *testing.T) {
	oldGrace, oldExit := interruptGrace, exitProcess
	defer func() { interruptGrace, exitProcess = oldGrace, oldExit }()
	interruptGrace = 200 * time.Millisecond
	exited := make(chan int, 1)
	exitProcess = func(code int) { exited <- code }

	// A command that stops: cancelled, no exit.
	var errw lockedBuffer
	ctx, stop := interruptibleOn(&errw, "prune")
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	stop()
	if !strings.Contains(errw.String(), "prune: terminated: stopping") {
		t.Errorf("message %q", errw.String())
	}

	// A command stuck past the grace period: the process exits 1.
	errw = lockedBuffer{}
	ctx, stop = interruptibleOn(&errw, "import")
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	select {
	case code := <-exited:
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a command stuck after SIGINT kept the process alive")
	}
	if !strings.Contains(errw.String(), "import: did not stop within") {
		t.Errorf("message %q", errw.String())
	}
	select {
	case <-exited:
		t.Error("exit called twice")
	default:
	}
}
