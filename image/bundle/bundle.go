// Package bundle generates the runtime-spec configuration (config.json)
// of an OCI runtime bundle from an image commit, as `umoci unpack`
// (umoci 0.4.7, oci/config/convert) generates it from the image config:
//
//   - umoci's defaults: PATH and TERM in the environment, no new
//     privileges, the capabilities CAP_AUDIT_WRITE, CAP_KILL and
//     CAP_NET_BIND_SERVICE in every set, RLIMIT_NOFILE 1024, the mounts
//     /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys and
//     /sys/fs/cgroup, the masked and read-only paths, a device cgroup
//     that denies everything, and the pid, network, ipc, uts and mount
//     namespaces; no seccomp;
//   - process.args is the config's Entrypoint followed by its Cmd (sh
//     when both are empty); process.env is the defaults overridden, name
//     by name, by the config's Env, then HOME from the user's passwd
//     entry; process.cwd is WorkingDir, or /;
//   - process.user is the config's User (user, uid, user:group,
//     uid:gid, ...) resolved through the image's own /etc/passwd and
//     /etc/group, read from the composed image (never the host's), with
//     the supplementary groups of a user given without a group; a name
//     that neither file has is an error, a number is taken as is;
//   - a tmpfs mount per Volume (sorted, where umoci's order is random);
//   - annotations: the config's labels and
//     org.opencontainers.image.{os,architecture,author,created,stopSignal,exposedPorts}.
//
// It differs from umoci where a lazily mounted bundle needs it:
// process.terminal is false (runc run then needs no console), root.path
// is "rootfs" and root.readonly says whether the root is writable, and
// the hostname is "ostree-mount" rather than "umoci-default".
package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/moby/sys/user"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"
	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ostree-mount/ostree-mount/compose"
	"github.com/ostree-mount/ostree-mount/repo"
)

// Annotations umoci sets from fields of the image config that the
// runtime-spec has no place for.
const (
	AnnotationOS           = "org.opencontainers.image.os"
	AnnotationArch         = "org.opencontainers.image.architecture"
	AnnotationAuthor       = "org.opencontainers.image.author"
	AnnotationCreated      = "org.opencontainers.image.created"
	AnnotationStopSignal   = "org.opencontainers.image.stopSignal"
	AnnotationExposedPorts = "org.opencontainers.image.exposedPorts"
)

// Hostname is the container's hostname in a generated config.
const Hostname = "ostree-mount"

// ErrNotImage is wrapped when a commit has no image config.
var ErrNotImage = errors.New("not an image (no image config in the commit's metadata)")

// Opener opens a regular file object's content (*repo.Repo implements it).
type Opener interface {
	OpenContent(ctx context.Context, c repo.Checksum) (repo.Content, error)
}

// Options are the parts of the config that are not the image's.
type Options struct {
	// Writable is whether the bundle's root is writable (root.readonly
	// is its negation).
	Writable bool
}

// ImageConfig returns the image config stored in the metadata of the
// manifest commit cm.
func ImageConfig(cm *repo.Commit) (*ispec.Image, error) {
	v, ok := cm.Metadata.Get(compose.KeyConfig)
	if !ok {
		return nil, ErrNotImage
	}
	s, ok := v.Value.(string)
	if !ok {
		return nil, fmt.Errorf("metadata %s: not a string", compose.KeyConfig)
	}
	var img ispec.Image
	if err := json.Unmarshal([]byte(s), &img); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return &img, nil
}

// Generate returns the config of a bundle of the image that t composes,
// reading file contents (/etc/passwd, /etc/group) through open.
func Generate(ctx context.Context, t *compose.Tree, open Opener, o Options) (*rspec.Spec, error) {
	sum, cm := t.Commit()
	img, err := ImageConfig(cm)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", sum, err)
	}
	passwd, err := readImageFile(ctx, t, open, "/etc/passwd")
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", sum, err)
	}
	group, err := readImageFile(ctx, t, open, "/etc/group")
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", sum, err)
	}
	spec, err := FromConfig(img, passwd, group, o)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", sum, err)
	}
	return spec, nil
}

