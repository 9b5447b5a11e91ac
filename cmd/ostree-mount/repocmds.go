package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/repo"
)

var _ = register(&cli.Command{
	Name:      "init",
	Usage:     "create a repository",
	ArgsUsage: " ",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "mode", Value: "bare", Usage: "bare, bare-user, bare-user-only or archive"},
		&cli.StringFlag{Name: "collection-id", Usage: "the repository's collection ID"},
	},
	Action: func(c *cli.Context) error {
		mode, err := repo.ParseMode(c.String("mode"))
		if err != nil {
			return err
		}
		r, err := repo.Init(repoPath(c), repo.InitOptions{Mode: mode, CollectionID: c.String("collection-id")})
		if err != nil {
			return err
		}
		return r.Close()
	},
})

var _ = register(&cli.Command{
	Name:      "refs",
	Usage:     "list, create or delete refs",
	ArgsUsage: "[NAME [COMMIT]]",
	Description: `Lists refs/heads and refs/remotes (as REMOTE:NAME), or with --weak the weak
refs in refs/weak. --create NAME COMMIT points NAME at COMMIT (any revision);
--delete NAME removes it. Ref names are validated as by ostree.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "create", Usage: "create ref `NAME` pointing at the COMMIT argument"},
		&cli.BoolFlag{Name: "delete", Usage: "delete the named refs"},
		&cli.BoolFlag{Name: "weak", Usage: "operate on weak refs (refs/weak/)"},
		&cli.BoolFlag{Name: "force", Usage: "with --create, replace an existing ref"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		ctx := context.Background()
		refName := func(s string) (repo.RefName, error) {
			if c.Bool("weak") {
				s = strings.TrimPrefix(s, "refs/weak/")
				n := repo.Weak(s)
				return n, n.Validate()
			}
			return repo.ParseRefName(s)
		}
		switch {
		case c.IsSet("create"):
			if c.NArg() != 1 {
				return usageError(c, "refs --create NAME COMMIT: want one COMMIT argument")
			}
			n, err := refName(c.String("create"))
			if err != nil {
				return err
			}
			if !c.Bool("force") {
				if _, err := r.ReadRef(n); err == nil {
					return fmt.Errorf("ref %s exists; use --force to replace it: %w", n, repo.ErrExists)
				}
			}
			sum, err := r.Resolve(c.Args().First())
			if err != nil {
				return err
			}
			if _, err := r.ReadCommit(context.TODO(), sum); err != nil {
				return err
			}
			return r.SetRef(ctx, n, sum)
		case c.Bool("delete"):
			if c.NArg() == 0 {
				return usageError(c, "refs --delete: name at least one ref")
			}
			for _, a := range c.Args().Slice() {
				n, err := refName(a)
				if err != nil {
					return err
				}
				if err := r.DeleteRef(ctx, n); err != nil {
					return err
				}
			}
			return nil
		}
		kinds := []repo.RefKind{repo.RefHead, repo.RefRemote}
		if c.Bool("weak") {
			kinds = []repo.RefKind{repo.RefWeak}
		}
		refs, err := r.ListRefs(kinds...)
		if err != nil {
			return err
		}
		w := stdout(c)
		for _, ref := range refs {
			name := ref.Name.String()
			if ref.Name.Kind == repo.RefWeak {
				name = ref.Name.Name
			}
			if c.NArg() > 0 && !strings.HasPrefix(name, c.Args().First()) {
				continue
			}
			fmt.Fprintln(w, name)
		}
		return w.Flush()
	}),
})

var _ = register(&cli.Command{
	Name:      "fsck",
	Usage:     "verify every object and the completeness of every commit",
	ArgsUsage: " ",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only problems"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		ctx, stop := interruptible(c)
		defer stop()
		res, err := r.Fsck(ctx)
		if err != nil {
			return err
		}
		if !c.Bool("quiet") {
			for _, d := range res.Cleaned {
				fmt.Fprintf(c.App.Writer, "removed tmp/%s: staging directory of a dead process\n", d)
			}
		}
		for _, p := range res.Problems {
			fmt.Fprintf(c.App.ErrWriter, "%s\n", p)
		}
		// Exposure is a warning: the objects are sound, but other users
		// could use them (repo/exposure.go). It leaves the exit status.
		warns, err := r.CheckExposure(ctx)
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "warning: %v\n", err)
		}
		for _, w := range warns {
			fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", w)
		}
		for _, w := range warns {
			if w.Fix != "" {
				fmt.Fprintf(c.App.ErrWriter, "warning: to fix it: %s\n", w.Fix)
				break
			}
		}
		if !c.Bool("quiet") {
			fmt.Fprintf(c.App.Writer, "checked %d objects, %d commits: %d problems\n", res.Objects, res.Commits, len(res.Problems))
		}
		if len(res.Problems) > 0 {
			return fmt.Errorf("fsck found %d corrupt or missing objects", len(res.Problems))
		}
		return nil
	}),
})
