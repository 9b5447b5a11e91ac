package tfs

import (
	"os"
	"testing"
	"testing/fstest"
	"time"
)

func TestFS(t *testing.T) {
	dir := os.Getenv("TFS_DIR")
	s := time.Now()
	err := fstest.TestFS(os.DirFS(dir))
	t.Logf("%s: %v in %v", dir, err != nil, time.Since(s))
	if err != nil {
		e := err.Error()
		if len(e) > 2000 {
			e = e[:2000]
		}
		t.Log(e)
	}
}
