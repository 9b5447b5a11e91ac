// Package compose turns OCI and Docker images into OSTree commits and
// serves their trees lazily.
//
// # Import
//
// Import reads an image (package source) and writes, in one transaction:
//
//   - a layer commit per layer blob, holding the layer's tree as the tar
//     stream has it, whiteouts included as .wh. entries; its metadata
//     records the blob digest (KeyLayer) and diff_id (KeyDiffID);
//   - a weak ref per layer, refs/weak/ostree-mount/layer/ALG/HEX after its
//     diff_id (chain/ after its chain ID when it depends on its base), so
//     that a layer shared by several images is imported and stored once;
//   - a manifest commit whose related list names the layer commits in
//     order, with the manifest and config in its metadata (KeyMode tells
//     layered from precomposed and squashed).
//
// Layers are hostile input: paths are cleaned and confined, sizes and
// counts are bounded (Limits, ErrLimit), and a bad entry fails the import
// with ErrBadLayer, naming the layer and the entry; no ref moves.
// Device nodes, fifos and sockets, which OSTree cannot store, become
// empty files marked with SpecialXattr.
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
// Checkout materializes a composed Tree on disk, as umoci unpack would.
package compose
