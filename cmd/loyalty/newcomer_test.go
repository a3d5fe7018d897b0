package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// The tests in this file are the things a newcomer tripped on following
// the README (issue 17), each through the CLI as they typed it.

func TestSimulateErrorNamesTheFieldOnce(t *testing.T) {
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	purchase := filepath.Join(dir, "p.json")
	os.WriteFile(purchase, []byte(`{"currency": "USD", "amount": "1.00"}`), 0o644)
	member := filepath.Join(dir, "m.json")
	os.WriteFile(member, []byte(`{"tier": "nope"}`), 0o644)
	code, out := runCLI(t, "rules", "simulate", rulesPath, "--purchase", purchase, "--member", member)
	if code != 1 || strings.Count(out, "member.tier") != 1 || !strings.Contains(out, `no tier named "nope"`) {
		t.Fatalf("%d %q", code, out)
	}
}

// TestEnvironmentSwitches: LOYALTY_TEST_CLOCK=yes, on or TRUE left the test
// clock off without a word; every variable now goes through its flag's own
// parser, and one the flag refuses stops serve, naming the variable.
func TestEnvironmentSwitches(t *testing.T) {
	for _, v := range []string{"yes", "on", "TRUE", "1", "y"} {
		t.Setenv("LOYALTY_TEST_CLOCK", v)
		var cfg Config
		if err := envFlags(serveFlags(&cfg, io.Discard)); err != nil || !cfg.TestClock {
			t.Errorf("LOYALTY_TEST_CLOCK=%s: on %v, err %v", v, cfg.TestClock, err)
		}
	}
	for _, v := range []string{"no", "off", "FALSE", "0"} {
		t.Setenv("LOYALTY_TEST_CLOCK", v)
		cfg := Config{TestClock: true}
		if err := envFlags(serveFlags(&cfg, io.Discard)); err != nil || cfg.TestClock {
			t.Errorf("LOYALTY_TEST_CLOCK=%s: on %v, err %v", v, cfg.TestClock, err)
		}
	}
	// The command line still wins over the environment.
	t.Setenv("LOYALTY_TEST_CLOCK", "on")
	var cfg Config
	fs := serveFlags(&cfg, io.Discard)
	if err := envFlags(fs); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--test-clock=off"}); err != nil || cfg.TestClock {
		t.Errorf("--test-clock=off after LOYALTY_TEST_CLOCK=on: %v %v", cfg.TestClock, err)
	}

	dir := t.TempDir()
	for env, val := range map[string]string{"LOYALTY_TEST_CLOCK": "maybe", "LOYALTY_BATCH_SIZE": "lots", "LOYALTY_REQUEST_TIMEOUT": "soon"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			code, out := runCLI(t, "serve", "--db", filepath.Join(dir, "x.db"), "--rules", filepath.Join(dir, "r.yaml"))
			if code != 1 || !strings.Contains(out, env+`="`+val+`"`) {
				t.Fatalf("%d %q", code, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
				t.Fatal("a refused variable still created the database")
			}
		})
	}
}

// TestServeOnAPortInUse: serve used to write a 16 MB database and the
// example rules before it found the port taken, and the message did not
// say which flag to change.
func TestServeOnAPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	t.Chdir(dir)
	code, out := runCLI(t, "serve", "--addr", ln.Addr().String())
	if code != 1 || !strings.Contains(out, "--addr "+ln.Addr().String()) || !strings.Contains(out, "address already in use") {
		t.Fatalf("%d %q", code, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("serve left %v behind", entries)
	}
}

