package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/remote"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/sign"
)

var _ = register(&cli.Command{
	Name:  "remote",
	Usage: "configure remote repositories (ostree's [remote \"NAME\"] config groups)",
	Subcommands: []*cli.Command{
		{
			Name:      "add",
			Usage:     "add a remote",
			ArgsUsage: "NAME URL",
			Flags: []cli.Flag{
				repoFlag(false),
				&cli.BoolFlag{Name: "no-gpg-verify", Usage: "write gpg-verify=false"},
				&cli.StringSliceFlag{Name: "set", Usage: "set config `KEY=VALUE` of the remote (repeatable)"},
				&cli.BoolFlag{Name: "if-not-exists", Usage: "do nothing if the remote exists"},
				&cli.StringSliceFlag{Name: "gpg-import", Usage: "import the GPG keys of `FILE` (armoured or binary) into the remote's keyring, REPO/NAME.trustedkeys.gpg, as ostree does (repeatable)"},
			},
			Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
				if c.NArg() != 2 {
					return usageError(c, "remote add: want NAME URL")
				}
				name := c.Args().Get(0)
				if err := remote.Add(r, name, c.Args().Get(1), remote.AddOptions{
					NoGPGVerify: c.Bool("no-gpg-verify"), Set: c.StringSlice("set"), IfNotExists: c.Bool("if-not-exists")}); err != nil {
					return err
				}
				for _, f := range c.StringSlice("gpg-import") {
					n, err := sign.ImportGPGKeys(r.Path(), name, f)
					if err != nil {
						return fmt.Errorf("--gpg-import %s: %w", f, err)
					}
					fmt.Fprintf(stdout(c), "Imported %d GPG key(s) to remote %q\n", n, name)
				}
				return nil
			}),
		},
		{
			Name:      "list",
			Usage:     "list remotes",
			ArgsUsage: " ",
			Flags:     []cli.Flag{repoFlag(false), &cli.BoolFlag{Name: "show-urls", Aliases: []string{"u"}, Usage: "show the URLs"}},
			Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
				rms, err := remote.List(r)
				if err != nil {
					return err
				}
				sort.Slice(rms, func(i, j int) bool { return rms[i].Name < rms[j].Name })
				w := 0
				for _, rm := range rms {
					w = max(w, len(rm.Name))
				}
				out := stdout(c)
				for _, rm := range rms {
					if c.Bool("show-urls") {
						fmt.Fprintf(out, "%-*s  %s\n", w, rm.Name, rm.URL)
					} else {
						fmt.Fprintln(out, rm.Name)
					}
				}
				return out.Flush()
			}),
		},
		{
			Name:      "delete",
			Usage:     "delete a remote",
			ArgsUsage: "NAME",
			Flags:     []cli.Flag{repoFlag(false), &cli.BoolFlag{Name: "if-exists", Usage: "do nothing if the remote does not exist"}},
			Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
				if c.NArg() != 1 {
					return usageError(c, "remote delete: want NAME")
				}
				return remote.Delete(r, c.Args().First(), c.Bool("if-exists"))
			}),
		},
		{
			Name:      "refs",
			Usage:     "list the refs of a remote's summary",
			ArgsUsage: "NAME",
			Flags:     []cli.Flag{repoFlag(false)},
			Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
				if c.NArg() != 1 {
					return usageError(c, "remote refs: want NAME")
				}
				ctx, stop := interruptible(c)
				defer stop()
				name := c.Args().First()
				rm, err := remote.Lookup(r, name)
				if err != nil {
					return err
				}
				f, err := remote.NewFetcher(rm, 1, nil)
				if err != nil {
					return err
				}
				defer f.Close()
				s, err := remote.ReadSummary(ctx, f)
				if err != nil {
					return err
				}
				if s == nil {
					return fmt.Errorf("remote %s has no summary file", name)
				}
				out := stdout(c)
				for _, ref := range s.Refs {
					fmt.Fprintf(out, "%s:%s\n", name, ref.Name)
				}
				return out.Flush()
			}),
		},
	},
})

var _ = register(&cli.Command{
	Name:      "pull",
	Usage:     "fetch refs of a remote, with everything they need",
	ArgsUsage: "REMOTE [REF...]",
	Description: `Fetches each REF (all refs of the remote's summary when none is named) with
its commit, trees, files and, for an image, its layer commits, and sets
refs/remotes/REMOTE/REF. A failed or interrupted pull stores nothing.`,
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() < 1 {
			return usageError(c, "pull: want REMOTE [REF...]")
		}
		ctx, stop := interruptible(c)
		defer stop()
		res, err := remote.Pull(ctx, r, c.Args().First(), c.Args().Slice()[1:], remote.Options{Verifier: sign.NewVerifier(r)})
		if err != nil {
			return err
		}
		out := stdout(c)
		fmt.Fprintln(out, res)
		return out.Flush()
	}),
})

var _ = register(&cli.Command{
	Name:      "summary",
	Usage:     "regenerate (-u) or show (--view) the summary file",
	ArgsUsage: " ",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "update", Aliases: []string{"u"}, Usage: "regenerate the summary from refs/heads"},
		&cli.BoolFlag{Name: "view", Aliases: []string{"v"}, Usage: "print the summary"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if !c.Bool("update") && !c.Bool("view") {
			return usageError(c, "summary: want -u or --view")
		}
		ctx, stop := interruptible(c)
		defer stop()
		if c.Bool("update") {
			if _, err := remote.WriteSummary(ctx, r); err != nil {
				return err
			}
		}
		if !c.Bool("view") {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(r.Path(), "summary"))
		if err != nil {
			return err
		}
		s, err := remote.ParseSummary(b)
		if err != nil {
			return err
		}
		out := stdout(c)
		for _, ref := range s.Refs {
			fmt.Fprintf(out, "* %s\n    Latest Commit (%d bytes):\n      %s\n", ref.Name, ref.Size, ref.Commit)
			if ts, ok := remote.Timestamp(ref.Meta, "ostree.commit.timestamp"); ok {
				fmt.Fprintf(out, "    Timestamp (ostree.commit.timestamp): %s\n", ts.Format(time.RFC3339))
			}
			fmt.Fprintln(out)
		}
		for _, e := range s.Meta {
			if ts, ok := remote.Timestamp(s.Meta, e.Key); ok && strings.HasSuffix(e.Key, "last-modified") {
				fmt.Fprintf(out, "%s: %s\n", e.Key, ts.Format(time.RFC3339))
				continue
			}
			fmt.Fprintf(out, "%s: %v\n", e.Key, e.Value.Value)
		}
		return out.Flush()
	}),
})
