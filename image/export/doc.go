// Package export writes an image of the repository back out as an OCI
// layout (oci:DIR[:TAG]), an OCI archive (oci-archive:FILE[:TAG]) or a
// Docker archive (docker-archive:FILE[:NAME:TAG]), the transports and
// syntax of skopeo.
//
// # Reproduction
//
// A layered or precomposed image comes out as it went in: the config is
// the stored bytes (the same image ID), and each layer's tar is replayed
// from its layer commit's tar-split record (compose.KeyTarSplit, in the
// commit's detached metadata; see package image), which holds every byte
// of the original tar but the payloads of regular files, read back from
// the file objects. The replayed tar is hashed as it is written: a
// diff_id other than the layer commit's compose.KeyDiffID fails the
// export (ErrDiffID), so a wrong diff_id is never emitted.
//
// A layer commit without a record (imported before records existed) is
// synthesized from its tree: entries ordered by path, mtime 0, no
// uname/gname; the image works but that layer's diff_id differs, the
// config's rootfs.diff_ids are rewritten, and Options.Warn is told. A
// squashed image comes out as one synthesized layer of its composed tree.
//
// # Streaming
//
// A layer is generated, hashed and compressed (gzip by default, zstd or
// none) as it is written to a temporary file in the destination, renamed
// to its digest once complete: nothing half-written remains after a
// failure. Layers are exported in parallel, at most Options.Jobs
// (default GOMAXPROCS) at a time. gzip compresses each layer in 1 MiB
// blocks on GOMAXPROCS goroutines (pgzip.go: each block with the 32 KiB
// before it as its dictionary, sync-flushed, so the blocks make one
// gzip member whose bytes do not depend on the number of goroutines),
// and the blob is hashed and written by a goroutine of its own; zstd
// uses its encoder's goroutines. Memory is bounded by the blocks in
// flight, the compressors' windows and the layers' records.
package export
