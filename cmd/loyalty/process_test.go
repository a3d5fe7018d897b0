package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
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
