# buildah.sh OUT: a small two-layer image built by buildah (docs/oci-layers.md
# §5, without a debootstrap rootfs): a base from scratch holding a small
# tree (setuid file, hardlink, symlinks, a device node, a fifo, an xattr),
# and a derived image whose layer deletes a file and a directory of the
# base (whiteouts, made through buildah mount) and adds a file owned by
# 1000:1000 with buildah copy. Pushed to OUT/oci (tag derived); the
# reference rootfs is OUT/ref/rootfs (umoci unpack). The buildah store
# (vfs) is removed at the end.
set -e
cd "$1"
W=$PWD
BA="buildah --root $W/bh/root --runroot $W/bh/run --storage-driver vfs"
T=$W/tree
mkdir -p $T/etc $T/bin $T/usr/share/doc/pkg $T/var/lib/empty $T/dev $T/srv/data
echo hello > $T/etc/hello; echo victim > $T/etc/victim
setfattr -n user.note -v base $T/etc/hello
echo doc > $T/usr/share/doc/pkg/README
printf '#!/bin/sh\n' > $T/bin/prog; chmod 4755 $T/bin/prog
ln -s prog $T/bin/alias; ln $T/bin/prog $T/bin/prog-hl
mknod $T/dev/null c 1 3; mkfifo $T/dev/fifo
echo data > $T/srv/data/file; chown 1234:5678 $T/srv/data/file; chmod 2750 $T/srv/data
c=$($BA from scratch)
mnt=$($BA mount $c)
cp -a $T/. $mnt/
$BA umount $c >/dev/null
$BA commit -q $c base:1 >/dev/null
c2=$($BA from base:1)
mnt=$($BA mount $c2)
rm $mnt/etc/victim
rm -rf $mnt/usr/share/doc
echo changed > $mnt/etc/hello
$BA umount $c2 >/dev/null
echo copied > $W/copied.txt
$BA copy --chown 1000:1000 $c2 $W/copied.txt /opt/copied.txt
$BA commit -q $c2 derived:1 >/dev/null
$BA push -q derived:1 oci:$W/oci:derived
$BA rm -a >/dev/null
$BA rmi -a -f >/dev/null
rm -rf $W/bh
umoci unpack --image oci:derived ref
