package mount

import "github.com/ostree-mount/ostree-mount/fs"

// withState sets the mount's fs state directory (fs.Options.State), and
// whether fs takes over a live mount from it (fs.Options.Resume).
// TODO(merge): the fields land with the lead's fs change.
func withState(o fs.Options, dir string, resume bool) fs.Options {
	_, _ = dir, resume
	return o
}
