package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

var _ = register(&cli.Command{
	Name:      "commit",
	Usage:     "commit a directory tree; prints the new commit's checksum",
	ArgsUsage: "[DIR]",
	Description: `The flags mean what they mean to 'ostree commit'. Without --parent, the
branch's current head is the parent. ostree.ref-binding metadata is added
unless --no-bindings is given, so the checksum matches 'ostree commit'.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "branch", Aliases: []string{"b"}, Usage: "branch (ref) to commit to"},
		&cli.BoolFlag{Name: "orphan", Usage: "commit without a branch"},
		&cli.StringFlag{Name: "subject", Aliases: []string{"s"}, Usage: "one-line subject"},
		&cli.StringFlag{Name: "body", Aliases: []string{"m"}, Usage: "full description"},
		&cli.StringSliceFlag{Name: "tree", Usage: "dir=PATH: the tree to commit (same as the DIR argument)"},
		&cli.StringFlag{Name: "timestamp", Usage: "commit time (RFC 3339, 'YYYY-MM-DD HH:MM:SS [+ZZZZ]', or @EPOCH); default $SOURCE_DATE_EPOCH or now"},
		&cli.StringFlag{Name: "owner-uid", Usage: "set every file's uid"},
		&cli.StringFlag{Name: "owner-gid", Usage: "set every file's gid"},
		&cli.BoolFlag{Name: "canonical-permissions", Usage: "uid/gid 0, modes masked to 0755, no xattrs"},
		&cli.BoolFlag{Name: "no-xattrs", Usage: "do not store extended attributes"},
		&cli.BoolFlag{Name: "no-bindings", Usage: "do not add ostree.ref-binding metadata"},
		&cli.StringSliceFlag{Name: "bind-ref", Usage: "add a ref to ostree.ref-binding"},
		&cli.StringFlag{Name: "parent", Usage: "parent commit (a revision, or 'none')"},
		&cli.StringSliceFlag{Name: "add-metadata-string", Usage: "KEY=VALUE string metadata (repeatable)"},
		&cli.StringSliceFlag{Name: "add-metadata", Usage: "KEY=VALUE metadata in GVariant text format, e.g. foo='uint32 7'"},
		&cli.StringSliceFlag{Name: "add-detached-metadata-string", Usage: "KEY=VALUE detached metadata"},
		&cli.StringSliceFlag{Name: "related", Usage: "NAME=COMMIT related entry (repeatable, kept in order)"},
		gpgSignFlag(), gpgHomedirFlag(),
	},
	Action: withRepo(runCommit),
})

func runCommit(c *cli.Context, r *repo.Repo) error {
	dir := ""
	for _, t := range c.StringSlice("tree") {
		kind, v, _ := strings.Cut(t, "=")
		if kind != "dir" {
			return usageError(c, "--tree %q: only dir=PATH is supported here; import tar layers with 'ostree-mount import'", t)
		}
		if dir != "" {
			return usageError(c, "only one tree may be committed")
		}
		dir = v
	}
	if c.NArg() > 1 || c.NArg() == 1 && dir != "" {
		return usageError(c, "commit: want one DIR")
	}
	if c.NArg() == 1 {
		dir = c.Args().First()
	}
	if dir == "" {
		return usageError(c, "commit: no tree given (DIR or --tree=dir=PATH)")
	}
	if c.String("branch") == "" && !c.Bool("orphan") {
		return usageError(c, "commit: a branch (-b) is required, or --orphan")
	}
	o := &repo.CommitOptions{
		Subject:    c.String("subject"),
		Body:       c.String("body"),
		Branch:     c.String("branch"),
		NoBindings: c.Bool("no-bindings"),
		BindRefs:   c.StringSlice("bind-ref"),
	}
	var err error
	if s := c.String("timestamp"); s != "" {
		if o.Timestamp, err = parseTimestamp(s); err != nil {
			return err
		}
	}
	if p := c.String("parent"); p != "" {
		if p == "none" {
			o.NoParent = true
		} else {
			sum, err := r.Resolve(p)
			if err != nil {
				return fmt.Errorf("--parent: %w", err)
			}
			o.Parent = &sum
		}
	}
	for _, kv := range c.StringSlice("add-metadata-string") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageError(c, "--add-metadata-string %q: want KEY=VALUE", kv)
		}
		o.Metadata.SetString(k, v)
	}
	for _, kv := range c.StringSlice("add-metadata") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageError(c, "--add-metadata %q: want KEY=VALUE", kv)
		}
		t, val, err := gvariant.ParseText(nil, v)
		if err != nil {
			return fmt.Errorf("--add-metadata %s: %w", k, err)
		}
		o.Metadata.Set(k, gvariant.Variant{Type: t, Value: val})
	}
	for _, kv := range c.StringSlice("add-detached-metadata-string") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageError(c, "--add-detached-metadata-string %q: want KEY=VALUE", kv)
		}
		o.Detached.SetString(k, v)
	}
	for _, kv := range c.StringSlice("related") {
		name, rev, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return usageError(c, "--related %q: want NAME=COMMIT", kv)
		}
		sum, err := r.Resolve(rev)
		if err != nil {
			return fmt.Errorf("--related %s: %w", name, err)
		}
		if _, err := r.ReadCommit(context.TODO(), sum); err != nil {
			return fmt.Errorf("--related %s: %w", name, err)
		}
		o.Related = append(o.Related, repo.Related{Name: name, Commit: sum})
	}
	for _, flag := range []string{"add-metadata-string", "add-metadata"} {
		for _, kv := range c.StringSlice(flag) {
			if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, sideChannelPrefix) {
				return usageError(c, "--%s %s: keys in the %s namespace are import's: they mark a commit whose side-channel xattrs are honoured", flag, k, sideChannelPrefix)
			}
		}
	}
	mod := &repo.Modifier{Canonical: c.Bool("canonical-permissions"), NoXattrs: c.Bool("no-xattrs"), CheckXattrs: refuseSideChannels(dir)}
	for _, f := range []struct {
		flag string
		dst  **uint32
	}{{"owner-uid", &mod.OwnerUID}, {"owner-gid", &mod.OwnerGID}} {
		if s := c.String(f.flag); s != "" {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return usageError(c, "--%s %q: not a number", f.flag, s)
			}
			v := uint32(n)
			*f.dst = &v
		}
	}
	ctx, stop := interruptible(c)
	defer stop()
	tx, err := r.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Abort()
	root, err := tx.CommitDir(ctx, dir, mod)
	if err != nil {
		return err
	}
	tree, err := root.Write(tx)
	if err != nil {
		return err
	}
	sum, err := tx.WriteCommitFor(tree, root.Meta, o)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if err := gpgSignCommit(ctx, c, r, sum); err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, sum)
	return nil
}

// sideChannelPrefix is the namespace of import's commit metadata keys and
// of its side-channel xattrs (compose/special.go, compose/tree.go).
const sideChannelPrefix = "ostree-mount."

// refuseSideChannels refuses the files of the tree at dir that carry
// xattrs in the user.ostree-mount. namespace. Composition ignores them in
// commits that import did not make, so they would be harmless; but
// dropping them would silently change the user's tree (and the checksum
// 'ostree commit' gives), and keeping them would leave a side channel
// lying in wait for a future bug.
func refuseSideChannels(dir string) func(rel string, xs []repo.Xattr) error {
	return func(rel string, xs []repo.Xattr) error {
		for _, x := range xs {
			if strings.HasPrefix(x.Name, "user."+sideChannelPrefix) {
				return fmt.Errorf("commit %s: xattr %s is reserved for ostree-mount's own side channels; remove it (setfattr -x %s %s) or commit with --no-xattrs",
					filepath.Join(dir, rel), x.Name, x.Name, filepath.Join(dir, rel))
			}
		}
		return nil
	}
}

// parseTimestamp accepts the forms people give `ostree commit --timestamp`:
// RFC 3339, "YYYY-MM-DD[ HH:MM[:SS]][ ±ZZZZ|Z]" (local time without a zone),
// and @EPOCH.
func parseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "@") {
		n, err := strconv.ParseInt(s[1:], 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp %q: bad epoch seconds", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	layouts := []string{
		time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05 Z07:00",
		"2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05 MST",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	for _, l := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(l, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: want RFC 3339 (2020-01-01T00:00:00Z), 'YYYY-MM-DD HH:MM:SS' or @EPOCH", s)
}
