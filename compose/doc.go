// Package compose serves the trees of the commits that package image
// writes, composing the layers of an image lazily, and owns their
// schema.
//
// # Schema
//
// An image is a manifest commit (KeyMode, KeyManifest, KeyConfig,
// KeyDigest) whose related list names its layer commits, base first. A
// layer commit (KeyDiffID, KeyChainID if it depends on its base) holds
// the layer's tree as its tar has it: whiteouts as .wh. entries and
// opaque markers as .wh..wh..opq, parents without an entry of their own
// marked with ImplicitXattr, devices and fifos as empty files marked with
// SpecialXattr (special.go), hardlink groups in KeyHardlinks; nothing of
// the layer's blob, so that it depends only on the uncompressed tar and
// its base (layer commits of earlier versions also carry
// ostree-mount.layer and ostree-mount.media-type, which nothing reads).
// Its detached metadata holds KeyIndex and KeyTarSplit. Side channels
// mean something only in commits that import made (ImportMade). Package
// image writes the schema; this package reads it.
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
// # Metadata index
//
// Composing a directory needs each file's mode, owner, size, symlink
// target and xattrs, which OSTree keeps inside the file's own object: a
// cold directory of N files costs N object reads, and over a lazy remote
// N whole-object fetches. So import writes, for each layer commit (and
// for the commit of a precomposed or squashed image), an index of its
// content objects' metadata (index.go): fixed-size records sorted by
// checksum, searched in place. It lives in the commit's detached
// metadata (KeyIndex), and the commit's own metadata names its sha256
// (KeyIndexSum):
//   - the index is as trusted as the commit, signed or not, and a tree
//     uses it only after checking the sum, in commits that import made;
//   - it travels with its commit through pull (ours and ostree's) and a
//     lazy mount's commit fetch, and prune keeps and deletes it with the
//     commit, while ostree fsck ignores it;
//   - it is a cache: a missing, unreadable or mismatched index (a layer
//     imported before indexes existed, a tampered commitmeta) means
//     reading the objects as before, with a log line for the last two.
//
// Indexes are loaded on a layer's first use and shared through Caches.
//
// Checkout materializes a composed Tree on disk, as umoci unpack would;
// WriteComposed stores it as ordinary dirtrees (precomposed and squashed
// images).
package compose
