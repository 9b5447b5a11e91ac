package tests

// Mounts that outlive their worker: the mount service's worker killed
// with SIGKILL, and the service upgraded, under containers and readers
// that must not notice (mount/doc.go, "Mounts that outlive their
// worker").

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ostree-mount/ostree-mount/repo"
	"github.com/ostree-mount/ostree-mount/tests/treecmp"
)

// serviceStatus is what 'serve --status' prints.
type serviceStatus struct {
	Supervisor, Worker, Generation, Restarts, Mounts int
	Exe                                              string
}

func statusOf(t testing.TB, sock string) serviceStatus {
	t.Helper()
	var st serviceStatus
	check(t, json.Unmarshal([]byte(om(t, "serve", "--status", "--socket", sock)), &st))
	return st
}

// workerOf returns the live child of the supervisor sup (its worker),
// or 0 when it has none (a worker that died and is not reaped yet is a
// zombie, and is not counted).
func workerOf(sup int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", sup))
	for _, p := range tasks {
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			// pid (comm) STATE ...
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] != 'Z' {
				return pid
			}
		}
	}
	return 0
}

// waitWorker waits for a worker of sup other than old and returns it.
func waitWorker(t testing.TB, sup, old int) int {
	t.Helper()
	var w int
	waitFor(t, 10*time.Second, "a new worker", func() bool {
		w = workerOf(sup)
		return w != 0 && w != old
	})
	return w
}

// killWorker kills the worker of sup with SIGKILL and returns its pid
// and when it was killed.
func killWorker(t testing.TB, sup int) (int, time.Time) {
	t.Helper()
	w := waitWorker(t, sup, 0)
	check(t, syscall.Kill(w, syscall.SIGKILL))
	return w, time.Now()
}

