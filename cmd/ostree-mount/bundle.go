package main

import (
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/mount"
)

var _ = register(&cli.Command{
	Name:      "bundle",
	Usage:     "make an OCI runtime bundle of an image (config.json and a lazily mounted rootfs), or remove one",
	ArgsUsage: "REV DIR | --remove DIR",
	Description: revHelp + `
Writes DIR/config.json, generated from the image config as 'umoci unpack'
does (the user resolved through the image's own /etc/passwd and
/etc/group), and mounts the image read-only at DIR/rootfs; returns once
the bundle is ready for 'runc run -b DIR ID'. DIR must not exist or be
empty. With --writable, DIR/rootfs is a kernel overlayfs over the image
(mounted at DIR/lower), its upper and work directories in DIR: the
container's writes land there, never in the repository (as root only).
The image stays pinned against prune while the bundle exists, also when
its ref is deleted. 'bundle --remove DIR' unmounts the overlay, then the
image (also when its daemon died), and deletes DIR; it refuses a
directory that is not a bundle made by this command (no ` + mount.BundleMarker + `).
The mount options are those of 'mount'; other users may access the
image (--allow-other) by default as root, since a container's processes
run as the image's user.`,
	Flags: append(mountFlags(),
		&cli.BoolFlag{Name: "writable", Usage: "make DIR/rootfs a writable overlay on the image (writes land in DIR)"},
		&cli.BoolFlag{Name: "remove", Usage: "unmount and delete the bundle DIR"},
	),
	Action: func(c *cli.Context) error {
		if c.Bool("remove") {
			if c.NArg() != 1 {
				return usageError(c, "bundle --remove: want DIR")
			}
			dir, err := filepath.Abs(c.Args().First())
			if err != nil {
				return err
			}
			return mount.RemoveBundle(dir)
		}
		if c.NArg() != 2 {
			return usageError(c, "bundle: want REV DIR")
		}
		dir, err := filepath.Abs(c.Args().Get(1))
		if err != nil {
			return err
		}
		if c.Bool("foreground") {
			return usageError(c, "bundle: --foreground: a bundle's image is always mounted in the background")
		}
		o, err := mountOptions(c, c.Args().Get(0), dir)
		if err != nil {
			return err
		}
		if !c.IsSet("allow-other") && os.Geteuid() == 0 {
			o.FS.AllowOther = true
		}
		return mount.MakeBundle(mount.BundleOptions{Mount: o, Dir: dir, Writable: c.Bool("writable")})
	},
})
