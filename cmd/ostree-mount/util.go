package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// stdout returns a buffered writer on the app's output.
func stdout(c *cli.Context) *bufio.Writer { return bufio.NewWriterSize(c.App.Writer, 64<<10) }

// interruptGrace is how long a command may take to stop after SIGINT or
// SIGTERM cancelled its context.
var interruptGrace = 10 * time.Second

// exitProcess ends the process when a command does not stop in time.
var exitProcess = os.Exit

// interruptible returns the context of a command's blocking steps, which
// the first SIGINT or SIGTERM cancels, and a stop for the command to
// defer. The command then returns its error (the context's), aborting
// what it started: a transaction removes its staging directory and
// releases the repository lock. A step that cannot heed the context (a
// read blocked in the kernel) must not keep the process, and the lock,
// alive: if the command has not returned interruptGrace after the signal,
// the process exits with status 1, and what it staged is left for the
// next transaction to clean. A second signal kills the process at once.
func interruptible(c *cli.Context) (context.Context, func()) {
	return interruptibleOn(c.App.ErrWriter, c.Command.Name)
}

func interruptibleOn(errw io.Writer, what string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	grace, exit := interruptGrace, exitProcess
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case sig := <-sigs:
			signal.Stop(sigs) // a second signal has its default effect
			fmt.Fprintf(errw, "ostree-mount: %s: %v: stopping\n", what, sig)
			cancel()
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
				fmt.Fprintf(errw, "ostree-mount: error: %s: did not stop within %v of %v; exiting\n", what, grace, sig)
				exit(1)
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
