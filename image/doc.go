// Package image brings container images into the repository: it reads
// an image (package source), checks and decompresses its layers, and
// stores them as the commits that package compose composes and serves.
// The commit schema (metadata keys, side-channel xattrs, implicit
// directories) belongs to compose; this package writes it.
//
// # Import
//
// Import reads a source.Image and writes, in one transaction:
//
//   - a layer commit per layer blob, holding the layer's tree as the tar
//     stream has it, whiteouts included as .wh. entries; its metadata
//     records the diff_id (compose.KeyDiffID) and nothing of the blob
//     (digest, media type), which the manifest records: with an epoch
//     timestamp, the commit depends only on the uncompressed tar and its
//     base, so the same layer compressed otherwise (an export pushed to
//     a registry and imported again) gives the same commit. Its detached
//     metadata holds the metadata index (compose.KeyIndex) and the
//     tar-split record (compose.KeyTarSplit, tarsplit.go) from which
//     package export replays the tar byte for byte;
//   - a weak ref per layer, refs/weak/ostree-mount/layer/ALG/HEX after its
//     diff_id (chain/ after its chain ID when it depends on its base), so
//     that a layer shared by several images is imported and stored once:
//     a layer found through its weak ref is not read at all;
//   - a manifest commit whose related list names the layer commits in
//     order, base first, with the manifest and config in its metadata
//     (compose.KeyMode tells layered from precomposed and squashed: the
//     latter two also store the composed tree, compose.WriteComposed,
//     and squashed drops the related list).
//
// A failed import leaves no ref, no commit and no object behind.
//
// # Layers
//
// ImportLayer applies a layer tar as umoci does onto the layers below:
// a parent directory that is a symlink, in this layer or a lower one, is
// followed inside the image root. A layer whose tree so depends on its
// base (LayerResult.BaseDependent) is shared by chain ID, not diff_id; a
// layer shared by diff_id is reused on another base only if that base
// changes none of its paths.
//
// Layers are hostile input: paths are cleaned and confined, sizes and
// counts are bounded (Limits, ErrLimit), and a bad entry fails the import
// with ErrBadLayer, naming the layer and the entry; no ref moves.
// Device nodes, fifos and sockets, which OSTree cannot store, become
// empty files marked with compose.SpecialXattr; xattrs of compose's
// namespace in a layer tar are dropped.
//
// # Pipeline
//
// A blob is read in three stages, each in a goroutine of its own: the
// blob is read and its digest checked (by the source); it is decompressed
// (gzip or zstd, sniffed from its first bytes, never from the media type)
// and its diff_id hashed; the tar is parsed and its files hashed and
// written, small ones by a bounded pool of writers. Read-ahead buffers
// of bounded depth join the stages.
package image
