package mount

import "github.com/ostree-mount/ostree-mount/fs"

// withState sets the mount's fs state directory (fs.Options.State), and
// whether fs takes over a live mount from it (fs.Options.Resume).
func withState(o fs.Options, dir string, resume bool) fs.Options {
	o.State, o.Resume = dir, resume
	return o
}
