package repo_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/repo/repotest"
)

// TestMain doubles as the child process of TestPinHandoff.
func TestMain(m *testing.M) {
	if path := os.Getenv("PIN_HANDOFF_PATH"); path != "" {
		pinHandoffChild(path)
	}
	os.Exit(m.Run())
}

// pinHandoffChild adopts the pin on descriptor 3 and holds it until
// stdin closes.
func pinHandoffChild(path string) {
	p, err := repo.AdoptPin(os.NewFile(3, "pin"), path)
	if err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("adopted\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if os.Getenv("PIN_HANDOFF_RELEASE") != "" {
		if err := p.Release(); err != nil {
			os.Exit(2)
		}
	}
	os.Exit(0)
}

// TestPinHandoff: a pin made by one process and handed to another as an
// inherited descriptor stays live after the first disowns it, records
// its new owner, and ends with the second: removed by Release, or dead
// (and removed by the next ListPins(true)) when it exits without one.
func TestPinHandoff(t *testing.T) {
	r := repotest.NewRepoNoSync(t, repo.ModeBareUser)
	src := repotest.VectorTrees(t, t.TempDir())
	c := commitDir(t, r, filepath.Join(src, "t1"), &repo.Modifier{Canonical: true}, &repo.CommitOptions{Branch: "t1", Subject: "s", Timestamp: ts2020, NoBindings: true})

	for _, release := range []bool{true, false} {
		p, err := r.Pin(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PIN_HANDOFF_PATH="+p.Path())
		if release {
			cmd.Env = append(cmd.Env, "PIN_HANDOFF_RELEASE=1")
		}
		cmd.ExtraFiles = []*os.File{p.File()}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if line != "adopted\n" {
			t.Fatalf("child said %q", line)
		}
		p.Disown()
		pins, err := r.ListPins(false)
		if err != nil {
			t.Fatal(err)
		}
		if len(pins) != 1 || !pins[0].Live || pins[0].Commit != c {
			t.Fatalf("after handoff: pins %+v, want one live pin of %s", pins, c)
		}
		b, err := os.ReadFile(p.Path())
		if err != nil {
			t.Fatal(err)
		}
		if want := c.String() + "\n" + strconv.Itoa(cmd.Process.Pid) + "\n"; string(b) != want {
			t.Errorf("pin file %q, want %q", b, want)
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
		pins, err = r.ListPins(true)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case release && len(pins) != 0:
			t.Errorf("released pin still listed: %+v", pins)
		case !release && (len(pins) != 1 || pins[0].Live):
			t.Errorf("pin of an exited owner: %+v, want one dead pin", pins)
		}
		if pins, _ := r.ListPins(false); len(pins) != 0 {
			t.Errorf("pins left: %+v", pins)
		}
	}

	// A descriptor of another file is refused.
	p, err := r.Pin(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	other, err := os.Open(filepath.Join(r.Path(), "config"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := repo.AdoptPin(other, p.Path()); err == nil || !strings.Contains(err.Error(), "another file") {
		t.Errorf("adopting another file: %v", err)
	}
	if _, err := repo.AdoptPin(p.File(), filepath.Join(filepath.Dir(p.Path()), "x.pin")); err == nil {
		t.Error("adopting a bad name succeeded")
	}
}
