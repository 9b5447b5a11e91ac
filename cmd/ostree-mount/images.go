package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
)

// imageInfo is one image of the repository, as images lists it.
type imageInfo struct {
	Ref     string    `json:"ref"`
	Commit  string    `json:"commit"`
	Digest  string    `json:"digest"`
	Mode    string    `json:"mode"`
	Layers  int       `json:"layers"`
	Size    int64     `json:"size"` // bytes of the config and layer blobs, per the manifest
	Created time.Time `json:"created"`
}

type manifestDoc struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"config"`
	Layers []struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	} `json:"layers"`
}

type configDoc struct {
	Created      *time.Time `json:"created"`
	Architecture string     `json:"architecture"`
	OS           string     `json:"os"`
	Variant      string     `json:"variant,omitempty"`
	Config       struct {
		Env    []string          `json:"Env"`
		Labels map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// readImage reads an image commit's manifest and config; ok is false for
// a commit that is not an image's.
func readImage(cm *repo.Commit) (mode string, man *manifestDoc, cfg *configDoc, rawMan, rawCfg string, ok bool, err error) {
	if mode, ok = cm.Metadata.String(compose.KeyMode); !ok {
		return "", nil, nil, "", "", false, nil
	}
	rawMan, _ = cm.Metadata.String(compose.KeyManifest)
	rawCfg, _ = cm.Metadata.String(compose.KeyConfig)
	man, cfg = &manifestDoc{}, &configDoc{}
	if err := json.Unmarshal([]byte(rawMan), man); err != nil {
		return mode, nil, nil, "", "", true, fmt.Errorf("manifest: %w", err)
	}
	if err := json.Unmarshal([]byte(rawCfg), cfg); err != nil {
		return mode, nil, nil, "", "", true, fmt.Errorf("config: %w", err)
	}
	return mode, man, cfg, rawMan, rawCfg, true, nil
}

var _ = register(&cli.Command{
	Name:      "images",
	Usage:     "list the repository's images (strong refs of manifest commits)",
	ArgsUsage: " ",
	Description: `Columns: REF, DIGEST (the manifest's), MODE, LAYERS, SIZE (config and layer
blobs as the manifest gives them) and CREATED (the config's).`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "format", Value: "table", Usage: "table or json"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() != 0 {
			return usageError(c, "images: no arguments")
		}
		if f := c.String("format"); f != "table" && f != "json" {
			return usageError(c, "images: --format %q: want table or json", f)
		}
		refs, err := r.ListRefs(repo.RefHead)
		if err != nil {
			return err
		}
		var out []imageInfo
		for _, ref := range refs {
			cm, err := r.ReadCommit(context.TODO(), ref.Commit)
			if err != nil {
				return fmt.Errorf("ref %s: %w", ref.Name, err)
			}
			mode, man, cfg, _, _, ok, err := readImage(cm)
			if !ok {
				continue
			}
			if err != nil {
				return fmt.Errorf("ref %s: %w", ref.Name, err)
			}
			ii := imageInfo{Ref: ref.Name.Name, Commit: ref.Commit.String(), Mode: mode, Layers: len(man.Layers), Size: man.Config.Size}
			ii.Digest, _ = cm.Metadata.String(compose.KeyDigest)
			for _, l := range man.Layers {
				ii.Size += l.Size
			}
			if cfg.Created != nil {
				ii.Created = cfg.Created.UTC()
			}
			out = append(out, ii)
		}
		w := stdout(c)
		defer w.Flush()
		if c.String("format") == "json" {
			if out == nil {
				out = []imageInfo{}
			}
			e := json.NewEncoder(w)
			e.SetIndent("", "  ")
			return e.Encode(out)
		}
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "REF\tDIGEST\tMODE\tLAYERS\tSIZE\tCREATED")
		for _, ii := range out {
			created := "-"
			if !ii.Created.IsZero() && ii.Created.Unix() > 0 {
				created = ii.Created.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", ii.Ref, shortDigest(ii.Digest), ii.Mode, ii.Layers, byteSize(ii.Size), created)
		}
		return tw.Flush()
	}),
})

// shortDigest is the first 12 hex digits of a digest, as podman shows them.
func shortDigest(d string) string {
	_, hex, _ := strings.Cut(d, ":")
	if len(hex) > 12 {
		return hex[:12]
	}
	return d
}

