package main

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

const revHelp = `REV is a ref (NAME, REMOTE:NAME, refs/heads/NAME, refs/weak/NAME, ...),
a checksum or a unique checksum prefix; REV^ is its parent.`

var _ = register(&cli.Command{
	Name:        "log",
	Usage:       "show a commit and its parents",
	ArgsUsage:   "REV",
	Description: revHelp,
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() != 1 {
			return usageError(c, "log: want one REV")
		}
		sum, err := r.Resolve(c.Args().First())
		if err != nil {
			return err
		}
		w := stdout(c)
		for {
			cm, err := r.ReadCommit(context.TODO(), sum)
			if err != nil {
				w.Flush()
				return err
			}
			printCommit(w, r, sum, cm, false)
			if !cm.HasParent() {
				break
			}
			if ok, _ := r.HasObject(repo.ObjCommit, cm.Parent); !ok {
				fmt.Fprintf(w, "<< History beyond this commit not fetched >>\n")
				break
			}
			sum = cm.Parent
		}
		return w.Flush()
	}),
})

var _ = register(&cli.Command{
	Name:        "show",
	Usage:       "show a commit, with its related commits and metadata",
	ArgsUsage:   "REV",
	Description: revHelp,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "print-metadata-key", Usage: "print only the value of metadata `KEY`"},
		&cli.StringFlag{Name: "print-detached-metadata-key", Usage: "print only the value of detached metadata `KEY`"},
		&cli.BoolFlag{Name: "print-related", Usage: "print only the related entries, one NAME COMMIT per line"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() != 1 {
			return usageError(c, "show: want one REV")
		}
		sum, err := r.Resolve(c.Args().First())
		if err != nil {
			return err
		}
		cm, err := r.ReadCommit(context.TODO(), sum)
		if err != nil {
			return err
		}
		w := stdout(c)
		defer w.Flush()
		printKey := func(md repo.Metadata, key, what string) error {
			v, ok := md.Get(key)
			if !ok {
				return fmt.Errorf("commit %s has no %s key %q", sum.Str(), what, key)
			}
			fmt.Fprintln(w, gvariant.Print(v.Type, v.Value, true))
			return nil
		}
		switch {
		case c.IsSet("print-metadata-key"):
			return printKey(cm.Metadata, c.String("print-metadata-key"), "metadata")
		case c.IsSet("print-detached-metadata-key"):
			md, err := r.ReadCommitMeta(sum)
			if err != nil {
				return err
			}
			return printKey(md, c.String("print-detached-metadata-key"), "detached metadata")
		case c.Bool("print-related"):
			for _, rel := range cm.Related {
				fmt.Fprintf(w, "%s %s\n", rel.Name, rel.Commit)
			}
			return nil
		}
		printCommit(w, r, sum, cm, true)
		return nil
	}),
})

// printCommit prints a commit as `ostree show` does; full adds the related
// list and all metadata.
func printCommit(w *bufio.Writer, r *repo.Repo, sum repo.Checksum, cm *repo.Commit, full bool) {
	fmt.Fprintf(w, "commit %s\n", sum)
	if cm.HasParent() {
		fmt.Fprintf(w, "Parent:  %s\n", cm.Parent)
	}
	fmt.Fprintf(w, "ContentChecksum:  %s\n", cm.ContentChecksum())
	fmt.Fprintf(w, "Date:  %s\n", time.Unix(int64(cm.Timestamp), 0).UTC().Format("2006-01-02 15:04:05 -0700"))
	if v, ok := cm.Metadata.String("version"); ok {
		fmt.Fprintf(w, "Version: %s\n", v)
	}
	if full {
		for _, rel := range cm.Related {
			fmt.Fprintf(w, "Related: %s %s\n", rel.Commit, rel.Name)
		}
		for _, e := range cm.Metadata {
			fmt.Fprintf(w, "Metadata: %s = %s\n", e.Key, gvariant.Print(e.Value.Type, e.Value.Value, true))
		}
		if md, err := r.ReadCommitMeta(sum); err == nil {
			for _, e := range md {
				// Blobs (metadata indexes, tar records) by size, not byte by byte.
				if b, ok := e.Value.Value.([]byte); ok && len(b) > 256 {
					fmt.Fprintf(w, "DetachedMetadata: %s = <%d bytes>\n", e.Key, len(b))
					continue
				}
				fmt.Fprintf(w, "DetachedMetadata: %s = %s\n", e.Key, gvariant.Print(e.Value.Type, e.Value.Value, true))
			}
		}
	}
	fmt.Fprintf(w, "\n    %s\n\n", cm.Subject)
	if cm.Body != "" {
		fmt.Fprintf(w, "    %s\n\n", cm.Body)
	}
}

