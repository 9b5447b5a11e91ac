// Package treecmp turns a directory tree into a sorted list of text lines,
// one per path, so that two trees (a source and its checkout, or the
// checkouts of two tools) can be compared with a readable diff.
//
// A line is
//
//	PATH type=T mode=MMMM uid=U gid=G [size=N sha256=H] [target=L] [rdev=MAJ:MIN] [xattr:NAME=HEX ...] [hardlink=P] [mtime=S.NNNNNNNNN]
//
// PATH is relative to the root (the root itself is "."), with '/' as the
// separator. T is f (regular), d (directory), l (symlink), c and b
// (devices), p (fifo) or s (socket). MMMM is the full permission bits in
// octal, setuid, setgid and sticky included. Regular files carry their
// size and SHA-256, symlinks their target, devices their rdev. Every
// extended attribute is listed, sorted by name, with its value in hex;
// Options.IgnoreXattrs drops names by prefix (a stray security.selinux,
// for instance). With Options.Hardlinks, every member of a group of paths
// of the tree that share an inode carries hardlink=FIRST, the group's
// first path in sorted order (the first one pointing to itself). With
// Options.MTime, the modification time is added.
//
// Names, symlink targets and xattr names are escaped: every byte outside
// printable ASCII, the space and the backslash become \ooo (octal), so a
// line never contains a raw space except between fields and a diff stays
// readable whatever the names.
//
// Walk returns the same information as Entry values, which a test may
// rewrite (Options.Rewrite, or by hand) to build an expectation, for
// example the canonical permissions of a bare-user-only checkout.
package treecmp
