package bundle

import (
	"reflect"
	"strings"
	"testing"
	"time"

	ispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const testPasswd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:
staff:x:50:app,other
app:x:1000:
audio:x:29:app
`

func TestFromConfigUser(t *testing.T) {
	for _, c := range []struct {
		user       string
		uid, gid   uint32
		sgids      []uint32
		home       string
		noPasswd   bool
		wantErrStr string
	}{
		{user: "", uid: 0, gid: 0, sgids: []uint32{}, home: "/root"},
		{user: "app", uid: 1000, gid: 1000, sgids: []uint32{50, 29}, home: "/home/app"},
		{user: "app:staff", uid: 1000, gid: 50, sgids: []uint32{}, home: "/home/app"},
		{user: "1000", uid: 1000, gid: 1000, sgids: []uint32{50, 29}, home: "/home/app"},
		{user: "1:50", uid: 1, gid: 50, sgids: []uint32{}, home: "/usr/sbin"},
		{user: "4242:4343", uid: 4242, gid: 4343, sgids: []uint32{}},
		{user: "4242", uid: 4242, gid: 0, sgids: []uint32{}, noPasswd: true},
		{user: "nobody", wantErrStr: "nobody"},
		{user: "app:nogroup", wantErrStr: "nogroup"},
	} {
		img := &ispec.Image{Platform: ispec.Platform{OS: "linux"}, Config: ispec.ImageConfig{User: c.user}}
		passwd, group := []byte(testPasswd), []byte(testGroup)
		if c.noPasswd {
			passwd, group = nil, nil
		}
		s, err := FromConfig(img, passwd, group, Options{})
		if c.wantErrStr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrStr) {
				t.Errorf("user %q: err %v, want one naming %q", c.user, err, c.wantErrStr)
			}
			continue
		}
		if err != nil {
			t.Errorf("user %q: %v", c.user, err)
			continue
		}
		u := s.Process.User
		if u.UID != c.uid || u.GID != c.gid || !reflect.DeepEqual(u.AdditionalGids, c.sgids) {
			t.Errorf("user %q: uid %d gid %d sgids %v, want %d %d %v", c.user, u.UID, u.GID, u.AdditionalGids, c.uid, c.gid, c.sgids)
		}
		var home string
		for _, kv := range s.Process.Env {
			if v, ok := strings.CutPrefix(kv, "HOME="); ok {
				home = v
			}
		}
		if home != c.home {
			t.Errorf("user %q: HOME %q, want %q", c.user, home, c.home)
		}
	}
}

func TestFromConfigProcess(t *testing.T) {
	created := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	img := &ispec.Image{
		Created:  &created,
		Author:   "someone",
		Platform: ispec.Platform{OS: "linux", Architecture: "amd64"},
		Config: ispec.ImageConfig{
			Entrypoint: []string{"/bin/app", "--flag"}, Cmd: []string{"serve"},
			Env:          []string{"TERM=dumb", "FOO=a=b"},
			WorkingDir:   "/srv",
			Labels:       map[string]string{"k": "v"},
			ExposedPorts: map[string]struct{}{"80/tcp": {}, "443/tcp": {}},
			Volumes:      map[string]struct{}{"/b": {}, "/a": {}},
			StopSignal:   "SIGINT",
		},
	}
	s, err := FromConfig(img, nil, nil, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/app", "--flag", "serve"}; !reflect.DeepEqual(s.Process.Args, want) {
		t.Errorf("args %q, want %q", s.Process.Args, want)
	}
	if want := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=dumb", "FOO=a=b"}; !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env %q, want %q", s.Process.Env, want)
	}
	if s.Process.Cwd != "/srv" || s.Root.Readonly || s.Root.Path != "rootfs" || s.Process.Terminal {
		t.Errorf("cwd %q readonly %v root %q terminal %v", s.Process.Cwd, s.Root.Readonly, s.Root.Path, s.Process.Terminal)
	}
	want := map[string]string{
		"k": "v", AnnotationOS: "linux", AnnotationArch: "amd64", AnnotationAuthor: "someone",
		AnnotationCreated: "2024-01-02T03:04:05.000000006Z", AnnotationStopSignal: "SIGINT",
		AnnotationExposedPorts: "443/tcp,80/tcp",
	}
	if !reflect.DeepEqual(s.Annotations, want) {
		t.Errorf("annotations %v, want %v", s.Annotations, want)
	}
	n := len(s.Mounts)
	if n < 2 || s.Mounts[n-2].Destination != "/a" || s.Mounts[n-1].Destination != "/b" || s.Mounts[n-1].Type != "tmpfs" {
		t.Errorf("volume mounts: %+v", s.Mounts)
	}
	// Nothing of one config leaks into the next (the defaults are fresh).
	s2, err := FromConfig(&ispec.Image{Platform: ispec.Platform{OS: "linux"}}, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s2.Process.Args, []string{"sh"}) || len(s2.Mounts) != 7 || !s2.Root.Readonly || len(s2.Process.Env) != 2 {
		t.Errorf("defaults: args %q, %d mounts, readonly %v, env %q", s2.Process.Args, len(s2.Mounts), s2.Root.Readonly, s2.Process.Env)
	}
	for _, bad := range []*ispec.Image{
		{Platform: ispec.Platform{OS: "windows"}},
		{Platform: ispec.Platform{OS: "linux"}, Config: ispec.ImageConfig{Env: []string{"NOEQUALS"}}},
		{Platform: ispec.Platform{OS: "linux"}, Config: ispec.ImageConfig{Env: []string{"=x"}}},
	} {
		if _, err := FromConfig(bad, nil, nil, Options{}); err == nil {
			t.Errorf("FromConfig(%+v) succeeded, want an error", bad)
		}
	}
}
