// Command lintdeps enforces the package layering of ostree-mount; `make
// lint` runs it.
//
// # Layers
//
// Every package of the module belongs to the layer of its top-level
// directory. Imports flow one way, from the repository up to the CLI:
//
//	0  cache, repo/gvariant
//	1  repo
//	2  remote
//	3  compose
//	4  image, fs
//	5  mount
//	6  cmd
//	7  tests, scripts
//
// A package may import a package of a lower layer, and packages of its
// own top-level directory; never one of its own layer in another
// directory (image and fs stay apart) and never one above it.
//
// # Test helpers
//
// A package whose name ends in "test" (repotest, composetest) is a test
// helper: only _test.go files, other test helpers and tests/ import it.
//
// # Third-party owners
//
// Each heavyweight third-party dependency is held by one package, so that
// its API never leaks through the design: go-fuse by fs/, urfave/cli by
// cmd/, ristretto by cache/, go-containerregistry by image/source and the
// OpenPGP library by repo/sign. Test files of the owner may use it too.
//
// The rules read `go list -json ./...` (imports of the package, its test
// files and its external test package). A violation names the importing
// package, the imported one and the rule, and the command exits 1.
package main
