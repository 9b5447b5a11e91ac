package main

import (
	"encoding/json"
	"fmt"

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
root, without -f), and serves every mount it makes until each is
unmounted. A mount then costs no process start (two otherwise).
Each mount is pinned and logged as a mount of its own daemon would be.
The service is two processes: a small supervisor, which holds the socket,
every mount's /dev/fuse descriptor and its pin, and its worker, which
serves the mounts. A worker that dies, even by SIGKILL, is restarted at
once and serves every mount again; the mounts and their pins stay.
SIGHUP, or 'serve --upgrade', replaces the supervisor and the worker with
the executable now at the supervisor's path, without failing a request.
'serve --status' prints the supervisor's pid, its worker's and its counts.
SIGTERM or SIGINT unmounts every mount and exits. Only root may connect.
A stale socket at --socket (one nobody accepts on) is replaced; a live one,
or anything that is not a socket, is an error and is left alone.`,
	Flags: []cli.Flag{
		socketFlag(),
		&cli.BoolFlag{Name: "upgrade", Usage: "ask the service at --socket to upgrade to the executable now at its path, and wait until it has"},
		&cli.BoolFlag{Name: "status", Usage: "print the status of the service at --socket as JSON"},
	},
	Action: func(c *cli.Context) error {
		switch {
		case c.Bool("upgrade") && c.Bool("status"):
			return usageError(c, "serve: --upgrade and --status exclude each other")
		case c.Bool("upgrade"):
			st, err := mount.Upgrade(c.String("socket"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "upgraded: supervisor %d runs %s, worker %d\n", st.Supervisor, st.Exe, st.Worker)
			return nil
		case c.Bool("status"):
			st, err := mount.ServiceStatus(c.String("socket"))
			if err != nil {
				return err
			}
			return json.NewEncoder(c.App.Writer).Encode(st)
		}
		return mount.Serve(c.String("socket"), c.App.ErrWriter)
	},
})