var _ = register(&cli.Command{
	Name:        "ls",
	Usage:       "list a commit's files, in the columns of 'ostree ls'",
	ArgsUsage:   "REV [PATH...]",
	Description: revHelp,
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "recursive", Aliases: []string{"R"}, Usage: "list directories recursively"},
		&cli.BoolFlag{Name: "checksum", Aliases: []string{"C"}, Usage: "print checksums"},
		&cli.BoolFlag{Name: "xattrs", Aliases: []string{"X"}, Usage: "print extended attributes"},
	},
	Action: withRepo(runLs),
})

type lister struct {
	r    *repo.Repo
	w    *bufio.Writer
	rec  bool
	sums bool
	xa   bool
}

func runLs(c *cli.Context, r *repo.Repo) error {
	if c.NArg() < 1 {
		return usageError(c, "ls: want REV [PATH...]")
	}
	sum, err := r.Resolve(c.Args().First())
	if err != nil {
		return err
	}
	cm, err := r.ReadCommit(context.TODO(), sum)
	if err != nil {
		return err
	}
	paths := c.Args().Tail()
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	l := &lister{r: r, w: stdout(c), rec: c.Bool("recursive"), sums: c.Bool("checksum"), xa: c.Bool("xattrs")}
	defer l.w.Flush()
	if t, err := imageTree(r, sum, cm); err != nil || t != nil {
		if err != nil {
			return err
		}
		defer t.Close()
		cl := &composedLister{lister: l, t: t, sums: map[string][2]repo.Checksum{}}
		for _, p := range paths {
			if err := cl.listPath(path.Clean("/" + p)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range paths {
		p = path.Clean("/" + p)
		if err := l.listPath(cm, p); err != nil {
			return err
		}
	}
	return nil
}

func (l *lister) listPath(cm *repo.Commit, p string) error {
	if p == "/" {
		return l.dir(cm.RootTree, cm.RootMeta, "/", true)
	}
	parentTree, _, err := l.r.ResolvePath(cm.RootTree, cm.RootMeta, path.Dir(p))
	if err != nil {
		return err
	}
	dt, err := l.r.ReadDirTree(context.TODO(), parentTree)
	if err != nil {
		return err
	}
	name := path.Base(p)
	if d, ok := dt.LookupDir(name); ok {
		return l.dir(d.Tree, d.Meta, p, true)
	}
	if f, ok := dt.LookupFile(name); ok {
		return l.file(f.Checksum, p)
	}
	return fmt.Errorf("ls %s: %w", p, repo.ErrObjectNotFound)
}

// dir prints a directory's line and, when expand is set, its entries:
// files first, then directories, each in name order, as ostree ls does.
func (l *lister) dir(tree, meta repo.Checksum, p string, expand bool) error {
	m, err := l.r.ReadDirMeta(context.TODO(), meta)
	if err != nil {
		return err
	}
	fmt.Fprintf(l.w, "d0%04o %d %d %6d ", m.Mode&0o7777, m.UID, m.GID, 0)
	if l.sums {
		fmt.Fprintf(l.w, "%s %s ", tree, meta)
	}
	if l.xa {
		fmt.Fprintf(l.w, "{ %s } ", printXattrs(m.Xattrs))
	}
	fmt.Fprintln(l.w, p)
	if !expand {
		return nil
	}
	dt, err := l.r.ReadDirTree(context.TODO(), tree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		if err := l.file(f.Checksum, path.Join(p, f.Name)); err != nil {
			return err
		}
	}
	for _, d := range dt.Dirs {
		if err := l.dir(d.Tree, d.Meta, path.Join(p, d.Name), l.rec); err != nil {
			return err
		}
	}
	return nil
}

func (l *lister) file(sum repo.Checksum, p string) error {
	m, err := l.r.ReadFileMeta(context.TODO(), sum)
	if err != nil {
		return err
	}
	t := '-'
	if m.IsSymlink() {
		t = 'l'
	}
	fmt.Fprintf(l.w, "%c0%04o %d %d %6d ", t, m.Mode&0o7777, m.UID, m.GID, m.Size)
	if l.sums {
		fmt.Fprintf(l.w, "%s ", sum)
	}
	if l.xa {
		fmt.Fprintf(l.w, "{ %s } ", printXattrs(m.Xattrs))
	}
	fmt.Fprint(l.w, p)
	if m.IsSymlink() {
		fmt.Fprintf(l.w, " -> %s", m.Target)
	}
	fmt.Fprintln(l.w)
	return nil
}

var typeXattrs = gvariant.MustParseType("a(ayay)")

func printXattrs(xs []repo.Xattr) string {
	v := make([]any, len(xs))
	for i, x := range xs {
		v[i] = []any{append([]byte(x.Name), 0), x.Value}
	}
	return gvariant.Print(typeXattrs, v, true)
}

var _ = register(&cli.Command{
	Name:        "cat",
	Usage:       "print a file of a commit; its content is verified",
	ArgsUsage:   "REV PATH",
	Description: revHelp,
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() != 2 {
			return usageError(c, "cat: want REV PATH")
		}
		sum, err := r.Resolve(c.Args().First())
		if err != nil {
			return err
		}
		cm, err := r.ReadCommit(context.TODO(), sum)
		if err != nil {
			return err
		}
		var f repo.Checksum
		if t, err := imageTree(r, sum, cm); err != nil {
			return err
		} else if t != nil { // an image: its composed file
			defer t.Close()
			e, err := lookupFollow(t, c.Args().Get(1))
			if err != nil {
				return fmt.Errorf("cat %s: %w", c.Args().Get(1), err)
			}
			if e.IsDir() || e.Mode&repo.ModeFmt != repo.ModeRegular {
				return fmt.Errorf("cat %s: not a regular file", c.Args().Get(1))
			}
			f = e.Object
		} else if f, err = resolveFile(r, cm.RootTree, c.Args().Get(1)); err != nil {
			return err
		}
		w := stdout(c)
		if _, err := r.CopyFile(f, w); err != nil {
			return err
		}
		return w.Flush()
	}),
})

var _ = register(&cli.Command{
	Name:        "checkout",
	Usage:       "write a commit's tree to a new directory",
	ArgsUsage:   "REV DIR",
	Description: revHelp + "\nEvery file is verified against its checksum as it is written.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "subpath", Usage: "check out only this subdirectory"},
		&cli.BoolFlag{Name: "user-mode", Aliases: []string{"U"}, Usage: "do not change ownership or set xattrs; strip setuid/setgid"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() != 2 {
			return usageError(c, "checkout: want REV DIR")
		}
		sum, err := r.Resolve(c.Args().First())
		if err != nil {
			return err
		}
		cm, err := r.ReadCommit(context.TODO(), sum)
		if err != nil {
			return err
		}
		o := repo.CheckoutOptions{UserMode: c.Bool("user-mode")}
		ctx := context.Background()
		if _, ok := cm.Metadata.Get(compose.KeyMode); !ok {
			return r.Checkout(ctx, sum, c.String("subpath"), c.Args().Get(1), o)
		}
		// An image: compose it (layered) and decode special files.
		t, err := compose.Open(r, sum, compose.Options{})
		if err != nil {
			return err
		}
		defer t.Close()
		return checkoutImage(ctx, r, t, c.String("subpath"), c.Args().Get(1), o)
	}),
})

// resolveFile finds the file at p in a tree, following symlinks inside the
// tree as ostree cat does: relative targets from the link's directory,
// absolute ones from the root.
func resolveFile(r *repo.Repo, root repo.Checksum, p string) (repo.Checksum, error) {
	for hops := 0; ; hops++ {
		if hops > 40 {
			return repo.Checksum{}, fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		f, err := r.LookupFile(root, p)
		if err != nil {
			return f, err
		}
		m, err := r.ReadFileMeta(context.TODO(), f)
		if err != nil {
			return f, err
		}
		if !m.IsSymlink() {
			return f, nil
		}
		if path.IsAbs(m.Target) {
			p = m.Target
		} else {
			p = path.Join(path.Dir("/"+p), m.Target)
		}
	}
}