var _ = register(&cli.Command{
	Name:      "inspect",
	Usage:     "print an image's manifest and config, as skopeo inspect does",
	ArgsUsage: "REV",
	Description: `Prints a summary (Name, Digest, Created, Architecture, Os, Layers, Env,
Labels ...) as JSON; --raw prints the manifest as stored, --config the config.`,
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "raw", Usage: "print the manifest as stored"},
		&cli.BoolFlag{Name: "config", Usage: "print the image's config"},
	},
	Action: withRepo(func(c *cli.Context, r *repo.Repo) error {
		if c.NArg() != 1 {
			return usageError(c, "inspect: want REV")
		}
		rev := c.Args().First()
		sum, err := r.Resolve(rev)
		if err != nil {
			return err
		}
		cm, err := r.ReadCommit(context.TODO(), sum)
		if err != nil {
			return err
		}
		mode, man, cfg, rawMan, rawCfg, ok, err := readImage(cm)
		if !ok {
			return fmt.Errorf("inspect %s: commit %s is not an image", rev, sum)
		}
		if err != nil {
			return fmt.Errorf("inspect %s: %w", rev, err)
		}
		w := stdout(c)
		defer w.Flush()
		switch {
		case c.Bool("raw") && c.Bool("config"):
			_, err = w.WriteString(rawCfg)
			return err
		case c.Bool("raw"):
			_, err = w.WriteString(rawMan)
			return err
		case c.Bool("config"):
			var v any
			if err := json.Unmarshal([]byte(rawCfg), &v); err != nil {
				return err
			}
			return writeJSON(w, v)
		}
		type layerData struct {
			MIMEType string `json:"MIMEType"`
			Digest   string `json:"Digest"`
			Size     int64  `json:"Size"`
		}
		out := struct {
			Name         string            `json:"Name"`
			Digest       string            `json:"Digest"`
			Created      *time.Time        `json:"Created,omitempty"`
			Labels       map[string]string `json:"Labels"`
			Architecture string            `json:"Architecture"`
			Os           string            `json:"Os"`
			Variant      string            `json:"Variant,omitempty"`
			Layers       []string          `json:"Layers"`
			LayersData   []layerData       `json:"LayersData"`
			Env          []string          `json:"Env"`
			Mode         string            `json:"Mode"`
			Commit       string            `json:"Commit"`
		}{Created: cfg.Created, Labels: cfg.Config.Labels, Architecture: cfg.Architecture, Os: cfg.OS, Variant: cfg.Variant, Env: cfg.Config.Env, Mode: mode, Commit: sum.String()}
		out.Name, _ = cm.Metadata.String(compose.KeySource)
		out.Digest, _ = cm.Metadata.String(compose.KeyDigest)
		out.Layers = []string{}
		for _, l := range man.Layers {
			out.Layers = append(out.Layers, l.Digest)
			out.LayersData = append(out.LayersData, layerData{l.MediaType, l.Digest, l.Size})
		}
		return writeJSON(w, out)
	}),
})

func writeJSON(w *bufio.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "    ")
	return e.Encode(v)
}

// imageTree opens the composed tree of an image commit; nil if the
// commit is not an image's.
func imageTree(r *repo.Repo, sum repo.Checksum, cm *repo.Commit) (*compose.Tree, error) {
	if _, ok := cm.Metadata.Get(compose.KeyMode); !ok {
		return nil, nil
	}
	return compose.Open(r, sum, compose.Options{})
}

// composedLister is ls over a composed image, in ostree ls's columns.
// A directory's checksums (-C) are those its composed dirtree and
// dirmeta have, as in a squashed import of the image.
type composedLister struct {
	*lister
	t    *compose.Tree
	sums map[string][2]repo.Checksum // by Entry.Key
}

func (l *composedLister) listPath(p string) error {
	e, err := l.t.Lookup(context.TODO(), p)
	if err != nil {
		return fmt.Errorf("ls %s: %w", p, err)
	}
	if e.IsDir() {
		return l.dir(e, p, true)
	}
	return l.file(e, p)
}

func entryMeta(e *compose.Entry) *repo.DirMeta {
	return &repo.DirMeta{UID: e.UID, GID: e.GID, Mode: e.Mode, Xattrs: e.Xattrs}
}

// dirSums computes the composed dirtree and dirmeta checksums of e.
func (l *composedLister) dirSums(e *compose.Entry) ([2]repo.Checksum, error) {
	if s, ok := l.sums[e.Key()]; ok && e.Key() != "" {
		return s, nil
	}
	d, err := l.t.ReadDir(context.TODO(), e)
	if err != nil {
		return [2]repo.Checksum{}, err
	}
	dt := &repo.DirTree{}
	for _, c := range d.Entries {
		if !c.IsDir() {
			dt.Files = append(dt.Files, repo.TreeFile{Name: c.Name, Checksum: c.Object})
			continue
		}
		s, err := l.dirSums(c)
		if err != nil {
			return s, err
		}
		dt.Dirs = append(dt.Dirs, repo.TreeDir{Name: c.Name, Tree: s[0], Meta: s[1]})
	}
	s := [2]repo.Checksum{dt.Checksum(), entryMeta(e).Checksum()}
	if e.Key() != "" {
		l.sums[e.Key()] = s
	}
	return s, nil
}

