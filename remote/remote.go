package remote

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
)

// DefaultTimeout bounds one request when the remote sets no
// ostree-mount-timeout.
const DefaultTimeout = 30 * time.Second

// TimeoutKey is the config key of a remote's per-request timeout.
const TimeoutKey = "ostree-mount-timeout"

// Remote is a configured remote.
type Remote struct {
	Name string
	URL  string
	// GPGVerify is gpg-verify, true when unset as in ostree.
	GPGVerify bool
	// Timeout bounds one request (ostree-mount-timeout).
	Timeout time.Duration
	keys    map[string]string
	order   []string
}

// Get returns a raw config key of the remote.
func (rm *Remote) Get(key string) (string, bool) {
	v, ok := rm.keys[key]
	return v, ok
}

// Keys returns the remote's config keys in file order.
func (rm *Remote) Keys() []string { return append([]string(nil), rm.order...) }

// Bool reads a boolean key with a default.
func (rm *Remote) Bool(key string, def bool) (bool, error) {
	v, ok := rm.keys[key]
	if !ok {
		return def, nil
	}
	switch v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return def, fmt.Errorf("remote %s: %s=%q is not a boolean", rm.Name, key, v)
}

// group is the config group of a remote.
func group(name string) string { return `remote "` + name + `"` }

// ValidateName checks a remote name as ostree does.
func ValidateName(name string) error {
	return repo.RefName{Kind: repo.RefRemote, Remote: name, Name: "x"}.Validate()
}

// Lookup returns the remote NAME of the repository's config.
func Lookup(r *repo.Repo, name string) (*Remote, error) {
	return fromConfig(r.Config(), name)
}

// ErrNoRemote: no remote of that name is configured.
var ErrNoRemote = fmt.Errorf("no such remote")

func fromConfig(c *repo.Config, name string) (*Remote, error) {
	g := group(name)
	if !c.HasGroup(g) {
		return nil, fmt.Errorf("remote %q: %w", name, ErrNoRemote)
	}
	rm := &Remote{Name: name, keys: map[string]string{}, Timeout: DefaultTimeout}
	for _, k := range c.Keys(g) {
		v, _ := c.Get(g, k)
		rm.keys[k] = v
		rm.order = append(rm.order, k)
	}
	rm.URL = rm.keys["url"]
	if rm.URL == "" {
		return nil, fmt.Errorf("remote %q: no url in config", name)
	}
	var err error
	if rm.GPGVerify, err = rm.Bool("gpg-verify", true); err != nil {
		return nil, err
	}
	if v, ok := rm.keys[TimeoutKey]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, err2 := strconv.ParseFloat(v, 64)
			if err2 != nil {
				return nil, fmt.Errorf("remote %s: %s=%q: want a duration such as 30s", name, TimeoutKey, v)
			}
			d = time.Duration(secs * float64(time.Second))
		}
		if d <= 0 {
			return nil, fmt.Errorf("remote %s: %s=%q: must be positive", name, TimeoutKey, v)
		}
		rm.Timeout = d
	}
	return rm, nil
}

// List returns the configured remotes, in config order.
func List(r *repo.Repo) ([]*Remote, error) {
	c := r.Config()
	var out []*Remote
	for _, g := range c.Groups() {
		name, ok := strings.CutPrefix(g, `remote "`)
		if !ok || !strings.HasSuffix(name, `"`) {
			continue
		}
		rm, err := fromConfig(c, strings.TrimSuffix(name, `"`))
		if err != nil {
			return nil, err
		}
		out = append(out, rm)
	}
	return out, nil
}

// AddOptions are the options of Add.
type AddOptions struct {
	NoGPGVerify bool
	// Set lists extra KEY=VALUE settings, written in order.
	Set []string
	// IfNotExists makes adding an existing remote a no-op.
	IfNotExists bool
}

// Add writes a remote into the repository's config as `ostree remote add`
// does: url, then gpg-verify=false if asked, then the --set keys.
func Add(r *repo.Repo, name, rawURL string, o AddOptions) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("remote %s: url %q: want http://, https:// or file://", name, rawURL)
	}
	switch u.Scheme {
	case "http", "https", "file":
	default:
		return fmt.Errorf("remote %s: url %q: scheme %q not supported (http, https, file)", name, rawURL, u.Scheme)
	}
	type kv struct{ k, v string }
	var sets []kv
	for _, s := range o.Set {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, "=[]\n") || strings.Contains(v, "\n") {
			return fmt.Errorf("remote %s: --set %q: want KEY=VALUE", name, s)
		}
		sets = append(sets, kv{k, v})
	}
	return r.UpdateConfig(func(c *repo.Config) error {
		g := group(name)
		if c.HasGroup(g) {
			if o.IfNotExists {
				return nil
			}
			return fmt.Errorf("remote %s already exists: %w", name, repo.ErrExists)
		}
		c.Set(g, "url", rawURL)
		if o.NoGPGVerify {
			c.Set(g, "gpg-verify", "false")
		}
		for _, s := range sets {
			c.Set(g, s.k, s.v)
		}
		_, err := fromConfig(c, name)
		return err
	})
}

// Delete removes a remote from the config. Its refs/remotes/NAME refs stay,
// as with ostree.
func Delete(r *repo.Repo, name string, ifExists bool) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	return r.UpdateConfig(func(c *repo.Config) error {
		if !c.DeleteGroup(group(name)) && !ifExists {
			return fmt.Errorf("remote %q: %w", name, ErrNoRemote)
		}
		return nil
	})
}
