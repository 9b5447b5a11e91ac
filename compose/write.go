package compose

import (
	"context"
	"sort"

	"github.com/ostree-mount/ostree-mount/repo"
)

// WriteComposed stores a composed tree as ordinary OSTree dirtrees and
// dirmetas (whiteouts applied, side channels of special files kept) and
// returns its root and its hardlink groups (path -> first path of the
// group). Identical subtrees are composed once.
func WriteComposed(ctx context.Context, tx *repo.Transaction, t *Tree) (repo.Checksum, repo.Checksum, map[string]string, error) {
	type sums struct{ tree, meta repo.Checksum }
	done := map[string]sums{}
	groups := map[string][]string{}
	var walk func(e *Entry, p string) (sums, error)
	walk = func(e *Entry, p string) (sums, error) {
		if err := ctx.Err(); err != nil {
			return sums{}, err
		}
		d, err := t.ReadDir(ctx, e)
		if err != nil {
			return sums{}, err
		}
		dt := &repo.DirTree{}
		for _, c := range d.Entries {
			cp := c.Name
			if p != "" {
				cp = p + "/" + c.Name
			}
			if !c.IsDir() {
				dt.Files = append(dt.Files, repo.TreeFile{Name: c.Name, Checksum: c.Object})
				if k := t.InodeKey(c, cp); k != "" {
					groups[k] = append(groups[k], cp)
				}
				continue
			}
			s, ok := done[c.key]
			if !ok || t.hasLinksBelow(c) {
				if s, err = walk(c, cp); err != nil {
					return s, err
				}
			}
			dt.Dirs = append(dt.Dirs, repo.TreeDir{Name: c.Name, Tree: s.tree, Meta: s.meta})
		}
		var s sums
		if s.tree, err = tx.WriteDirTree(dt); err != nil {
			return s, err
		}
		if s.meta, err = tx.WriteDirMeta(&repo.DirMeta{UID: e.UID, GID: e.GID, Mode: e.Mode, Xattrs: e.Xattrs}); err != nil {
			return s, err
		}
		done[e.key] = s
		return s, nil
	}
	s, err := walk(t.Root(), "")
	if err != nil {
		return s.tree, s.meta, nil, err
	}
	links := map[string]string{}
	for _, members := range groups {
		if len(members) < 2 {
			continue
		}
		sort.Strings(members)
		for _, m := range members {
			links[m] = members[0]
		}
	}
	return s.tree, s.meta, links, nil
}

// hasLinksBelow reports whether any layer records hardlinks, in which case
// identical subtrees at different paths must still be walked for them.
func (t *Tree) hasLinksBelow(*Entry) bool {
	for _, m := range t.links {
		if len(m) > 0 {
			return true
		}
	}
	return false
}
