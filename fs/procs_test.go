package fs

import "testing"

// go-fuse blocks at most readers+1 goroutines in read(2), each holding a
// P; spareProcs must leave one P idle for every GOMAXPROCS the process
// can start with, and size the readers as go-fuse would have.
func TestSpareProcs(t *testing.T) {
	for _, base := range []int{1, 2, 3, 8, 64} {
		readers, procs := spareProcs(base)
		if want := max(base, 2); readers != want {
			t.Errorf("base %d: readers %d, want %d (go-fuse's own choice)", base, readers, want)
		}
		if procs <= readers+1 {
			t.Errorf("base %d: %d Ps for up to %d blocked readers leaves none idle", base, procs, readers+1)
		}
	}
}
