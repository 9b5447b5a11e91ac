package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ostree-mount/ostree-mount/mount"
)

// mountOptsUsage documents -o, the options of mount(8) and fstab, which
// mount.fuse3 passes on as 'ostree-mount SOURCE MOUNTPOINT -o OPTIONS'.
const mountOptsUsage = "mount(8) options, comma-separated, as mount -t fuse.ostree-mount and fstab give them: " +
	"repo=PATH, allow_other, suid, nosuid, nodev, dev, ro, rw, verify, passthrough, no_io_uring, debug, cache_size=SIZE, log_file=PATH; " +
	"mount(8)'s own (defaults, auto, noauto, user, users, nouser, owner, group, _netdev, nofail, exec, atime, noatime, relatime, x-*, comment=*) are ignored; " +
	"noexec and anything else are refused; rw and dev (which mount(8) and mount.fuse3 add) are accepted, but the mount stays read-only and nodev"

// ignoredMountOpts are the options that mount(8), fstab and systemd
// handle themselves, or that say what the mount is anyway.
var ignoredMountOpts = map[string]bool{
	"defaults": true, "auto": true, "noauto": true, "user": true, "users": true, "nouser": true,
	"owner": true, "group": true, "_netdev": true, "nofail": true, "exec": true,
	"atime": true, "noatime": true, "relatime": true, "strictatime": true, "nodiratime": true,
	"async": true, "sync": true, "nodev": true, "nosuid": true, "ro": true,
	// mount(8) adds rw unless the line says ro, and mount.fuse3 adds dev
	// and suid unless it says nodev and nosuid: the mount is read-only
	// and nodev all the same.
	"rw": true, "dev": true,
}

// applyMountOpts applies the -o list to o; it returns the repository
// that repo= names ("" if none). As with any filesystem root mounts,
// suid is honoured when the list says suid, which mount.fuse3 adds
// unless the line says nosuid.
func applyMountOpts(o *mount.Options, list string) (string, error) {
	var repoPath string
	for _, opt := range strings.Split(list, ",") {
		name, value, hasValue := strings.Cut(opt, "=")
		if opt == "" || ignoredMountOpts[opt] || strings.HasPrefix(name, "x-") || name == "comment" {
			if opt == "nosuid" {
				o.FS.Suid = false
			}
			continue
		}
		if hasValue != (name == "repo" || name == "cache_size" || name == "log_file") {
			if hasValue {
				return "", fmt.Errorf("-o %s: %s takes no value", opt, name)
			}
			return "", fmt.Errorf("-o %s: want %s=VALUE", opt, name)
		}
		var err error
		switch name {
		case "repo":
			repoPath = value
		case "cache_size":
			if o.CacheSize, err = parseSize(value); err == nil {
				err = mount.CheckCacheSize(o.CacheSize)
			}
		case "log_file":
			o.LogFile, err = filepath.Abs(value)
		case "allow_other":
			o.FS.AllowOther = true
		case "suid":
			o.FS.Suid = true
		case "verify":
			o.FS.Verify = true
		case "passthrough":
			o.FS.Passthrough = true
		case "no_io_uring":
			o.FS.NoURing = true
		case "debug":
			o.FS.Debug = true
		case "noexec":
			// fstab's user and users imply noexec.
			return "", fmt.Errorf("-o noexec: not supported (the mount allows exec; fstab's user and users imply noexec: add exec after them)")
		default:
			return "", fmt.Errorf("-o: unknown mount option %q", opt)
		}
		if err != nil {
			return "", fmt.Errorf("-o %s: %w", opt, err)
		}
	}
	return repoPath, nil
}
