// Command ostree-mount stores container images in OSTree repositories and
// mounts any commit lazily through FUSE.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := New().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "ostree-mount: error: %v\n", err)
		os.Exit(exitCode(err))
	}
}
