package repo

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readlinkat reads a symlink relative to a directory fd.
func readlinkat(dfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", fmt.Errorf("readlink %s: %w", name, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<16 {
			return "", fmt.Errorf("readlink %s: target too long", name)
		}
	}
}

// xattrOps abstracts the l*/f* families of xattr calls.
type xattrOps struct {
	list func(dest []byte) (int, error)
	get  func(name string, dest []byte) (int, error)
}

func readXattrs(ops xattrOps) ([]Xattr, error) {
	var names []byte
	for size := 1024; ; size *= 4 {
		buf := make([]byte, size)
		n, err := ops.list(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listxattr: %w", err)
		}
		names = buf[:n]
		break
	}
	var xs []Xattr
	for _, name := range bytes.Split(names, []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v, err := getXattr(ops, string(name))
		if err != nil {
			return nil, err
		}
		xs = append(xs, Xattr{Name: string(name), Value: v})
	}
	return NormalizeXattrs(xs), nil
}

func getXattr(ops xattrOps, name string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := ops.get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err2 := ops.get(name, nil)
			if err2 != nil {
				return nil, fmt.Errorf("getxattr %s: %w", name, err2)
			}
			size = sz + 1
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s: %w", name, err)
		}
		return buf[:n], nil
	}
}

// listXattrs reads all xattrs of a path, sorted, without empty values.
func listXattrs(path string, nofollow bool) ([]Xattr, error) {
	ops := xattrOps{
		list: func(d []byte) (int, error) { return unix.Llistxattr(path, d) },
		get:  func(n string, d []byte) (int, error) { return unix.Lgetxattr(path, n, d) },
	}
	if !nofollow {
		ops.list = func(d []byte) (int, error) { return unix.Listxattr(path, d) }
		ops.get = func(n string, d []byte) (int, error) { return unix.Getxattr(path, n, d) }
	}
	xs, err := readXattrs(ops)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return xs, nil
}

// flistXattrs reads all xattrs of an open file.
func flistXattrs(fd int) ([]Xattr, error) {
	return readXattrs(xattrOps{
		list: func(d []byte) (int, error) { return unix.Flistxattr(fd, d) },
		get:  func(n string, d []byte) (int, error) { return unix.Fgetxattr(fd, n, d) },
	})
}

func fgetxattr(fd int, name string) ([]byte, error) {
	return getXattr(xattrOps{get: func(n string, d []byte) (int, error) { return unix.Fgetxattr(fd, n, d) }}, name)
}

// noGetxattrat is set once the kernel has said it lacks getxattrat(2)
// (Linux < 6.13).
var noGetxattrat atomic.Bool

// lgetxattrAt reads xattr name of dirfd/rel, not following a final
// symlink, with a single relative lookup where the kernel has
// getxattrat(2); elsewhere it uses lgetxattr(2) on dir/rel, the same
// file (dir is dirfd's path).
func lgetxattrAt(dirfd int, dir, rel, name string, dest []byte) (int, error) {
	if !noGetxattrat.Load() {
		p, err := unix.BytePtrFromString(rel)
		if err != nil {
			return 0, err
		}
		np, err := unix.BytePtrFromString(name)
		if err != nil {
			return 0, err
		}
		var args struct {
			value uint64
			size  uint32
			flags uint32
		}
		if len(dest) > 0 {
			args.value = uint64(uintptr(unsafe.Pointer(&dest[0])))
			args.size = uint32(len(dest))
		}
		n, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
			unix.AT_SYMLINK_NOFOLLOW, uintptr(unsafe.Pointer(np)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
		runtime.KeepAlive(dest)
		if e == 0 {
			return int(n), nil
		}
		if e != unix.ENOSYS {
			return 0, e
		}
		noGetxattrat.Store(true)
	}
	return unix.Lgetxattr(dir+"/"+rel, name, dest)
}
