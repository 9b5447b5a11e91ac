package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/image"
	"github.com/ostree-mount/ostree-mount/image/source"
	"github.com/ostree-mount/ostree-mount/repo"
)

var _ = register(&cli.Command{
	Name:      "import",
	Usage:     "import an OCI or Docker image; prints the manifest commit's checksum",
	ArgsUsage: "SOURCE",
	Description: `SOURCE is oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]
or docker://HOST[:PORT]/NAME[:TAG|@DIGEST] (a registry; only the layers the
repository lacks are downloaded).
Each layer becomes a layer commit (shared with other images through a weak
ref refs/weak/ostree-mount/layer/sha256/DIFFID); the image becomes a manifest
commit whose related list names them, base first, under a strong ref.
The default ref is image/NAME/TAG (image/sha256/DIGEST for unnamed images).
Modes: layered (composed on demand), precomposed (composed tree stored too),
squashed (composed tree only; the layers become garbage for prune).`,
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "ref", Usage: "strong ref for the image (default image/NAME/TAG)"},
		&cli.StringFlag{Name: "mode", Value: compose.ModeLayered, Usage: "layered, precomposed or squashed"},
		&cli.StringFlag{Name: "platform", Usage: "OS/ARCH[/VARIANT] to pick from a multi-platform index (default: this host)"},
		&cli.Int64Flag{Name: "max-layer-bytes", Value: image.DefaultLimits.MaxBytes, Usage: "decompressed bytes allowed per layer"},
		&cli.Int64Flag{Name: "max-entries", Value: image.DefaultLimits.MaxEntries, Usage: "tar entries allowed per layer"},
		&cli.IntFlag{Name: "max-path-length", Value: image.DefaultLimits.MaxPathLen, Usage: "bytes allowed in a stored path (an entry's path resolved through symlinks)"},
		&cli.IntFlag{Name: "max-depth", Value: image.DefaultLimits.MaxDepth, Usage: "components allowed in a stored path (an entry's path resolved through symlinks)"},
		&cli.IntFlag{Name: "max-layers", Value: image.DefaultLimits.MaxLayers, Usage: "layers allowed per image"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress on stderr"},
		gpgSignFlag(), gpgHomedirFlag(),
	}, registryFlags...),
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() != 1 {
			return usageError(c, "import: want one SOURCE")
		}
		ctx, stop := interruptible(c)
		defer stop()
		src := c.Args().First()
		img, err := source.Open(ctx, src, source.Options{Platform: c.String("platform"), Registry: registryOptions(c)})
		if err != nil {
			return err
		}
		defer img.Close()
		lim := image.DefaultLimits
		lim.MaxBytes = c.Int64("max-layer-bytes")
		lim.MaxEntries = c.Int64("max-entries")
		lim.MaxPathLen = c.Int("max-path-length")
		lim.MaxDepth = c.Int("max-depth")
		lim.MaxLayers = c.Int("max-layers")
		if lim.MaxLayers < 1 || lim.MaxDepth < 1 || lim.MaxPathLen < 1 {
			return usageError(c, "import: --max-layers, --max-depth and --max-path-length must be at least 1")
		}
		o := image.ImportOptions{Ref: c.String("ref"), Mode: c.String("mode"), Source: src, Limits: lim}
		if strings.HasPrefix(src, "docker://") {
			o.Jobs = registryJobs
		}
		var prog *importProgress
		if !c.Bool("quiet") {
			prog = newImportProgress(c.App.ErrWriter, &o)
		}
		res, err := image.Import(ctx, r, img, o)
		if prog != nil {
			prog.finish()
		}
		if err != nil {
			return fmt.Errorf("import %s: %w", src, err)
		}
		if err := gpgSignCommit(ctx, c, r, res.Commit); err != nil {
			return fmt.Errorf("import %s: %w", src, err)
		}
		if !c.Bool("quiet") {
			fmt.Fprintf(c.App.ErrWriter, "ref %s\n", res.Ref)
		}
		fmt.Fprintln(c.App.Writer, res.Commit)
		return nil
	}),
})
