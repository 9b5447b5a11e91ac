package repo_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
)

func TestConfigGroups(t *testing.T) {
	c, err := repo.ParseConfig([]byte("[core]\nrepo_version=1\nmode=bare-user\n\n# a remote\n[remote \"a\"]\nurl=http://x/\nbranches=a;b;\n\n[remote \"b\"]\nurl=file:///y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Groups(); !slices.Equal(g, []string{"core", `remote "a"`, `remote "b"`}) {
		t.Fatalf("groups %q", g)
	}
	if k := c.Keys(`remote "a"`); !slices.Equal(k, []string{"url", "branches"}) {
		t.Fatalf("keys %q", k)
	}
	d := c.Clone()
	if !c.DeleteGroup(`remote "a"`) || c.DeleteGroup(`remote "a"`) || c.HasGroup(`remote "a"`) {
		t.Fatal("DeleteGroup")
	}
	if !d.HasGroup(`remote "a"`) {
		t.Fatal("Clone shares groups")
	}
	if got, want := string(c.Bytes()), "[core]\nrepo_version=1\nmode=bare-user\n\n[remote \"b\"]\nurl=file:///y\n"; got != want {
		t.Fatalf("bytes:\n%s\nwant:\n%s", got, want)
	}
}

func TestUpdateConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r")
	r, err := repo.Init(p, repo.InitOptions{Mode: repo.ModeBareUser})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Another writer (ostree remote add) changed the file meanwhile.
	b, _ := os.ReadFile(filepath.Join(p, "config"))
	if err := os.WriteFile(filepath.Join(p, "config"), append(b, "\n[remote \"theirs\"]\nurl=http://t/\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateConfig(func(c *repo.Config) error { c.Set(`remote "ours"`, "url", "http://o/"); return nil }); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Config().Get(`remote "theirs"`, "url"); v != "http://t/" {
		t.Fatalf("the other writer's remote was lost: %q", v)
	}
	r2, err := repo.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if v, _ := r2.Config().Get(`remote "ours"`, "url"); v != "http://o/" {
		t.Fatalf("ours: %q", v)
	}
}