// TestToolsOnARunningServersFile: rules diff --db and verify --db on the
// file of a running server said only "locked by another process (waited
// 1s): timeout"; they now say how to get a copy, and the command they
// name, with the address as the server logs it (no scheme), works.
func TestToolsOnARunningServersFile(t *testing.T) {
	m, rulesPath := startMain(t)
	db := m.Config.DBPath
	for _, args := range [][]string{
		{"verify", "--db", db},
		{"rules", "diff", rulesPath, rulesPath, "--db", db},
		{"rules", "check", rulesPath, "--db", db},
		{"backup", "--db", db, "--to", filepath.Join(t.TempDir(), "copy.db")},
	} {
		code, out := runCLI(t, args...)
		if code != 1 || !strings.Contains(out, "locked by another process") || !strings.Contains(out, "loyalty backup --url") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if code, out := runCLI(t, "backup", "--url", m.Addr(), "--to", copyPath); code != 0 || !strings.Contains(out, "the copy verifies") {
		t.Fatalf("backup --url %s: %d %q", m.Addr(), code, out)
	}
	if code, out := runCLI(t, "rules", "diff", rulesPath, rulesPath, "--db", copyPath); code != 0 {
		t.Fatalf("diff on the copy: %d %q", code, out)
	}
}

// TestLastErrorFollowsTheFile: GET /v1/rules kept last_error after the
// file was put back to the live text, and after a refused PUT, until a new
// version went live.
func TestLastErrorFollowsTheFile(t *testing.T) {
	m, rulesPath := startMain(t)
	base := "http://" + m.Addr()
	typo := bytes.Replace(rules.Example, []byte("points: item.quantity * 12"), []byte("points: itm.quantity * 12"), 1)

	req, _ := http.NewRequest("PUT", base+"/v1/rules", bytes.NewReader(typo))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 422 {
		t.Fatalf("PUT of a typo: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	if r := get(t, base+"/v1/rules"); r["last_error"] != nil {
		t.Fatalf("a refused PUT, which left the file alone, set last_error: %v", r["last_error"])
	}

	if err := os.WriteFile(rulesPath, typo, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the file's typo to be reported", func() bool { return get(t, base+"/v1/rules")["last_error"] != nil })
	if err := os.WriteFile(rulesPath, rules.Example, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "last_error to clear once the file is put back", func() bool { return get(t, base+"/v1/rules")["last_error"] == nil })
	if v := get(t, base+"/v1/rules")["version"]; v != 1.0 {
		t.Fatalf("putting the file back made version %v", v)
	}
}

// jobTimes reads GET /v1/jobs: each job's last start and next run.
func jobTimes(t *testing.T, m *Main) (last, next map[string]time.Time) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+m.Addr()+"/v1/jobs", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var jobs []struct {
		Name    string
		LastRun *struct {
			StartedAt time.Time `json:"started_at"`
		} `json:"last_run"`
		NextRun *time.Time `json:"next_run"`
	}
	if err := json.NewDecoder(res.Body).Decode(&jobs); err != nil {
		t.Fatal(err)
	}
	last, next = map[string]time.Time{}, map[string]time.Time{}
	for _, j := range jobs {
		if j.LastRun != nil {
			last[j.Name] = j.LastRun.StartedAt
		}
		if j.NextRun != nil {
			next[j.Name] = *j.NextRun
		}
	}
	return last, next
}

// TestJobsFollowTheTestClock: under the test clock GET /v1/jobs showed
// next_run in wall-clock time, before last_run, and moving the clock did
// not make jobs fall due. The scheduler now runs on the engine's clock.
func TestJobsFollowTheTestClock(t *testing.T) {
	base := &settableClock{t: clockStart}
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	m := &Main{Clock: base, JobTick: 10 * time.Millisecond, Config: Config{Addr: "127.0.0.1:0", DBPath: filepath.Join(dir, "loyalty.db"), RulesPath: rulesPath, TestClock: true}}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	names := rules.JobNames()
	eventually(t, "the first runs", func() bool { last, _ := jobTimes(t, m); return len(last) == len(names) })

	if code, _ := send(t, m, "POST", "/v1/clock", `{"advance": "30d"}`); code != 200 {
		t.Fatalf("advance: %d", code)
	}
	now := clockNow(t, m)
	eventually(t, "the daily jobs to fall due on the moved clock", func() bool {
		last, _ := jobTimes(t, m)
		for _, name := range names {
			if last[name].Before(now) {
				return false
			}
		}
		return true
	})
	last, next := jobTimes(t, m)
	for _, name := range names {
		if n, ok := next[name]; !ok || !n.After(last[name]) || !n.After(now) || n.After(now.Add(8*24*time.Hour)) {
			t.Errorf("%s: last run %v, next run %v, engine now %v", name, last[name], n, now)
		}
	}
	// 03:00 in the program's zone, the analytics schedule, on the moved clock.
	loc, _ := time.LoadLocation("America/New_York")
	if n := next["analytics"].In(loc); n.Hour() != 3 || n.Minute() != 0 {
		t.Errorf("analytics next at %v, want 03:00 New York", n)
	}
}

// TestServeWithAMissingRulesFile: a --rules path that does not exist on a
// new database said only "no such file or directory".
func TestServeWithAMissingRulesFile(t *testing.T) {
	dir := t.TempDir()
	code, out := runCLI(t, "serve", "--db", filepath.Join(dir, "x.db"), "--rules", filepath.Join(dir, "nope.yaml"))
	if code != 1 || !strings.Contains(out, "nope.yaml does not exist and the database has no rules yet") || !strings.Contains(out, "leave --rules out") {
		t.Fatalf("%d %q", code, out)
	}
}
