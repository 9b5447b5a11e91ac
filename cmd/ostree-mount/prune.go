package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/repo"
)

var _ = register(&cli.Command{
	Name:      "prune",
	Usage:     "delete objects that no ref, pin or related list keeps alive",
	ArgsUsage: " ",
	Description: `Roots are refs/heads, refs/remotes, refs/mirrors and every commit pinned by a
live process (a mount, or 'ostree-mount pin'). From each root, parents are
kept to --depth, and every commit named in a live commit's related list is
kept with its tree, transitively. Weak refs (refs/weak/) keep nothing alive;
those whose commit is deleted are deleted last. Unlike 'ostree prune', this
always prunes unreferenced commits (like --refs-only). The exclusive
repository lock is held for the whole prune.`,
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"no-prune"}, Usage: "only report what would be deleted"},
		&cli.IntFlag{Name: "depth", Value: -1, Usage: "parents to keep per ref (-1: all)"},
		&cli.StringFlag{Name: "keep-younger-than", Usage: "keep parents with timestamps at or after `DATE` (replaces --depth)"},
		&cli.BoolFlag{Name: "refs-only", Usage: "accepted for compatibility; always on"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		o := repo.PruneOptions{Depth: c.Int("depth"), DryRun: c.Bool("dry-run")}
		if s := c.String("keep-younger-than"); s != "" {
			t, err := parseTimestamp(s)
			if err != nil {
				return fmt.Errorf("--keep-younger-than: %w", err)
			}
			o.KeepYoungerThan = t
		}
		ctx, stop := interruptible(c)
		defer stop()
		plan, err := r.Prune(ctx, o)
		if err != nil {
			return err
		}
		verb := "Deleted"
		if o.DryRun {
			verb = "Would delete"
		}
		w := stdout(c)
		fmt.Fprintf(w, "Total objects: %d\n", plan.Total)
		fmt.Fprintf(w, "%s %d objects, %d bytes (%s) freed\n", verb, plan.Deleted(), plan.Bytes, humanBytes(plan.Bytes))
		fmt.Fprintf(w, "%s %d weak refs\n", verb, len(plan.WeakRefs))
		return w.Flush()
	}),
})

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

var _ = register(&cli.Command{
	Name:      "pin",
	Usage:     "keep a commit alive against prune while a command runs, or until killed",
	ArgsUsage: "REV [-- COMMAND [ARGS...]]",
	Description: `Prints the pinned commit's checksum once the pin is in place. With a
command, runs it and exits with its status; without, waits for SIGINT or
SIGTERM. The pin dies with the process, however it ends.`,
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() < 1 {
			return usageError(c, "pin: want REV")
		}
		sum, err := r.Resolve(c.Args().First())
		if err != nil {
			return err
		}
		pin, err := r.Pin(context.Background(), sum)
		if err != nil {
			return err
		}
		defer pin.Release()
		fmt.Fprintln(c.App.Writer, sum)
		args := c.Args().Tail()
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		if len(args) == 0 {
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
			<-ch
			return nil
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return &exitErr{code: ee.ExitCode(), err: fmt.Errorf("%s: %w", args[0], err)}
			}
			return err
		}
		return nil
	}),
})
