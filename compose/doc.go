// Package compose serves the trees of the commits that package image
// writes, composing the layers of an image lazily, and owns their
// schema.
//
// # Schema
//
// An image is a manifest commit (KeyMode, KeyManifest, KeyConfig,
// KeyDigest) whose related list names its layer commits, base first. A
// layer commit (KeyLayer, KeyDiffID) holds the layer's tree as its tar
// has it: whiteouts as .wh. entries and opaque markers as .wh..wh..opq,
// parents without an entry of their own marked with ImplicitXattr,
// devices and fifos as empty files marked with SpecialXattr (special.go),
// hardlink groups in KeyHardlinks. Side channels mean something only in
// commits that import made (ImportMade). Package image writes the
// schema; this package reads it.
//
// # Composition
//
// Open returns a Tree for a commit. For a layered manifest commit the
// Tree overlays the layer commits by the OCI whiteout rules (umoci is the
// reference), one directory at a time and only when asked: Lookup and
// ReadDir compose a directory from the same directory of every layer,
// newest first, and cache it (package cache) under a key made of the
// layers' dirtree checksums, so identical subtrees are composed once. A
// prefetcher composes the subdirectories of a listed directory ahead of
// a walk. For any other commit the Tree serves the commit's own tree.
//
// Checkout materializes a composed Tree on disk, as umoci unpack would;
// WriteComposed stores it as ordinary dirtrees (precomposed and squashed
// images).
package compose
