// Package remote fetches OSTree objects from other repositories: remotes
// configured in the repository's config in ostree's own format, served
// over HTTP(S) as archive-mode repositories or read from a local path with
// a file:// URL, and pulled eagerly into the local repository.
//
// # Model
//
// A remote is a `[remote "NAME"]` group of the repository's config, as
// `ostree remote add` writes it: url=, gpg-verify= (true unless set, as in
// ostree) and any other key, kept verbatim (Lookup exposes them, Add and
// Delete edit the config; real ostree reads what we write and we read what
// it writes). Keys of this project, which ostree ignores:
//
//   - ostree-mount-timeout: the bound of one request, a Go duration ("30s",
//     the default) or a number of seconds. It covers the whole exchange,
//     body included, so a trickling server cannot hold a pull forever.
//
// Remotes in /etc/ostree/remotes.d are not read.
//
// # Fetching
//
// A Fetcher returns one object as the remote stores it (Fetch): a
// metadata object's bytes, a content object's .filez stream (HTTP), or,
// from a file:// remote in a bare mode, a content object's metadata and
// content. Nothing is trusted: repo's Transaction.WriteFetchedMeta,
// WriteFetchedArchive and WriteFileVerified check the checksum before
// anything is staged, whatever the local mode. Store does one fetch and
// write with retries; it is the unit a lazy store would reuse for a
// single missing object.
//
// HTTP faults are bounded: each request has the remote's timeout over its
// whole body; metadata bodies are capped at repo.MaxFetchedMetaSize; a
// body shorter than its Content-Length is a transfer error; redirects stop
// after 10 with an error naming the URL; an HTML page answered with 200
// fails verification and the error names the object and its URL.
// Transient failures (connection refused or reset, timeouts, 5xx, short
// bodies) are retried three times with backoff (0.1 s, 0.4 s, 1.6 s) and
// then reported wrapping repo.ErrUnavailable; damage (checksum mismatch,
// corrupt objects) is never retried. Connections are kept alive, and a
// pull keeps up to 8 requests in flight (Options.Parallel).
//
// Lazy (lazy.go) is the store of a lazy mount: it has the methods of
// compose.ObjectReader and fs.Objects over the local repository and, on a
// local miss, fetches the object (Store), verified, into a group-committed
// transaction (concurrent fetches share one commit and one syncfs), then
// serves it from the local repository. Concurrent misses of one object
// fetch it once; at most LazyOptions.Parallel fetches run at a time; a
// failing remote gives repo.ErrUnavailable (logged once per object, never
// remembered), a bad object its damage error naming the URL (never
// stored). FetchCommits prepares a lazy mount: the ref's commit and its
// related commits, verified as Pull verifies them, marked partial, and the
// ref set; Pull removes the commitpartial marker of every partial commit
// it completes.
//
// # Pulling
//
// Pull resolves each ref from the remote's summary file when it has one,
// else from refs/heads/REF; with no ref named it pulls every ref of the
// summary (ostree would pull the remote's configured branches; a remote
// without a summary then needs explicit refs). It walks each commit
// breadth-first, level by level, with bounded parallelism: the commit and
// its detached metadata, then its root dirtree and dirmeta, their
// subdirectories and files, and the commits in its related list (an
// image's manifest commit names its layer commits there) with their trees.
// Parents are not followed (ostree's default depth 0). Objects already in
// the local repository are not fetched; a commit already complete locally
// is not walked. Everything goes through one transaction, so a failed or
// interrupted pull leaves neither a ref nor an object, and the refs
// refs/remotes/REMOTE/REF are set at its end.
//
// Before a ref's commit is stored, Options.Verifier checks it (the
// signature work plugs in there). Without a verifier, a remote with
// gpg-verify=true (or sign-verify) is refused with a message saying how to
// turn verification off: nothing is pulled unverified by accident. Commits
// reached through a verified commit's related list are named by checksum
// in it and are not verified again.
//
// # Summary
//
// WriteSummary regenerates the summary file as `ostree summary -u` does:
// the refs of refs/heads sorted by name, each with its commit's size,
// checksum and ostree.commit.timestamp, then ostree.summary.mode,
// ostree.summary.last-modified, ostree.summary.tombstone-commits and
// ostree.summary.indexed-deltas. Static deltas and collection IDs are not
// written.
package remote
