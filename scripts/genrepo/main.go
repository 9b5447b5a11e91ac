package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ostree-mount/ostree-mount/repo"
)

func main() {
	path := flag.String("repo", "", "repository to create")
	commits := flag.Int("commits", 1000, "commits in all")
	branches := flag.Int("branches", 10, "branches")
	files := flag.Int("files", 100, "new files per commit")
	flag.Parse()
	r, err := repo.Init(*path, repo.InitOptions{Mode: repo.ModeBareUser})
	if err != nil {
		log.Fatal(err)
	}
	// Generated data needs no durability: skip syncfs per commit, then
	// restore the default so the benchmark runs with it.
	cfg := filepath.Join(*path, "config")
	orig, err := os.ReadFile(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(append([]byte{}, orig...), "fsync=false\n"...), 0o644); err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := os.WriteFile(cfg, orig, 0o644); err != nil {
			log.Fatal(err)
		}
	}()
	r.Close()
	if r, err = repo.Open(*path); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	dirMeta := &repo.DirMeta{Mode: repo.ModeDir | 0o755}
	// Each branch keeps seven subdirectories; a commit rewrites one.
	trees := make([][7]repo.Checksum, *branches)
	for i := 1; i <= *commits; i++ {
		tx, err := r.Begin(ctx)
		if err != nil {
			log.Fatal(err)
		}
		meta, err := tx.WriteDirMeta(dirMeta)
		if err != nil {
			log.Fatal(err)
		}
		b := i % *branches
		dt := &repo.DirTree{}
		for f := 0; f < *files; f++ {
			content := fmt.Sprintf("commit %d file %d\n", i, f)
			m := &repo.FileMeta{Mode: repo.ModeRegular | 0o644, Size: int64(len(content))}
			c, err := tx.WriteFile(m, strings.NewReader(content))
			if err != nil {
				log.Fatal(err)
			}
			dt.Files = append(dt.Files, repo.TreeFile{Name: fmt.Sprintf("f%03d", f), Checksum: c})
		}
		sub, err := tx.WriteDirTree(dt)
		if err != nil {
			log.Fatal(err)
		}
		trees[b][i%7] = sub
		root := &repo.DirTree{}
		for d, t := range trees[b] {
			if !t.IsZero() {
				root.Dirs = append(root.Dirs, repo.TreeDir{Name: fmt.Sprintf("d%d", d), Tree: t, Meta: meta})
			}
		}
		rt, err := tx.WriteDirTree(root)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := tx.WriteCommitFor(rt, meta, &repo.CommitOptions{
			Branch: fmt.Sprintf("branch%d", b), Subject: fmt.Sprint(i), NoBindings: true,
			Timestamp: time.Unix(1600000000+int64(i), 0),
		}); err != nil {
			log.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			log.Fatal(err)
		}
	}
}
