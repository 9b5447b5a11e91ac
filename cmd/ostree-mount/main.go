// Command ostree-mount stores container images in OSTree repositories and
// mounts any commit lazily through FUSE.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/ostree-mount/ostree-mount/mount"
)

func main() {
	// OSTREE_MOUNT_CPUPROFILE=FILE writes a CPU profile, for benchmarks.
	if p := os.Getenv("OSTREE_MOUNT_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	var err error
	switch {
	case mount.IsDaemon():
		// A mount's daemon, started by the mount command.
		err = mount.RunDaemon()
	case mount.IsWorker():
		// The mount service's worker, started by 'serve'.
		err = mount.RunWorker(os.Stderr)
	default:
		app := New()
		err = app.Run(permuteArgs(app, os.Args))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ostree-mount: error: %v\n", err)
		pprof.StopCPUProfile()
		os.Exit(exitCode(err))
	}
}
