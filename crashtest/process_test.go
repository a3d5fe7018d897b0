package crashtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is the loyalty binary built once for the whole test process.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "loyalty-crashtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "loyalty")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/loyalty")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build loyalty: %v\n%s", err, out)
		return 1
	}
	noteSources()
	return m.Run()
}

// noteSources reads the command's source files, so that go test's result
// cache, which tracks files a test opens, reruns these tests when the
// command changes and not only when the packages the test imports do.
func noteSources() {
	files, _ := filepath.Glob("../cmd/loyalty/*.go")
	hooks, _ := filepath.Glob("../webhook/*.go")
	files = append(files, hooks...)
	for _, f := range files {
		_, _ = os.ReadFile(f)
	}
}

// process is one loyalty serve over a database that outlives it: the test
// starts it, kills it and starts it again on the same file and port.
type process struct {
	t     *testing.T
	dir   string
	db    string
	rules string
	addr  string
	url   string
	log   *os.File // stderr of every start, appended

	cmd    *exec.Cmd
	exited chan error
	starts int
	// extra are flags added to serve's.
	extra []string
}

const crashRules = `program: Crash test
currency: USD
points:
  rounding: floor
earn:
  - name: base
    points: purchase.amount
jobs:
  expire-points: "@every 1s"
  evaluate-tiers: "@every 1s"
  notify-expiring: "@every 1s"
  birthday-bonus: "@every 1s"
  analytics: "@every 1s"
`

// newProcess prepares a database (db, a PostgreSQL URL several processes
// share, or "" for a bbolt file of its own), a rules file where a
// purchase earns one point per whole dollar (so a model can compute every
// balance), and a free port. The jobs run every second so that kills also
// land in them.
func newProcess(t *testing.T, db string) *process {
	t.Helper()
	dir := t.TempDir()
	if db == "" {
		db = filepath.Join(dir, "loyalty.db")
	}
	p := &process{t: t, dir: dir, db: db, rules: filepath.Join(dir, "rules.yaml")}
	if err := os.WriteFile(p.rules, []byte(crashRules), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	ln.Close()
	p.url = "http://" + p.addr
	if p.log, err = os.Create(filepath.Join(dir, "server.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			p.kill()
		}
		p.log.Close()
		if t.Failed() {
			p.dumpLog()
		}
	})
	return p
}

// start runs loyalty serve and waits until it answers /healthz.
func (p *process) start() {
	p.t.Helper()
	p.starts++
	fmt.Fprintf(p.log, "=== start %d\n", p.starts)
	// A short jobs lease, so that a killed server's jobs move to another
	// within the run.
	args := []string{"serve", "--addr", p.addr, "--db", p.db, "--rules", p.rules, "--job-lease", "3s", "--rules-poll", "500ms"}
	p.cmd = exec.Command(binary, append(args, p.extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1 exitcode=66")
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan error, 1)
	p.exited = exited
	go func() { exited <- p.cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			p.cmd = nil
			p.t.Fatalf("loyalty serve exited while starting: %v", err)
		default:
		}
		res, err := client.Get(p.url + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("loyalty serve did not become healthy in 30s")
}

// kill ends the process with SIGKILL: no deferred function, no shutdown,
// no close of the database.
func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatal(err)
	}
	err := <-p.exited
	p.cmd = nil
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return
		}
	}
	p.t.Errorf("loyalty serve died before it was killed: %v", err)
}

// term stops the process with SIGTERM and returns its exit code.
func (p *process) term(timeout time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.cmd = nil
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("loyalty serve did not stop within %s of SIGTERM", timeout)
		return -1
	}
}

// verify runs loyalty verify on the database, as an operator would.
func (p *process) verify() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "verify", "--db", p.db).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		p.t.Fatalf("loyalty verify: %v\n%s", err, out)
	}
}

// checkLog fails on a data race or a panic the server logged.
func (p *process) checkLog() {
	p.t.Helper()
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		p.t.Fatal(err)
	}
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "level=ERROR msg=\"request failed\""} {
		if bytes.Contains(b, []byte(bad)) {
			p.t.Errorf("the server log has %q", bad)
		}
	}
}

func (p *process) dumpLog() {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return
	}
	const tail = 8000
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	p.t.Logf("server log (last %d bytes):\n%s", len(b), b)
}
