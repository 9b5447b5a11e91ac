package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/mount"
)

func socketFlag() cli.Flag {
	return &cli.StringFlag{Name: "socket", Value: mount.DefaultSocket, EnvVars: []string{"OSTREE_MOUNT_SOCKET"},
		Usage: "the socket of the mount service ('ostree-mount serve'); a background mount as root asks it first"}
}

var _ = register(&cli.Command{
	Name:  "serve",
	Usage: "serve mounts from one long-lived process, so that a mount starts no process",
	Description: `Listens on --socket for mount requests from 'ostree-mount mount' (as
root, without -f), and serves every mount it makes from this process until
each is unmounted. A mount then costs no process start (two otherwise), at
the price of isolation: if this process dies, all its mounts die with it.
Each mount is pinned and logged as a mount of its own daemon would be.
SIGTERM or SIGINT unmounts them all and exits. Only root may connect.
A stale socket at --socket (one nobody accepts on) is replaced; a live one,
or anything that is not a socket, is an error and is left alone.`,
	Flags: []cli.Flag{socketFlag()},
	Action: func(c *cli.Context) error {
		return mount.Serve(c.String("socket"), c.App.ErrWriter)
	},
})
