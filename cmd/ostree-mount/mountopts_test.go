package main

import (
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/mount"
)

func TestApplyMountOpts(t *testing.T) {
	var o mount.Options
	rp, err := applyMountOpts(&o, "repo=/srv/repo,allow_other,suid,verify,passthrough,debug,cache_size=8M,log_file=/tmp/x.log,ro,nodev,_netdev,nofail,noauto,user,defaults,x-systemd.automount,comment=systemd.x")
	if err != nil {
		t.Fatal(err)
	}
	if rp != "/srv/repo" || !o.FS.AllowOther || !o.FS.Suid || !o.FS.Verify || !o.FS.Passthrough || !o.FS.Debug || o.CacheSize != 8<<20 || o.LogFile != "/tmp/x.log" {
		t.Errorf("applied: repo %q, %+v", rp, o)
	}
	if _, err := applyMountOpts(&o, "rw,dev,suid,nosuid"); err != nil || o.FS.Suid {
		t.Errorf("suid,nosuid: suid %v, %v", o.FS.Suid, err)
	}
	for opt, want := range map[string]string{
		"bogus":        `"bogus"`,
		"noexec":       "noexec: not supported",
		"repo":         "repo=VALUE",
		"verify=1":     "takes no value",
		"cache_size=0": "cache_size",
	} {
		var o mount.Options
		if _, err := applyMountOpts(&o, "ro,"+opt); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("-o ro,%s: %v, want an error with %q", opt, err, want)
		}
	}
}
