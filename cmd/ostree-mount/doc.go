// Command ostree-mount stores container images in an OSTree repository
// and mounts commits as read-only FUSE filesystems, composing an image's
// tree from its layer commits lazily.
//
//	ostree-mount [--repo R] REF MOUNTPOINT   mount a commit; returns once mounted, as mount(8)
//	ostree-mount import oci:DIR:TAG          import an image; prints the manifest commit
//	ostree-mount import docker://HOST/NAME:TAG   the same from a registry (skopeo's flags)
//	ostree-mount images                      list the images; inspect REV shows one
//	ostree-mount umount MOUNTPOINT           unmount, also after the daemon died
//	ostree-mount bundle [--writable] REF DIR an OCI runtime bundle for runc; bundle --remove DIR
//	ostree-mount REF MOUNTPOINT -o OPTS      what mount -t fuse.ostree-mount runs (mount.fuse3)
//	ostree-mount prune                       delete what no ref, pin or related list keeps
//	ostree-mount serve                       serve root's mounts from one process
//
// and init, commit, refs, log, show, ls, cat, checkout, pin and fsck. The
// repository is --repo, then $OSTREE_REPO, then /ostree/repo. Flags that
// mean what an `ostree` flag means have its name, and a command that
// writes a commit prints its checksum on stdout.
package main
