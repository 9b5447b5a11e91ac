// Package composetest builds layer tars in code for tests: a small DSL
// of tar entries (Dir, File, Symlink, Link, Whiteout, Opaque, Char, Fifo)
// turned into tar bytes, so that fixtures live next to their assertions
// instead of in binary files. WriteLayer stores such a tar as a layer
// commit of package compose's schema without the importer, so that
// compose's tests (and those of packages beside image, such as fs) can
// compose layers: package image sits above compose and they cannot
// import it. image's tests check that WriteLayer and the importer write
// the same commits.
package composetest
