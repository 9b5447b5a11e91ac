package main

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/repo"
)

// exitErr carries a specific exit status.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// repoFlag is --repo, on the app and on every command, so that it may
// come before or after the command name as with ostree.
func repoFlag(global bool) cli.Flag {
	f := &cli.StringFlag{Name: "repo", Usage: "path to the OSTree repository (default: $OSTREE_REPO, then /ostree/repo)"}
	if global {
		f.EnvVars = []string{"OSTREE_REPO"}
		f.Value = "/ostree/repo"
	}
	return f
}

// repoPath returns the --repo given to the command, or else the global one
// (which falls back to $OSTREE_REPO and /ostree/repo).
func repoPath(c *cli.Context) string {
	for _, ctx := range c.Lineage() {
		if slices.Contains(ctx.LocalFlagNames(), "repo") {
			return ctx.String("repo")
		}
	}
	if v := os.Getenv("OSTREE_REPO"); v != "" {
		return v
	}
	return "/ostree/repo"
}

func openRepo(c *cli.Context) (*repo.Repo, error) {
	return repo.Open(repoPath(c))
}

// withRepo wraps a command action that needs the repository.
func withRepo(fn func(c *cli.Context, r *repo.Repo) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		r, err := openRepo(c)
		if err != nil {
			return err
		}
		defer r.Close()
		return fn(c, r)
	}
}

// commands lists every subcommand; each file of this package adds one.
var commands []*cli.Command

func register(cmd *cli.Command) *cli.Command {
	cmd.Flags = append([]cli.Flag{repoFlag(false)}, cmd.Flags...)
	commands = append(commands, cmd)
	return cmd
}

// version is what --version prints; a build sets it with
// -ldflags "-X main.version=...".
var version = "dev"

// New returns the CLI application.
func New() *cli.App {
	// --version only: -v is a command's own flag (remote summary -v).
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version"}
	app := &cli.App{
		Name:                   "ostree-mount",
		Version:                version,
		Usage:                  "store container images in OSTree and mount commits lazily",
		UsageText:              "ostree-mount [--repo PATH] COMMAND [options] [args]",
		Flags:                  append([]cli.Flag{repoFlag(true)}, mountFlags()...),
		Commands:               commands,
		UseShortOptionHandling: true,
		HideHelpCommand:        true,
		Action: func(c *cli.Context) error {
			switch c.NArg() {
			case 0:
				return cli.ShowAppHelp(c)
			case 2:
				// ostree-mount REV MOUNTPOINT
				return runMount(c)
			}
			return usageError(c, "unknown command %q (or give REV MOUNTPOINT to mount)", c.Args().First())
		},
	}
	app.Setup()
	return app
}

func usageError(c *cli.Context, format string, args ...any) error {
	return &exitErr{code: 2, err: fmt.Errorf(format, args...)}
}
