package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestForEachObjectLimit: forEachObject runs exactly pruneWorkers calls
// at once. Each call waits until pruneWorkers of them are running (or a
// deadline passes), so a smaller limit times out and a larger one shows
// in the maximum.
func TestForEachObjectLimit(t *testing.T) {
	objs := make([]ObjectInfo, 100)
	var active, peak atomic.Int32
	full := make(chan struct{})
	var once sync.Once
	var seen atomic.Int32
	timedOut := false
	var mu sync.Mutex
	err := forEachObject(context.Background(), objs, func(o *ObjectInfo) error {
		o.Size = 1
		seen.Add(1)
		n := active.Add(1)
		defer active.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == pruneWorkers {
			once.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-time.After(10 * time.Second):
			mu.Lock()
			timedOut = true
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if timedOut {
		t.Errorf("never %d calls at once (peak %d)", pruneWorkers, peak.Load())
	}
	if p := peak.Load(); p > pruneWorkers {
		t.Errorf("%d calls at once, limit %d", p, pruneWorkers)
	}
	if seen.Load() != int32(len(objs)) {
		t.Errorf("%d calls for %d objects", seen.Load(), len(objs))
	}
	for i, o := range objs {
		if o.Size != 1 {
			t.Fatalf("object %d not visited", i)
		}
	}
}

// TestForEachObjectFirstError: the first error is returned and no object
// is started after it. The first objects (more than run at once) all
// fail, so whichever runs first fails, and a later object is handed out
// only once one has ended: none of the later ones may be visited.
func TestForEachObjectFirstError(t *testing.T) {
	boom := errors.New("boom")
	bad := 2*pruneWorkers + 1
	objs := make([]ObjectInfo, bad+1000)
	for i := range objs[:bad] {
		objs[i].Size = -1
	}
	var late atomic.Int32
	err := forEachObject(context.Background(), objs, func(o *ObjectInfo) error {
		if o.Size < 0 {
			return boom
		}
		late.Add(1)
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d objects visited after the first failed", n)
	}
}

// TestForEachObjectCanceled: an ended context is the error, and no object
// is visited.
func TestForEachObjectCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := forEachObject(ctx, make([]ObjectInfo, 10), func(*ObjectInfo) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if called {
		t.Error("an object was visited")
	}
}

// TestExecutePruneStages: each stage of a plan is deleted only once the
// one before it is gone. The first stage's object cannot be unlinked (a
// directory stands in its place), so the prune fails, and the objects of
// the second stage are all still there; without the failure both stages
// go, and an object already gone is no error.
func TestExecutePruneStages(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"), InitOptions{Mode: ModeBareUser})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	tx, err := r.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var files []ObjectInfo
	for i := 0; i < 3*pruneWorkers; i++ {
		content := fmt.Sprintf("file %d\n", i)
		c, err := tx.WriteFile(&FileMeta{Mode: ModeRegular | 0o644, Size: int64(len(content))}, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, ObjectInfo{ObjectName: ObjectName{ObjFile, c}})
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	blocker, err := ParseChecksum(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.ObjectPath(ObjCommit, blocker), 0o755); err != nil {
		t.Fatal(err)
	}
	plan := &PrunePlan{Delete: append([]ObjectInfo{{ObjectName: ObjectName{ObjCommit, blocker}}}, files...)}
	plan.Stages = []int{1, len(plan.Delete)}
	if err := r.executePrune(ctx, plan); err == nil {
		t.Fatal("prune deleted a directory")
	}
	for _, f := range files {
		if _, err := os.Lstat(r.ObjectPath(f.Type, f.Checksum)); err != nil {
			t.Fatalf("stage 2 began before stage 1 was done: %v", err)
		}
	}
	if err := os.Remove(r.ObjectPath(ObjCommit, blocker)); err != nil {
		t.Fatal(err)
	}
	if err := r.executePrune(ctx, plan); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := os.Lstat(r.ObjectPath(f.Type, f.Checksum)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s not deleted: %v", f.Checksum, err)
		}
	}
}