// dropCache drops the page cache of the file at p (fadvise DONTNEED), so
// that its next read goes to the daemon.
func dropCache(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// readAndDrop reads the file at p whole and drops its page cache.
func readAndDrop(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	dropCache(f)
	return buf.Bytes(), err
}

// TestSurviveKills: 32 readers read random files of the Go tree through
// a mount of the service while its worker is killed with SIGKILL ten
// times, then while the service upgrades. Every read succeeds and every byte is the source's (the
// requests in flight at each kill are sent again to the next worker,
// FUSE_NOTIFY_RESEND); after each kill a file never read before reads
// correctly within a second of the kill (the new worker serves the
// mount); the pin stays live throughout and the supervisor logs each
// death.
func TestSurviveKills(t *testing.T) {
	src := filepath.Join(goTree(t), "src")
	rp := filepath.Join(t.TempDir(), "repo")
	om(t, "init", "--repo", rp, "--mode", "bare-user")
	om(t, "commit", "--repo", rp, "-b", "go", src)
	sock := filepath.Join(t.TempDir(), "mount.sock")
	svc := startService(t, sock)
	sup := svc.cmd.Process.Pid
	mnt := newMountpoint(t)
	mntLog := filepath.Join(t.TempDir(), "mount.log")
	cleanupMount(t, mnt, mntLog)
	om(t, "--repo", rp, "mount", "--socket", sock, "--log-file", mntLog, "go", mnt)

	files := regularFilesOf(t, src)
	const rounds, readers = 10, 32
	if len(files) < 1000 {
		t.Fatalf("%d files in %s, want thousands", len(files), src)
	}
	// The probes, one a round, are never read by the readers: reading
	// one needs the worker (its lookup and its pages are cached
	// nowhere).
	probes, files := files[:rounds], files[rounds:]

	var stop atomic.Bool
	var wg sync.WaitGroup
	reads := make([]atomic.Int64, readers)
	var failMu sync.Mutex
	var failures []string
	var phase atomic.Value // what the test is doing: the failures say it
	phase.Store("start")
	fail := func(format string, a ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(time.Now().Format("15:04:05.000 ")+phase.Load().(string)+": "+format, a...))
		}
	}
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 19))
			for !stop.Load() {
				rel := files[rng.IntN(len(files))]
				got, err := readAndDrop(filepath.Join(mnt, rel))
				if err != nil {
					fail("reader %d: %s: %v", i, rel, err)
					continue
				}
				want, err := os.ReadFile(filepath.Join(src, rel))
				if err != nil {
					fail("reader %d: source %s: %v", i, rel, err)
					continue
				}
				if !bytes.Equal(got, want) {
					fail("reader %d: %s: %d bytes differ from the source's %d", i, rel, len(got), len(want))
					continue
				}
				reads[i].Add(1)
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// progress waits until every reader has done n more correct reads,
	// and until is past.
	progress := func(what string, n int64, until time.Time) {
		t.Helper()
		base := make([]int64, readers)
		for i := range reads {
			base[i] = reads[i].Load()
		}
		waitFor(t, 60*time.Second, what, func() bool {
			for i := range reads {
				if reads[i].Load() < base[i]+n {
					return false
				}
			}
			return time.Now().After(until)
		})
	}
	progress("every reader's first reads", 5, time.Time{})
	var took []time.Duration
	served := time.Now() // since when the worker has served, at the latest
	for round := range rounds {
		// Each worker serves a second and more before it is killed (the
		// readers reading all along): a worker that dies sooner counts
		// as a quick death, and the supervisor's restart policy delays
		// the fourth in a row.
		progress(fmt.Sprintf("round %d: every reader's reads", round), 10, served.Add(1100*time.Millisecond))
		phase.Store(fmt.Sprintf("round %d", round))
		old, killed := killWorker(t, sup)
		got, err := readAndDrop(filepath.Join(mnt, probes[round]))
		recovered := time.Since(killed)
		want, _ := os.ReadFile(filepath.Join(src, probes[round]))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("round %d: the probe %s after the kill: %v (%d bytes, want %d)\n%s", round, probes[round], err, len(got), len(want), svc.log.String())
		}
		took = append(took, recovered)
		if recovered >= time.Second {
			t.Errorf("round %d: the first read after the kill took %v, want under 1s", round, recovered)
		}
		waitWorker(t, sup, old)
		served = time.Now()
		progress(fmt.Sprintf("round %d: every reader's reads after the kill", round), 5, time.Time{})
	}
	// And an upgrade, under the same readers.
	phase.Store("upgrade")
	old := waitWorker(t, sup, 0)
	om(t, "serve", "--upgrade", "--socket", sock)
	waitWorker(t, sup, old)
	progress("every reader's reads after the upgrade", 5, time.Time{})
	stop.Store(true)
	wg.Wait()
	failMu.Lock()
	if len(failures) > 0 {
		t.Errorf("%d reads failed or read wrong bytes across %d kills and an upgrade, want none:\n%s\nservice log:\n%s", len(failures), rounds, strings.Join(failures, "\n"), clip(svc.log.String(), 6000))
	}
	failMu.Unlock()
	var total int64
	for i := range reads {
		total += reads[i].Load()
	}
	slices.Sort(took)
	t.Logf("%d readers, %d correct reads through %d kills and an upgrade; kill to first read of an unread file: median %v, max %v",
		readers, total, rounds, took[len(took)/2], took[len(took)-1])

	log := svc.log.String()
	if n := strings.Count(log, `msg="worker died"`); n != rounds {
		t.Errorf("the supervisor logged %d deaths of its worker, want %d:\n%s", n, rounds, clip(log, 8000))
	}
	if n := len(regexp.MustCompile(`msg="worker ready" .* resumed=1 `).FindAllString(log, -1)); n != rounds+1 {
		t.Errorf("%d workers said they resumed the mount, want %d (the kills' and the upgrade's):\n%s", n, rounds+1, clip(log, 8000))
	}
	if st := statusOf(t, sock); st.Restarts != rounds || st.Mounts != 1 || st.Supervisor != sup {
		t.Errorf("status %+v: want %d restarts, 1 mount, supervisor %d", st, rounds, sup)
	}
	r, err := repo.Open(rp)
	check(t, err)
	defer r.Close()
	pins, err := r.ListPins(false)
	check(t, err)
	if len(pins) != 1 || !pins[0].Live {
		t.Errorf("pins after %d kills: %+v, want one live", rounds, pins)
	}
	// The last worker served node IDs that an earlier one gave the
	// kernel (revived from the journal), and none that it did not know
	// (stale).
	unmount(t, mnt)
	re := regexp.MustCompile(`msg=unmounted mountpoint=` + regexp.QuoteMeta(mnt) + ` .* revived=(\d+) stale=(\d+)`)
	var m []string
	waitFor(t, 10*time.Second, "the service to log the unmount", func() bool {
		m = re.FindStringSubmatch(svc.log.String())
		return m != nil
	})
	if m[1] == "0" || m[2] != "0" {
		t.Errorf("the last worker revived %s node IDs and met %s stale ones; want some and none", m[1], m[2])
	}
	t.Logf("the last worker revived %s node IDs, %s stale", m[1], m[2])
}

