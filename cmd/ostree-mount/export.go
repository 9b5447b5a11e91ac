package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/image/export"
	"github.com/ostree-mount/ostree-mount/repo"
)

var _ = register(&cli.Command{
	Name:      "export",
	Usage:     "export an image back to an OCI layout or archive, or a Docker archive; prints the manifest digest",
	ArgsUsage: "REF DEST",
	Description: `DEST is oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG].
A layered or precomposed image comes out as it went in: the same config
(image ID) and, from each layer's tar-split record, the same layer tars
(diff_ids); the layers are recompressed (--compress-format; a docker-archive
holds them uncompressed), so blob digests are new. Layers imported before
records existed are exported with synthesized headers and new diff_ids (a
warning names them); a squashed image exports as one layer.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "compress-format", Value: export.Gzip, Usage: "layer compression: gzip, zstd or none"},
		&cli.IntFlag{Name: "jobs", Usage: "layers exported at once (default: the number of CPUs)"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() != 2 {
			return usageError(c, "export: want REF DEST")
		}
		d, err := export.ParseDest(c.Args().Get(1))
		if err != nil {
			return usageError(c, "export: %v", err)
		}
		ctx, stop := interruptible(c)
		defer stop()
		sum, err := r.Resolve(c.Args().First())
		if err != nil {
			return err
		}
		o := export.Options{
			Compression: c.String("compress-format"),
			Jobs:        c.Int("jobs"),
			Warn:        func(msg string) { fmt.Fprintf(c.App.ErrWriter, "ostree-mount: warning: %s\n", msg) },
		}
		res, err := export.Export(ctx, r, sum, d, o)
		if err != nil {
			return fmt.Errorf("export %s to %s: %w", c.Args().First(), d, err)
		}
		fmt.Fprintln(c.App.Writer, res.Manifest)
		return nil
	}),
})
