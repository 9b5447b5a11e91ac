package repo

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

// CommitOptions are the settings of a new commit, named after the flags of
// `ostree commit`.
type CommitOptions struct {
	Subject string
	Body    string
	// Timestamp; zero means $SOURCE_DATE_EPOCH, or else the current time.
	Timestamp time.Time
	// Branch, if set, is the ref the commit is for: it becomes the default
	// parent and the ref binding.
	Branch string
	// Parent overrides the branch's head as the parent; NoParent makes an
	// orphan-parent commit.
	Parent   *Checksum
	NoParent bool
	// Metadata is stored in this order; ostree.ref-binding is appended.
	Metadata Metadata
	// Detached is written as the commit's commitmeta.
	Detached Metadata
	Related  []Related
	// NoBindings omits ostree.ref-binding; BindRefs adds refs to it.
	NoBindings bool
	BindRefs   []string
}

// commitTimestamp resolves the default timestamp as ostree does.
func (r *Repo) commitTimestamp(t time.Time) (uint64, error) {
	if !t.IsZero() {
		if t.Unix() < 0 {
			return 0, fmt.Errorf("timestamp %s is before 1970", t)
		}
		return uint64(t.Unix()), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", s)
		}
		return n, nil
	}
	return uint64(r.clock().Unix()), nil
}

// WriteCommitFor writes a commit of the tree (rootTree, rootMeta) with the
// options' metadata, parent and bindings, stages the branch ref if one is
// given, and returns the commit checksum.
func (tx *Transaction) WriteCommitFor(rootTree, rootMeta Checksum, o *CommitOptions) (Checksum, error) {
	r := tx.r
	ts, err := r.commitTimestamp(o.Timestamp)
	if err != nil {
		return Checksum{}, err
	}
	c := &Commit{Subject: o.Subject, Body: o.Body, Timestamp: ts, RootTree: rootTree, RootMeta: rootMeta, Related: o.Related}
	var branch RefName
	if o.Branch != "" {
		if branch, err = ParseRefName(o.Branch); err != nil {
			return Checksum{}, err
		}
	}
	switch {
	case o.NoParent:
	case o.Parent != nil:
		c.Parent = *o.Parent
	case o.Branch != "":
		p, err := r.ReadRef(branch)
		if err == nil {
			c.Parent = p
		} else if !errors.Is(err, ErrRefNotFound) {
			return Checksum{}, err
		}
	}
	for _, rel := range c.Related {
		if rel.Name == "" {
			return Checksum{}, fmt.Errorf("related entry for %s: empty name", rel.Commit.Str())
		}
	}
	c.Metadata = append(Metadata{}, o.Metadata...)
	if !o.NoBindings {
		binds := append([]string{}, o.BindRefs...)
		if o.Branch != "" {
			binds = append(binds, branch.Name)
		}
		sort.Strings(binds)
		binds = dedupSorted(binds)
		arr := make([]any, len(binds))
		for i, b := range binds {
			arr[i] = b
		}
		c.Metadata.Set("ostree.ref-binding", gvariant.Variant{Type: typeStringArray, Value: arr})
		if id := r.CollectionID(); id != "" {
			c.Metadata.Set("ostree.collection-binding", gvariant.Variant{Type: typeString, Value: id})
		}
	}
	sum, err := tx.WriteCommit(c)
	if err != nil {
		return sum, err
	}
	if len(o.Detached) > 0 {
		if err := tx.SetCommitMeta(sum, o.Detached); err != nil {
			return sum, err
		}
	}
	if o.Branch != "" {
		tx.SetRef(branch, sum)
	}
	return sum, nil
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