// TestSurvivePrune: a prune that runs while the worker is dead and none
// has replaced it yet (the supervisor is stopped with SIGSTOP before
// the kill, so the window lasts) deletes nothing of the mounted image,
// whose ref is deleted: the supervisor holds the pin. Once it goes on,
// the mount is served again and equals the source; ostree fsck passes.
// After the unmount, the same prune deletes the image.
func TestSurvivePrune(t *testing.T) {
	ref, src := syntheticSource(t)
	rp := importInto(t, t.TempDir(), "bare-user", src, "img")
	sock := filepath.Join(t.TempDir(), "mount.sock")
	svc := startService(t, sock)
	sup := svc.cmd.Process.Pid
	mnt := newMountpoint(t)
	cleanupMount(t, mnt, "")
	om(t, "--repo", rp, "mount", "--socket", sock, "img", mnt)
	opts := treecmp.Options{Hardlinks: true, IgnoreXattrs: ignoreXattrs}
	want := dumpTree(t, ref, opts)
	before := repoObjects(t, rp)
	om(t, "refs", "--repo", rp, "--delete", "img")

	check(t, syscall.Kill(sup, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(sup, syscall.SIGCONT) })
	w, _ := killWorker(t, sup)
	waitFor(t, 10*time.Second, "the worker to die", func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w))
		i := bytes.LastIndexByte(st, ')')
		return err != nil || i > 0 && i+2 < len(st) && st[i+2] == 'Z'
	})
	rep := runPrune(t, rp)
	if rep.Deleted != 0 {
		t.Errorf("a prune while no worker serves the mount deleted %d objects, want none:\n%s", rep.Deleted, rep.Out)
	}
	r, err := repo.Open(rp)
	check(t, err)
	pins, err := r.ListPins(false)
	r.Close()
	check(t, err)
	if len(pins) != 1 || !pins[0].Live {
		t.Errorf("pins while no worker runs: %+v, want one live (the supervisor's)", pins)
	}
	check(t, syscall.Kill(sup, syscall.SIGCONT))
	waitWorker(t, sup, w)
	checkTreesEqual(t, "the mount after the prune and the restart vs umoci unpack", want, dumpTree(t, mnt, opts))
	ostreeCmd(t, "fsck", "--repo="+rp)

	unmount(t, mnt)
	waitFor(t, 10*time.Second, "the pin to go", func() bool { return len(pinFiles(t, rp)) == 0 })
	rep = runPrune(t, rp)
	if after := repoObjects(t, rp); rep.Deleted == 0 || len(after) >= len(before) {
		t.Errorf("prune after the unmount deleted %d objects (%d before, %d after), want the image gone:\n%s", rep.Deleted, len(before), len(after), rep.Out)
	}
}