// FromConfig returns the config for image config img, whose /etc/passwd
// and /etc/group hold passwd and group (nil: the image has no such file).
func FromConfig(img *ispec.Image, passwd, group []byte, o Options) (*rspec.Spec, error) {
	if img.OS != "linux" {
		return nil, fmt.Errorf("image config: unsupported OS %q (want linux)", img.OS)
	}
	spec := defaults()
	spec.Root.Readonly = !o.Writable
	c := img.Config
	if c.WorkingDir != "" {
		spec.Process.Cwd = c.WorkingDir
	}
	for _, kv := range c.Env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("image config: Env %q: no '='", kv)
		}
		if name == "" {
			return nil, fmt.Errorf("image config: Env %q: empty name", kv)
		}
		setEnv(&spec.Process.Env, kv)
	}
	if args := append(append([]string{}, c.Entrypoint...), c.Cmd...); len(args) > 0 {
		spec.Process.Args = args
	}
	for k, v := range c.Labels {
		spec.Annotations[k] = v
	}
	var created time.Time
	if img.Created != nil {
		created = *img.Created
	}
	spec.Annotations[AnnotationOS] = img.OS
	spec.Annotations[AnnotationArch] = img.Architecture
	spec.Annotations[AnnotationAuthor] = img.Author
	spec.Annotations[AnnotationCreated] = created.Format(time.RFC3339Nano)
	spec.Annotations[AnnotationStopSignal] = c.StopSignal

	// A nil reader, not a nil *bytes.Reader: GetExecUser treats a missing
	// file as no entries, so that a numeric user needs none.
	var pr, gr io.Reader
	if passwd != nil {
		pr = bytes.NewReader(passwd)
	}
	if group != nil {
		gr = bytes.NewReader(group)
	}
	u, err := user.GetExecUser(c.User, nil, pr, gr)
	if err != nil {
		return nil, fmt.Errorf("image config: User %q: %w", c.User, err)
	}
	spec.Process.User.UID = uint32(u.Uid)
	spec.Process.User.GID = uint32(u.Gid)
	spec.Process.User.AdditionalGids = []uint32{}
	for _, g := range u.Sgids {
		spec.Process.User.AdditionalGids = append(spec.Process.User.AdditionalGids, uint32(g))
	}
	if u.Home != "" {
		setEnv(&spec.Process.Env, "HOME="+u.Home)
	}

	var ports []string
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	spec.Annotations[AnnotationExposedPorts] = strings.Join(ports, ",")
	var vols []string
	for v := range c.Volumes {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, v := range vols {
		spec.Mounts = append(spec.Mounts, rspec.Mount{
			Destination: v, Type: "tmpfs", Source: "none",
			Options: []string{"rw", "nosuid", "nodev", "noexec", "relatime"},
		})
	}
	return spec, nil
}

// setEnv sets kv (NAME=VALUE) in env, replacing an entry of that name.
func setEnv(env *[]string, kv string) {
	name, _, _ := strings.Cut(kv, "=")
	for i, old := range *env {
		if strings.HasPrefix(old, name+"=") {
			(*env)[i] = kv
			return
		}
	}
	*env = append(*env, kv)
}

// maxFileSize bounds what readImageFile reads: /etc/passwd and /etc/group
// are small, and the image is untrusted.
const maxFileSize = 16 << 20

// maxSymlinks bounds the symlinks followed to resolve one path, as
// Linux's 40.
const maxSymlinks = 40

// readImageFile reads the regular file at p in the composed image,
// following symlinks inside the image (an absolute target is relative to
// the image's root, ".." stops at it). It returns nil, nil when there is
// no such file.
func readImageFile(ctx context.Context, t *compose.Tree, open Opener, p string) ([]byte, error) {
	e, err := resolve(ctx, t, p)
	if errors.Is(err, compose.ErrNotExist) || errors.Is(err, compose.ErrNotDir) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w", p, err)
	}
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("image file %s: %w", p, err)
	}
	if e.Mode&repo.ModeFmt != repo.ModeRegular {
		return nil, nil
	}
	if e.Size > maxFileSize {
		return nil, fmt.Errorf("image file %s: %d bytes, more than %d", p, e.Size, maxFileSize)
	}
	c, err := open.OpenContent(ctx, e.Object)
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w", p, err)
	}
	defer c.Close()
	b, err := io.ReadAll(io.NewSectionReader(c, 0, e.Size))
	if err != nil {
		return nil, fmt.Errorf("image file %s: read: %w", p, err)
	}
	return b, nil
}

// resolve returns the entry at p, following symlinks inside the image.
func resolve(ctx context.Context, t *compose.Tree, p string) (*compose.Entry, error) {
	links := 0
	// done is the resolved directory path; todo the components left.
	done, todo := "/", splitPath(p)
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, name)
		e, err := t.Lookup(ctx, next)
		if err != nil {
			return nil, err
		}
		if e.Mode&repo.ModeFmt != repo.ModeSymlink {
			done = next
			continue
		}
		if links++; links > maxSymlinks {
			return nil, fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		if strings.HasPrefix(e.Target, "/") {
			done = "/"
		}
		todo = append(splitPath(e.Target), todo...)
	}
	return t.Lookup(ctx, done)
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}
