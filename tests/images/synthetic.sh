# synthetic.sh OUT: the synthetic multi-layer image with every whiteout
# kind, exactly the recipe of docs/oci-layers.md §4 ("Synthetic
# multi-layer image"). Makes OUT/img (an OCI layout whose tag layer4 is
# the image) and OUT/ref/rootfs (umoci unpack of img:layer4, the
# reference rootfs). Run as root with bash -e.
set -e
cd "$1"
umoci init --layout img && umoci new --image img:base0 && umoci unpack --image img:base0 b
R=b/rootfs   # L1: every file type
mkdir -p $R/{etc,bin,usr/lib,run,dev,opt/app/sub/deep,dir2file/inner,var/log}
echo host1 > $R/etc/hostname; setfattr -n user.comment -v hi $R/etc/hostname; : > $R/etc/empty
echo s > $R/etc/shadow; chown 0:42 $R/etc/shadow; chmod 640 $R/etc/shadow
printf '#!/bin/sh\n' > $R/bin/tool; chmod 4755 $R/bin/tool; ln $R/bin/tool $R/bin/tool-hl
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= $R/bin/tool
ln -s tool $R/bin/sh; ln -s usr/lib $R/lib; ln -s ../../nonexistent $R/etc/dangling
mkfifo $R/run/fifo; mknod $R/dev/null c 1 3; mknod $R/dev/loop0 b 7 0
echo d > $R/opt/app/sub/deep/f; echo x > $R/dir2file/inner/x; echo f > $R/file2dir
echo old > $R/var/log/old; truncate -s 8M $R/var/log/sparse.img
umoci repack --refresh-bundle --image img:layer1 b
# L2: modify, delete file, delete dir, dir->file, file->dir, chmod only, symlink->dir
echo host2 > $R/etc/hostname; rm $R/etc/shadow; rm -rf $R/opt/app
rm -rf $R/dir2file; echo nowfile > $R/dir2file; rm $R/file2dir; mkdir $R/file2dir; echo in > $R/file2dir/x
chmod 700 $R/opt; ln -sfn /bin/tool $R/bin/sh; rm $R/bin/tool-hl; rm $R/lib; mkdir $R/lib; echo r > $R/lib/real
umoci repack --refresh-bundle --image img:layer2 b
# L3: recreate deleted paths, dir->symlink, drop an xattr
mkdir -p $R/opt/app; echo again > $R/opt/app/b; echo s2 > $R/etc/shadow
rm -rf $R/file2dir; ln -s /etc $R/file2dir; setfattr -x user.comment $R/etc/hostname
umoci repack --refresh-bundle --image img:layer3 b
# L4/L5: opaque whiteout + explicit whiteout without unpack
mkdir -p newvar && echo only > newvar/only
umoci insert --image img:layer3 --tag layer4 --opaque newvar /var/log
umoci insert --image img:layer4 --whiteout /etc/empty
umoci unpack --image img:layer4 ref                     # reference rootfs = ref/rootfs
