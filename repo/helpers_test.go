package repo_test

import "github.com/ostree-mount/ostree-mount/repo/gvariant"

func uint32Variant(v uint32) gvariant.Variant {
	return gvariant.Variant{Type: gvariant.MustParseType("u"), Value: v}
}
