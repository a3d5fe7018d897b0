package main

import (
	"debug/elf"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// The tests in this file run the loyalty binary as an operator does: built
// as the Dockerfile builds it (CGO_ENABLED=0, the version set with
// -ldflags -X), started as a process, sent signals.

const (
	testVersion = "v9.9.9-test"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

var (
	buildOnce   sync.Once
	builtBinary string
	buildErr    error
	buildOut    []byte
)

// TestMain removes the binary loyaltyBinary built, if a test asked for it.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtBinary != "" {
		os.RemoveAll(filepath.Dir(builtBinary))
	}
	os.Exit(code)
}

// loyaltyBinary builds the command once per test run, statically.
func loyaltyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "loyalty-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBinary = filepath.Join(dir, "loyalty")
		pkg := "github.com/loyaltyhq/loyalty/internal/version"
		cmd := exec.Command("go", "build", "-trimpath", "-o", builtBinary,
			"-ldflags", "-X "+pkg+".Version="+testVersion+" -X "+pkg+".Commit="+testCommit, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return builtBinary
}

// TestStaticBuildAndVersion: the binary builds with CGO_ENABLED=0 into a
// static executable (what a distroless or scratch image needs), and
// loyalty version reports what -ldflags -X set.
func TestStaticBuildAndVersion(t *testing.T) {
	bin := loyaltyBinary(t)
	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatal("the binary needs a dynamic loader: it is not static")
			}
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if want := "loyalty " + testVersion + " (" + testCommit[:12] + ")\n"; err != nil || string(out) != want {
		t.Fatalf("loyalty version: %v %q, want %q", err, out, want)
	}
	if out, _ := exec.Command(bin, "help").CombinedOutput(); !strings.Contains(string(out), "loyalty version") {
		t.Fatalf("help does not list version:\n%s", out)
	}
}

// serveProcess is loyalty serve running as its own process, with its log.
type serveProcess struct {
	cmd  *exec.Cmd
	addr string
	log  *syncBuffer
	// exited is closed once the process has ended, with its error in err.
	exited chan struct{}
	err    error
}

// startServe runs the built binary's serve on 127.0.0.1:0 with args and
// waits for its "listening" line.
func startServe(t *testing.T, args ...string) *serveProcess {
	t.Helper()
	return startProcess(t, "", nil, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
}

// listening finds the address in serve's "listening" line, text or JSON.
var listening = regexp.MustCompile(`"?msg"?[=:]"?listening"?,? ?"?addr"?[=:]"?https?://([^\s"]+)`)

// startProcess runs the built binary with args in dir (the test's when
// empty), with env added to the environment, and waits for its
// "listening" line.
func startProcess(t *testing.T, dir string, env []string, args ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(loyaltyBinary(t), args...)
	p.cmd.Dir, p.cmd.Env = dir, append(os.Environ(), env...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	eventually(t, "serve to listen", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("serve exited: %v\n%s", p.err, p.log)
		default:
		}
		m := listening.FindStringSubmatch(p.log.String())
		if m != nil {
			p.addr = m[1]
		}
		return m != nil
	})
	return p
}

// signal sends sig to the server.
func (p *serveProcess) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// TestSIGHUPReloadsTheKeys runs serve as a process and rotates a key with
// SIGHUP alone: the keys file is a symlink into another directory, as a
// deployment tool may lay it out, so writing the target is not a change
// the file watcher sees, and only the signal makes the server read it.
func TestSIGHUPReloadsTheKeys(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on Windows")
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "secrets", "keys.yaml")
	os.Mkdir(filepath.Dir(real), 0o700)
	os.WriteFile(real, keysFile("ops", adminKey), 0o600)
	keys := filepath.Join(dir, "keys.yaml")
	if err := os.Symlink(real, keys); err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	p := startServe(t, "--keys", keys, "--db", filepath.Join(dir, "loyalty.db"), "--rules", rulesPath)
	url := "http://" + p.addr + "/v1/jobs"
	client := http.DefaultClient
	if statusWith(t, client, url, adminKey) != 200 || statusWith(t, client, url, newKey) != 401 {
		t.Fatal("before the rotation")
	}

	os.WriteFile(real, keysFile("ops", adminKey, "ops-2026", newKey), 0o600)
	time.Sleep(300 * time.Millisecond) // longer than the watcher's settle time
	if statusWith(t, client, url, newKey) != 401 {
		t.Fatal("the new key works before SIGHUP: this test no longer isolates the signal")
	}
	p.signal(t, syscall.SIGHUP)
	eventually(t, "SIGHUP to load the new key", func() bool { return statusWith(t, client, url, newKey) == 200 })
	if statusWith(t, client, url, adminKey) != 200 {
		t.Fatal("the old key stopped working while both are listed")
	}

	os.WriteFile(real, []byte("- {name: ops, key: nope, role: root}\n"), 0o600)
	p.signal(t, syscall.SIGHUP)
	eventually(t, "the refusal to be logged", func() bool { return strings.Contains(p.log.String(), "the keys file was not reloaded") })
	if !strings.Contains(p.log.String(), "why=SIGHUP") || statusWith(t, client, url, newKey) != 200 || statusWith(t, client, url, adminKey) != 200 {
		t.Fatalf("a broken file must keep both keys and say why:\n%s", p.log)
	}

	p.signal(t, syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", p.err, p.log)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit 15 s after SIGTERM")
	}
}
