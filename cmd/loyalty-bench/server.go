package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// buildServer compiles cmd/loyalty into dir, so the bench drives the same
// binary an operator runs and the server's memory is its own.
func buildServer(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "loyalty")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/loyaltyhq/loyalty/cmd/loyalty")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the server: %w", err)
	}
	return bin, nil
}

// server is a `loyalty serve` child process.
type server struct {
	cmd     *exec.Cmd
	addr    string // host:port
	started time.Duration
	done    chan error
}

// startServer runs bin serve on a free loopback port and returns once the
// server answers /healthz; started is the time from exec to that answer.
// The server's log goes to logPath.
func startServer(bin, dbPath, rulesPath, logPath string, extra []string) (*server, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", dbPath, "--rules", rulesPath,
		"--test-clock", "--log-format", "json"}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start server: %w", err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		defer logFile.Close()
		r := bufio.NewReaderSize(stderr, 64<<10)
		for {
			line, err := r.ReadBytes('\n')
			logFile.Write(line)
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				addrc <- strings.TrimPrefix(rec.Addr, "http://")
				break
			}
			if err != nil {
				break
			}
		}
		// The rest (a line per request, say) is only kept, not read: the
		// bench shares the machine with the server.
		io.Copy(logFile, r)
		s.done <- cmd.Wait()
	}()
	select {
	case s.addr = <-addrc:
	case err := <-s.done:
		return nil, fmt.Errorf("server exited before listening (%v); see %s", err, logPath)
	case <-time.After(10 * time.Minute):
		s.kill()
		return nil, fmt.Errorf("server did not listen within 10 minutes; see %s", logPath)
	}
	if err := waitHealthy(s.addr, time.Minute); err != nil {
		s.kill()
		return nil, err
	}
	s.started = time.Since(began)
	return s, nil
}

func waitHealthy(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		code, _, err := fasthttp.Get(nil, "http://"+addr+"/healthz")
		if err == nil && code == fasthttp.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server at %s not healthy after %s (status %d, %v)", addr, limit, code, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pid is the child's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop asks the server to shut down as an operator would and waits for it.
func (s *server) stop() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-s.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("server exited with %v", err)
		}
		return err
	case <-time.After(30 * time.Second):
		s.kill()
		return errors.New("server did not stop within 30s; killed")
	}
}

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
}

// memStatus reads a process's resident memory from /proc: the peak (VmHWM)
// and the current split into anonymous memory and mapped file pages, which
// for bbolt are the database pages the process has touched.
type memStatus struct {
	PeakRSS int64 `json:"peak_rss_bytes"`
	RSS     int64 `json:"rss_bytes"`
	Anon    int64 `json:"rss_anon_bytes"`
	File    int64 `json:"rss_file_bytes"`
}

func readMem(pid int) (memStatus, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memStatus{}, err
	}
	defer f.Close()
	return parseMem(f)
}

// procSample is what a process has used so far.
type procSample struct {
	cpu     time.Duration
	written int64 // bytes it sent to storage
}

func sampleProc(pid int) (procSample, error) {
	cpu, err := cpuTime(pid)
	if err != nil {
		return procSample{}, err
	}
	written, err := writeBytes(pid)
	return procSample{cpu: cpu, written: written}, err
}

// writeBytes is write_bytes of /proc/<pid>/io: what the process caused to
// be written to storage, which for bbolt is its pages and meta pages.
func writeBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io: no write_bytes", pid)
}

// cpuTime is the CPU time (user and system) a process has used so far,
// from /proc/<pid>/stat, in clock ticks of 1/100 s (USER_HZ on Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it do not.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

func parseMem(r io.Reader) (memStatus, error) {
	var m memStatus
	fields := map[string]*int64{"VmHWM:": &m.PeakRSS, "VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		if p, ok := fields[f[0]]; ok {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return m, fmt.Errorf("%s %q: %w", f[0], f[1], err)
			}
			*p = n << 10
		}
	}
	return m, sc.Err()
}