// TestSurviveLazy: a lazy mount of a remote's ref through the service
// survives a SIGKILL of the worker and goes on fetching: files not read
// before the kill are fetched from nginx after it, and the whole tree is
// what ostree checks out of the served repository. The remote's ref is
// deleted before the kill, so the new worker finds the remote by the
// mount's rev (origin:main), not by a ref that names the commit.
func TestSurviveLazy(t *testing.T) {
	srv := theirArchive(t)
	ng := startNginx(t, srv, nginxOptions{})
	cl := lazyClient(t, ng.URL)
	sock := filepath.Join(t.TempDir(), "mount.sock")
	svc := startService(t, sock)
	sup := svc.cmd.Process.Pid
	mnt := newMountpoint(t)
	cleanupMount(t, mnt, "")
	om(t, "--repo", cl, "mount", "--socket", sock, "origin:main", mnt)
	if b, err := os.ReadFile(filepath.Join(mnt, "one")); err != nil || string(b) != "1" {
		t.Fatalf("one: %q, %v", b, err)
	}
	ostreeCmd(t, "refs", "--repo="+cl, "--delete", "origin:main")
	_, before := ng.Bytes(t)

	old, _ := killWorker(t, sup)
	waitWorker(t, sup, old)
	co := filepath.Join(t.TempDir(), "co")
	ostreeCmd(t, "checkout", "--repo="+srv, "main", co)
	opts := treecmp.Options{IgnoreXattrs: ignoreXattrs}
	checkTreesEqual(t, "the lazy mount after the kill vs ostree checkout", dumpTree(t, co, opts), dumpTree(t, mnt, opts))
	if _, after := ng.Bytes(t); after <= before {
		t.Errorf("no request to nginx after the kill (%d before, %d after): the new worker did not fetch", before, after)
	}
	ostreeCmd(t, "fsck", "--repo="+cl)
	if strings.Count(svc.log.String(), `msg="worker died"`) != 1 {
		t.Errorf("the supervisor did not log the death of its worker:\n%s", svc.log.String())
	}
}

// containerLoop is the script of TestSurviveContainer's container: it
// reads every file of /mnt/sums, dropping each from the page cache as it
// goes (dd iflag=nocache), and checks its MD5 sum, until /mnt/stop
// exists; it counts its passes in /mnt/count and prints FAIL for a file
// that does not read or reads wrong.
const containerLoop = `n=0
while [ ! -e /mnt/stop ]; do
  while read sum path; do
    got=$(dd if="$path" iflag=nocache bs=1M 2>/dev/null | md5sum | cut -d' ' -f1)
    [ "$got" = "$sum" ] || echo "FAIL pass=$n $path $got"
  done < /mnt/sums
  n=$((n+1)); echo $n > /mnt/count.tmp; mv /mnt/count.tmp /mnt/count
done
echo "done $n"`

