package fs

import (
	"bytes"
	"io"
	"sync/atomic"
)

// onceFilter passes log lines to w, except that it passes only the first
// line that contains prefix. go-fuse logs "trySplice: ... max pipe size"
// for every read whose reply (1 MiB and its header) exceeds the largest
// pipe the system allows; the read then falls back to a copy, which is
// correct, and the line carries nothing new after the first.
type onceFilter struct {
	w      io.Writer
	prefix []byte
	seen   atomic.Bool
}

func (f *onceFilter) Write(p []byte) (int, error) {
	if bytes.Contains(p, f.prefix) && f.seen.Swap(true) {
		return len(p), nil
	}
	return f.w.Write(p)
}