func (l *composedLister) dir(e *compose.Entry, p string, expand bool) error {
	fmt.Fprintf(l.w, "d0%04o %d %d %6d ", e.Mode&0o7777, e.UID, e.GID, 0)
	if l.lister.sums {
		s, err := l.dirSums(e)
		if err != nil {
			return err
		}
		fmt.Fprintf(l.w, "%s %s ", s[0], s[1])
	}
	if l.xa {
		fmt.Fprintf(l.w, "{ %s } ", printXattrs(e.Xattrs))
	}
	fmt.Fprintln(l.w, p)
	if !expand {
		return nil
	}
	d, err := l.t.ReadDir(context.TODO(), e)
	if err != nil {
		return err
	}
	for _, c := range d.Entries { // files first, then directories, as ostree ls
		if !c.IsDir() {
			if err := l.file(c, path.Join(p, c.Name)); err != nil {
				return err
			}
		}
	}
	for _, c := range d.Entries {
		if c.IsDir() {
			if err := l.dir(c, path.Join(p, c.Name), l.rec); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *composedLister) file(e *compose.Entry, p string) error {
	if err := e.Err(); err != nil {
		return fmt.Errorf("ls %s: %w", p, err)
	}
	// A special file shows as the object that stores it, an empty
	// regular file, as ostree ls shows it in a squashed import.
	t, size := byte('-'), e.Size
	switch e.Mode & repo.ModeFmt {
	case repo.ModeSymlink:
		t, size = 'l', 0 // ostree stores no size for a symlink
	case repo.ModeRegular:
	default:
		size = 0
	}
	fmt.Fprintf(l.w, "%c0%04o %d %d %6d ", t, e.Mode&0o7777, e.UID, e.GID, size)
	if l.lister.sums {
		fmt.Fprintf(l.w, "%s ", e.Object)
	}
	if l.xa {
		fmt.Fprintf(l.w, "{ %s } ", printXattrs(e.Xattrs))
	}
	fmt.Fprint(l.w, p)
	if t == 'l' {
		fmt.Fprintf(l.w, " -> %s", e.Target)
	}
	fmt.Fprintln(l.w)
	return nil
}

// lookupFollow finds the entry at p in a composed tree, following
// symlinks, in every component, inside the tree: relative targets from
// the link's directory, absolute ones (and ".." above the root) from the
// root.
func lookupFollow(t *compose.Tree, p string) (*compose.Entry, error) {
	split := func(s string) []string {
		var out []string
		for _, c := range strings.Split(path.Clean("/"+s), "/") {
			if c != "" {
				out = append(out, c)
			}
		}
		return out
	}
	comps := split(p)
	cur, hops := "/", 0
	for i := 0; i < len(comps); i++ {
		next := path.Join(cur, comps[i])
		e, err := t.Lookup(context.TODO(), next)
		if err != nil {
			return nil, err
		}
		if e.Mode&repo.ModeFmt == repo.ModeSymlink {
			if hops++; hops > 40 {
				return nil, fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target := e.Target
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			comps = append(split(target), comps[i+1:]...)
			cur, i = "/", -1
			continue
		}
		if i == len(comps)-1 {
			return e, nil
		}
		cur = next
	}
	return t.Root(), nil
}

// checkoutImage checks out a composed image, or its subpath.
func checkoutImage(ctx context.Context, r *repo.Repo, t *compose.Tree, subpath, dest string, o repo.CheckoutOptions) error {
	if subpath == "" || subpath == "/" {
		return compose.Checkout(ctx, r, t, dest, o)
	}
	e, err := t.Lookup(ctx, subpath)
	if err != nil {
		return fmt.Errorf("checkout --subpath %s: %w", subpath, err)
	}
	if e.IsDir() {
		return compose.CheckoutEntry(ctx, r, t, e, dest, o)
	}
	if e.Mode&repo.ModeFmt != repo.ModeRegular && e.Mode&repo.ModeFmt != repo.ModeSymlink {
		return fmt.Errorf("checkout --subpath %s: not a directory, regular file or symlink", subpath)
	}
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("checkout %s: destination exists: %w", dest, repo.ErrExists)
	}
	if os.Geteuid() != 0 {
		o.UserMode = true
	}
	w := &repo.FileWriter{Repo: r, UserMode: o.UserMode}
	return w.WriteFile(e.Object, dest)
}
