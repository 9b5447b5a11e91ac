package fs

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountInfo describes a mount, from /proc/self/mountinfo.
// FSType is the filesystem type of the mounts this package makes, as
// /proc/self/mountinfo shows it.
const FSType = "fuse.ostree-mount"

type MountInfo struct {
	Dev    uint64 // the device number of its superblock (st_dev)
	FSType string
	Source string
}

// MountedAt returns the topmost mount whose mountpoint is path (absolute
// and clean), reading /proc/self/mountinfo: it touches nothing under
// path, so it neither waits for a FUSE daemon nor fails on a dead one.
func MountedAt(path string) (MountInfo, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return MountInfo{}, false, err
	}
	defer f.Close()
	var top MountInfo
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional...] - type source superoptions
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMountinfo(fields[4]) != path {
			continue
		}
		var mi MountInfo
		if maj, min, ok := strings.Cut(fields[2], ":"); ok {
			a, err1 := strconv.ParseUint(maj, 10, 32)
			b, err2 := strconv.ParseUint(min, 10, 32)
			if err1 != nil || err2 != nil {
				return MountInfo{}, false, fmt.Errorf("mountinfo: bad device %q", fields[2])
			}
			mi.Dev = unix.Mkdev(uint32(a), uint32(b))
		}
		for i := 5; i+2 < len(fields); i++ {
			if fields[i] == "-" {
				mi.FSType, mi.Source = fields[i+1], unescapeMountinfo(fields[i+2])
				break
			}
		}
		// Later lines are mounted on top of earlier ones.
		top, found = mi, true
	}
	if err := sc.Err(); err != nil {
		return MountInfo{}, false, fmt.Errorf("mountinfo: %w", err)
	}
	return top, found, nil
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// DetachIfOurs lazily unmounts the mount at mountpoint if it is still
// the one with device number dev, and not a later mount on the same
// directory.
func DetachIfOurs(mountpoint string, dev uint64) error {
	mi, ok, err := MountedAt(mountpoint)
	if err != nil || !ok || mi.Dev != dev {
		return err
	}
	return unix.Unmount(mountpoint, unix.MNT_DETACH)
}
