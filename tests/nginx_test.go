package tests

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginx is a real nginx (Debian's nginx-light) serving a directory on a
// free 127.0.0.1 port, started by a test and stopped at its cleanup. It
// can be stopped and started again on the same port (a server that
// vanishes and comes back). Its access log has one line per request:
// `STATUS BYTES "REQUEST"`, BYTES being $body_bytes_sent, so that a test
// can count requests and bytes (Log, Bytes). Later suites (lazy mounts,
// benchmarks) reuse it.
type nginx struct {
	URL  string // http://127.0.0.1:PORT
	Port int
	Root string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// nginxOptions configure startNginx.
type nginxOptions struct {
	// LimitRate is nginx's limit_rate per connection ("25m"), if set.
	LimitRate string
	// Extra is added to the server block as it is.
	Extra string
}

// nginxRequest is one line of the access log.
type nginxRequest struct {
	Status  int
	Bytes   int64
	Method  string
	Path    string
	Request string
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNginx serves root with nginx until the test ends.
func startNginx(t testing.TB, root string, o nginxOptions) *nginx {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			t.Fatalf("nginx not found: run `make deps` (Debian package nginx-light)")
		}
	}
	dir := t.TempDir()
	n := &nginx{Root: root, dir: dir, Port: freePort(t)}
	n.URL = fmt.Sprintf("http://127.0.0.1:%d", n.Port)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;" // the served trees live in root's 0700 temporary directories
	}
	extra := o.Extra
	if o.LimitRate != "" {
		extra += "\n\t\tlimit_rate " + o.LimitRate + ";"
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
%s
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 512; }
http {
	log_format counted '$status $body_bytes_sent "$request"';
	access_log %[2]s/access.log counted;
	client_body_temp_path %[2]s/client_body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	default_type application/octet-stream;
	sendfile on;
	keepalive_requests 100000;
	server {
		listen 127.0.0.1:%[3]d;
		root %[4]s;%[5]s
	}
}
`, user, dir, n.Port, root, extra)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Start(t)
	t.Cleanup(n.Stop)
	return n
}

// Start starts nginx (again) and waits until it accepts connections.
func (n *nginx) Start(t testing.TB) {
	t.Helper()
	if n.cmd != nil {
		t.Fatal("nginx already running")
	}
	cmd := exec.Command("nginx", "-c", filepath.Join(n.dir, "nginx.conf"), "-p", n.dir, "-e", filepath.Join(n.dir, "error.log"))
	cmd.Path = "/usr/sbin/nginx"
	if p, err := exec.LookPath("nginx"); err == nil {
		cmd.Path = p
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(n.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-n.done:
			n.cmd = nil
			log, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
			t.Fatalf("nginx exited at start: %v\n%s", cmd.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			n.Stop()
			t.Fatalf("nginx does not accept connections on port %d", n.Port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops nginx and waits for it to exit; it is a no-op when stopped.
func (n *nginx) Stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// Log returns the requests logged so far.
func (n *nginx) Log(t testing.TB) []nginxRequest {
	t.Helper()
	f, err := os.Open(filepath.Join(n.dir, "access.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []nginxRequest
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		status, rest, _ := strings.Cut(sc.Text(), " ")
		bytes, req, _ := strings.Cut(rest, " ")
		r := nginxRequest{Request: strings.Trim(req, `"`)}
		r.Status, _ = strconv.Atoi(status)
		r.Bytes, _ = strconv.ParseInt(bytes, 10, 64)
		if f := strings.Fields(r.Request); len(f) >= 2 {
			r.Method, r.Path = f[0], f[1]
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Bytes returns the body bytes sent so far and the number of requests.
func (n *nginx) Bytes(t testing.TB) (int64, int) {
	t.Helper()
	var sum int64
	log := n.Log(t)
	for _, r := range log {
		sum += r.Bytes
	}
	return sum, len(log)
}
