package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

const module = "github.com/ostree-mount/ostree-mount"

// layers gives each top-level directory its layer; see doc.go.
var layers = map[string]int{
	"cache":         0,
	"repo/gvariant": 0,
	"repo":          1,
	"remote":        2,
	"compose":       3,
	"image":         4,
	"fs":            4,
	"mount":         5,
	"cmd":           6,
	"tests":         7,
	"scripts":       7,
}

// owners maps a third-party import path prefix to the one package
// directory (relative to the module) allowed to import it.
var owners = map[string]string{
	"github.com/hanwen/go-fuse/":             "fs",
	"github.com/urfave/cli/":                 "cmd/ostree-mount",
	"github.com/dgraph-io/ristretto/":        "cache",
	"github.com/google/go-containerregistry": "image/source",
	"github.com/ProtonMail/go-crypto":        "repo/sign",
}

type pkg struct {
	ImportPath   string
	Name         string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func main() {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lintdeps: go list: %v\n", err)
		os.Exit(2)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintf(os.Stderr, "lintdeps: go list output: %v\n", err)
			os.Exit(2)
		}
		pkgs = append(pkgs, p)
	}
	var problems []string
	for _, p := range pkgs {
		problems = append(problems, check(p)...)
	}
	sort.Strings(problems)
	for _, s := range problems {
		fmt.Println(s)
	}
	if len(problems) > 0 {
		fmt.Printf("lintdeps: %d import rule violations (see scripts/lintdeps/doc.go)\n", len(problems))
		os.Exit(1)
	}
}

// rel returns an import path relative to the module, and whether it is
// inside the module.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// layerOf returns the layer and top-level directory of a module-relative
// package path.
func layerOf(r string) (int, string, bool) {
	best := ""
	for dir := range layers {
		if (r == dir || strings.HasPrefix(r, dir+"/")) && len(dir) > len(best) {
			best = dir
		}
	}
	if best == "" {
		return 0, "", false
	}
	return layers[best], best, true
}

func isHelper(r string) bool {
	last := r[strings.LastIndex(r, "/")+1:]
	return strings.HasSuffix(last, "test") && last != "test"
}

func check(p pkg) []string {
	from, ok := rel(p.ImportPath)
	if !ok {
		return nil
	}
	fromLayer, fromDir, known := layerOf(from)
	var problems []string
	if !known {
		return []string{fmt.Sprintf("%s: no layer for this directory (add it to scripts/lintdeps)", from)}
	}
	sets := []struct {
		imports []string
		test    bool
	}{{p.Imports, false}, {p.TestImports, true}, {p.XTestImports, true}}
	for _, s := range sets {
		for _, imp := range s.imports {
			if msg := checkImport(from, fromLayer, fromDir, imp, s.test || isHelper(from) || fromDir == "tests"); msg != "" {
				problems = append(problems, msg)
			}
		}
	}
	return problems
}

func checkImport(from string, fromLayer int, fromDir, imp string, test bool) string {
	for prefix, owner := range owners {
		if strings.HasPrefix(imp, prefix) && from != owner {
			return fmt.Sprintf("%s imports %s: only %s may (third-party owner)", from, imp, owner)
		}
	}
	to, ok := rel(imp)
	if !ok {
		return ""
	}
	if isHelper(to) && !test {
		return fmt.Sprintf("%s imports test helper %s outside _test.go files", from, to)
	}
	toLayer, toDir, known := layerOf(to)
	if !known {
		return fmt.Sprintf("%s imports %s, which has no layer", from, to)
	}
	if toDir == fromDir || toLayer < fromLayer {
		return ""
	}
	return fmt.Sprintf("%s (layer %d) imports %s (layer %d): imports flow from the repository up to the CLI", from, fromLayer, to, toLayer)
}
