package main

import "testing"

func TestCheckImport(t *testing.T) {
	for _, c := range []struct {
		from, imp string
		test      bool
		bad       bool
	}{
		{"compose", module + "/repo", false, false},
		{"image", module + "/compose", false, false},
		{"image/source", module + "/image/imagetest", true, false},
		{"compose", module + "/image", false, true},          // upward: ingest sits above composition
		{"compose", module + "/image/imagetest", true, true}, // upward, in tests too
		{"image", module + "/image/imagetest", false, true},  // helper outside tests
		{"repo", module + "/repo/gvariant", false, false},
		{"repo", module + "/compose", false, true},    // upward
		{"fs", module + "/image/source", false, true}, // same layer, other directory
		{"cache", module + "/repo", false, true},      // upward
		{"fs", "github.com/hanwen/go-fuse/v2/fs", false, false},
		{"compose", "github.com/hanwen/go-fuse/v2/fuse", false, true},
		{"tests", "github.com/urfave/cli/v2", true, true},
		{"cmd/ostree-mount", "github.com/urfave/cli/v2", false, false},
		{"compose", "github.com/dgraph-io/ristretto/v2", false, true},
		{"compose", module + "/compose/composetest", false, true}, // helper outside tests
		{"compose", module + "/compose/composetest", true, false},
		{"tests", module + "/repo/repotest", true, false},
		{"cmd/ostree-mount", module + "/fs", false, false},
		{"fs", module + "/cmd/ostree-mount", false, true},
	} {
		l, d, ok := layerOf(c.from)
		if !ok {
			t.Fatalf("no layer for %s", c.from)
		}
		msg := checkImport(c.from, l, d, c.imp, c.test)
		if (msg != "") != c.bad {
			t.Errorf("%s → %s (test %v): got %q, want violation %v", c.from, c.imp, c.test, msg, c.bad)
		}
	}
}
