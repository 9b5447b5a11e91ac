// Package composetest builds layer tars in code for tests: a small DSL
// of tar entries (Dir, File, Symlink, Link, Whiteout, Opaque, Char, Fifo)
// turned into tar bytes, so that fixtures live next to their assertions
// instead of in binary files.
package composetest
