// Package source opens a container image given in skopeo's transport syntax
// and exposes its manifest, config and layer blobs as verified streams.
//
// # Model
//
// Image and Layer are interfaces, as go-containerregistry's v1.Image and
// v1.Layer: each accessor returns (T, error), so that an implementation
// may be lazy (a registry fetches the manifest, the config or a blob only
// when asked) and may fail late. A consumer (image.Import) reads the
// metadata first and opens a layer's Compressed stream only when it needs
// the blob. Open returns the implementation of the local transports
// below, which read and verify all but the layer blobs before returning;
// package imagetest has one in memory, for tests.
//
// # Transports
//
//   - oci:DIR[:TAG] — an OCI image layout directory (oci-layout with
//     imageLayoutVersion 1.0.0, index.json, blobs/<alg>/<encoded>). TAG
//     matches the org.opencontainers.image.ref.name annotation of an
//     index.json entry; without TAG, index.json must hold exactly one entry.
//     Entries may be manifests or (nested) indexes; indexes are resolved by
//     platform, the first match winning.
//   - oci-archive:FILE[:TAG] — a tar of an OCI image layout.
//   - docker://HOST[:PORT]/NAME[:TAG|@DIGEST] — a registry, through
//     go-containerregistry (this package is its only user): the manifest
//     (an index resolved by platform, as for layouts) and the config are
//     fetched and checked by Open; a layer blob is fetched only when its
//     Compressed stream is opened, so a layer the consumer already holds
//     costs no GET. RegistryOptions carry skopeo's --tls-verify=false,
//     --creds and --authfile (default $REGISTRY_AUTH_FILE, then
//     $XDG_RUNTIME_DIR/containers/auth.json, then ~/.docker/config.json;
//     containers-auth.json's repository-scoped keys and Docker's
//     credHelpers/credsStore are honoured). All requests of an image share
//     one authenticated transport, whose bearer token is fetched again on
//     a 401 (token expiry on a long pull, a restarted registry).
//   - docker-archive:FILE[:NAME:TAG] (or FILE:@N) — the `docker save` /
//     skopeo format (manifest.json listing Config, RepoTags and Layers),
//     both the legacy layout (<diffid>.tar files, <v1id>/layer.tar symlinks)
//     and the Docker ≥25 layout (blobs/sha256/<hex> paths). The image has no
//     manifest of its own; a Docker v2s2 manifest is synthesized from the
//     files in the archive.
//
// Archives are never extracted: their tar headers are scanned once and every
// member is served as a section of the archive file. Symlink and hardlink
// members are resolved inside the archive namespace and can never point
// outside it.
//
// # Verification
//
// Every digest string is validated (sha256 or sha512 only) before it is used
// to build a path, and every file name taken from metadata must be clean,
// relative and free of "..". Manifests, nested indexes and configs are read
// into memory (at most 16 MiB each) and checked against the size
// and digest of the descriptor that references them. Documents holding both
// "manifests" and "layers"/"config" are rejected (CVE-2021-41190), as are
// Docker schema1 manifests, configs whose rootfs.type is not "layers" and
// configs whose diff_ids do not match the manifest's layers in number.
//
// Layer blobs are never read by Open. Layer.Compressed returns a stream of the blob
// as stored (usually compressed); it never yields more than the descriptor's
// size, and reading it to the end checks the size and digest, reporting
// ErrSizeMismatch or ErrDigestMismatch instead of the final io.EOF. Checking
// DiffIDs (digests of the uncompressed tar) is the consumer's job.
//
// # What is never done
//
// Only docker:// uses the network, and only for the registry named; the
// urls of foreign / non-distributable layers are never fetched; a blob
// missing from the layout is reported as ErrNotFound. Nothing is unpacked or
// written to disk, and no layer is held in memory.
package source
