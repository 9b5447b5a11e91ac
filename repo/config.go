package repo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Config is a repository's `config` file, a GKeyFile. Groups and keys keep
// their order so that a rewrite changes only what was set.
type Config struct {
	groups []configGroup
}

type configGroup struct {
	name string
	keys []configKey
}

type configKey struct{ key, value string }

// ParseConfig parses GKeyFile text. Comments and blank lines are dropped.
func ParseConfig(b []byte) (*Config, error) {
	c := &Config{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || s[0] == '#':
			continue
		case s[0] == '[':
			if !strings.HasSuffix(s, "]") {
				return nil, fmt.Errorf("config line %d: unterminated group %q", line, s)
			}
			c.groups = append(c.groups, configGroup{name: s[1 : len(s)-1]})
		default:
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return nil, fmt.Errorf("config line %d: want key=value, have %q", line, s)
			}
			if len(c.groups) == 0 {
				return nil, fmt.Errorf("config line %d: key %q outside a group", line, k)
			}
			g := &c.groups[len(c.groups)-1]
			g.keys = append(g.keys, configKey{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return c, sc.Err()
}

// Bytes serializes the config in GKeyFile form.
func (c *Config) Bytes() []byte {
	var b bytes.Buffer
	for i, g := range c.groups {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[%s]\n", g.name)
		for _, k := range g.keys {
			fmt.Fprintf(&b, "%s=%s\n", k.key, k.value)
		}
	}
	return b.Bytes()
}

// Get returns the value of group.key.
func (c *Config) Get(group, key string) (string, bool) {
	for _, g := range c.groups {
		if g.name != group {
			continue
		}
		for _, k := range g.keys {
			if k.key == key {
				return k.value, true
			}
		}
	}
	return "", false
}

// Set sets group.key, adding the group or key at the end when missing.
func (c *Config) Set(group, key, value string) {
	for gi := range c.groups {
		g := &c.groups[gi]
		if g.name != group {
			continue
		}
		for ki := range g.keys {
			if g.keys[ki].key == key {
				g.keys[ki].value = value
				return
			}
		}
		g.keys = append(g.keys, configKey{key, value})
		return
	}
	c.groups = append(c.groups, configGroup{name: group, keys: []configKey{{key, value}}})
}

// Bool reads a GKeyFile boolean with a default.
func (c *Config) Bool(group, key string, def bool) (bool, error) {
	v, ok := c.Get(group, key)
	if !ok {
		return def, nil
	}
	switch v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return def, fmt.Errorf("config %s.%s: %q is not a boolean", group, key, v)
}

// Int reads an integer with a default.
func (c *Config) Int(group, key string, def int64) (int64, error) {
	v, ok := c.Get(group, key)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return def, fmt.Errorf("config %s.%s: %q is not an integer", group, key, v)
	}
	return n, nil
}

// Groups returns the names of the config's groups, in file order.
func (c *Config) Groups() []string {
	out := make([]string, len(c.groups))
	for i, g := range c.groups {
		out[i] = g.name
	}
	return out
}

// HasGroup reports whether the group exists.
func (c *Config) HasGroup(group string) bool {
	for _, g := range c.groups {
		if g.name == group {
			return true
		}
	}
	return false
}

// Keys returns the keys of a group, in file order.
func (c *Config) Keys(group string) []string {
	for _, g := range c.groups {
		if g.name == group {
			out := make([]string, len(g.keys))
			for i, k := range g.keys {
				out[i] = k.key
			}
			return out
		}
	}
	return nil
}

// DeleteGroup removes a group and its keys; it reports whether the group
// existed.
func (c *Config) DeleteGroup(group string) bool {
	for i, g := range c.groups {
		if g.name == group {
			c.groups = append(c.groups[:i], c.groups[i+1:]...)
			return true
		}
	}
	return false
}

// Clone returns a deep copy of the config.
func (c *Config) Clone() *Config {
	d := &Config{groups: make([]configGroup, len(c.groups))}
	for i, g := range c.groups {
		d.groups[i] = configGroup{name: g.name, keys: append([]configKey(nil), g.keys...)}
	}
	return d
}

// UpdateConfig rereads the repository's config file, lets fn change it,
// and writes it back atomically (as ostree does, without a lock: config
// writers are people running commands). The open Repo sees the result.
// Comments in the file are not kept.
func (r *Repo) UpdateConfig(fn func(*Config) error) error {
	p := filepath.Join(r.path, "config")
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("config %s: %w", p, err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return fmt.Errorf("config %s: %w", p, err)
	}
	if err := fn(c); err != nil {
		return err
	}
	if err := writeFileAtomic(p, c.Bytes(), 0o644, r.fsync); err != nil {
		return fmt.Errorf("config %s: %w", p, err)
	}
	r.cfg = c
	return nil
}
