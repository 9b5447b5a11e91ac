package compose

import (
	"context"
	"fmt"
	"testing"

	ct "github.com/ostree-mount/ostree-mount/compose/composetest"
	"github.com/ostree-mount/ostree-mount/repo"
)

// The composition tests describe their layers as tars and need them as
// layer commits. The importer, which makes layer commits of real images,
// lives above this package (image/), so these tests write them with
// composetest.WriteLayer, a plain writer of the schema for the
// well-formed tars of tests. The importer's own tests (image/) check
// that its commits compose as they should.

// importLayers writes each tar as a layer commit, in one transaction,
// and returns the composed tree.
func importLayers(t *testing.T, r *repo.Repo, layers ...[]byte) (*Tree, []*ct.Layer, error) {
	t.Helper()
	return importLayersWith(t, r, Options{}, layers...)
}

// importLayersWith is importLayers with the returned tree opened with o.
func importLayersWith(t *testing.T, r *repo.Repo, o Options, layers ...[]byte) (*Tree, []*ct.Layer, error) {
	t.Helper()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	var commits []repo.Checksum
	var results []*ct.Layer
	for i, l := range layers {
		res, err := ct.WriteLayer(tx, l)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i, err)
		}
		results = append(results, res)
		commits = append(commits, res.Commit)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tree, err := OpenLayers(r, commits, o)
	if err != nil {
		t.Fatal(err)
	}
	return tree, results, nil
}

// TestSchemaNames: composetest writes the schema with compose's names.
func TestSchemaNames(t *testing.T) {
	for _, c := range [][2]string{
		{ct.SpecialXattr, SpecialXattr},
		{ct.ImplicitXattr, ImplicitXattr},
		{ct.ImplicitParent, ImplicitParent},
		{ct.ImplicitWhiteouts, ImplicitWhiteouts},
		{ct.KeyXattrs, KeyXattrs},
	} {
		if c[0] != c[1] {
			t.Errorf("composetest writes %q where compose reads %q", c[0], c[1])
		}
	}
	if got := (Special{Type: 'c', Major: 1, Minor: 3}).String(); got != "c 1:3" {
		t.Errorf("compose encodes a device as %q; composetest as \"c 1:3\"", got)
	}
}