// TestSurviveContainer: runc runs a container of a bundle mounted by the
// service, whose loop reads files and checks their sums. It goes on
// across a SIGKILL of the worker and an upgrade of the service to a
// freshly built binary renamed over the old one ('serve --upgrade'): no
// read fails in either. After the upgrade the supervisor and the worker
// run the new binary, and the supervisor's pid is the same.
func TestSurviveContainer(t *testing.T) {
	b := bundleImages(t)
	bin := filepath.Join(t.TempDir(), "bin")
	check(t, os.Mkdir(bin, 0o755))
	exe := filepath.Join(bin, "ostree-mount")
	mustRun(t, "cp", binary, exe)
	sock := filepath.Join(t.TempDir(), "mount.sock")
	svc := startServiceExe(t, exe, sock)
	sup := svc.cmd.Process.Pid

	dir := filepath.Join(t.TempDir(), "b")
	makeBundle(t, b.Repo, b.Rev, dir, "--socket", sock)
	if pids := daemonPids(dir); len(pids) != 0 {
		t.Fatalf("the bundle's image has its own daemon %v, want the service's", pids)
	}
	// The sums of the image's /usr/bin, from umoci's unpack.
	ctl := t.TempDir()
	var sums strings.Builder
	ents, err := os.ReadDir(filepath.Join(b.Ref, "usr/bin"))
	check(t, err)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		out := strings.Fields(mustRun(t, "md5sum", filepath.Join(b.Ref, "usr/bin", e.Name())).Stdout)
		fmt.Fprintf(&sums, "%s /usr/bin/%s\n", out[0], e.Name())
	}
	if strings.Count(sums.String(), "\n") < 20 {
		t.Fatalf("only %d files in the image's /usr/bin", strings.Count(sums.String(), "\n"))
	}
	check(t, os.WriteFile(filepath.Join(ctl, "sums"), []byte(sums.String()), 0o644))
	spec := readSpec(t, filepath.Join(dir, "config.json"))
	spec.Process.Args = []string{"/bin/sh", "-c", containerLoop}
	spec.Process.Terminal = false
	spec.Mounts = append(spec.Mounts, rspec.Mount{Destination: "/mnt", Type: "bind", Source: ctl, Options: []string{"rbind", "rw"}})
	out, err := json.MarshalIndent(spec, "", "\t")
	check(t, err)
	check(t, os.WriteFile(filepath.Join(dir, "config.json"), out, 0o644))

	id := fmt.Sprintf("ostree-mount-e2e-%d-%d", os.Getpid(), containerSeq.Add(1))
	var stdout, stderr lockedBuffer
	runc := exec.Command("runc", "run", "--bundle", dir, id)
	runc.Stdout, runc.Stderr = &stdout, &stderr
	check(t, runc.Start())
	exited := make(chan error, 1)
	go func() { exited <- runc.Wait() }()
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(ctl, "stop"), nil, 0o644)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			run("runc", "kill", id, "KILL")
			<-exited
		}
		run("runc", "delete", "--force", id)
	})
	passes := func() int {
		b, _ := os.ReadFile(filepath.Join(ctl, "count"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	// morePasses waits for two more whole passes: one that may have
	// begun before the event, and one entirely after it.
	morePasses := func(what string) {
		t.Helper()
		n := passes()
		waitFor(t, 120*time.Second, what, func() bool {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("the container exited (%v) %s:\n%s\n%s", err, what, stdout.String(), stderr.String())
			default:
			}
			return passes() >= n+2
		})
	}
	morePasses("the container's first passes")

	old, _ := killWorker(t, sup)
	waitWorker(t, sup, old)
	morePasses("the container's passes after the kill")

	// A new binary (another version string) renamed over the running
	// one, then the upgrade.
	build := exec.Command(goCmd, "build", "-trimpath", "-tags", "urfave_cli_no_docs", "-ldflags", "-X main.version=upgraded", "-o", exe+".new", "./cmd/ostree-mount")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the new binary: %v\n%s", err, out)
	}
	if v := mustRun(t, exe+".new", "--version").Stdout; !strings.Contains(v, "upgraded") {
		t.Fatalf("the new binary says %q", v)
	}
	check(t, os.Rename(exe+".new", exe))
	oldWorker := waitWorker(t, sup, 0)
	up := mustRun(t, exe, "serve", "--upgrade", "--socket", sock)
	if !strings.Contains(up.Stdout, fmt.Sprintf("upgraded: supervisor %d", sup)) {
		t.Errorf("serve --upgrade said %q, want the supervisor's pid %d", up.Stdout, sup)
	}
	newWorker := waitWorker(t, sup, oldWorker)
	var want unix.Stat_t
	check(t, unix.Stat(exe, &want))
	for _, pid := range []int{sup, newWorker} {
		var st unix.Stat_t
		check(t, unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st))
		if st.Ino != want.Ino || st.Dev != want.Dev {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			t.Errorf("process %d runs %s, not the new binary", pid, link)
		}
	}
	morePasses("the container's passes after the upgrade")

	check(t, os.WriteFile(filepath.Join(ctl, "stop"), nil, 0o644))
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("the container exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(120 * time.Second):
		t.Fatal("the container did not stop within 120s")
	}
	if o := stdout.String(); strings.Contains(o, "FAIL") || !strings.Contains(o, "done ") {
		t.Errorf("the container's reads across the kill and the upgrade:\n%s", clip(o, 4000))
	}
	log := svc.log.String()
	for _, want := range []string{`msg="worker died"`, `msg="supervisor upgraded"`, `msg="worker handing over"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the service's log has no %s:\n%s", want, clip(log, 8000))
		}
	}
	t.Logf("the container made %d passes over %d files", passes(), strings.Count(sums.String(), "\n"))
}
