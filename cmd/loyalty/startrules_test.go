package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// openMain starts the server wiring on dir with the rules path defaulted
// (rules.yaml in dir), logging to log, which the catch-up jobs write to
// while the test reads it.
func openMain(t *testing.T, dir string, log *syncBuffer) *Main {
	t.Helper()
	m := &Main{
		Config: Config{Addr: "127.0.0.1:0", DBPath: filepath.Join(dir, "loyalty.db"), RulesPath: filepath.Join(dir, "rules.yaml"), RulesDefaulted: true},
		Logger: slog.New(slog.NewTextHandler(log, nil)),
	}
	if err := m.Open(); err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m
}

func closeMain(t *testing.T, m *Main) {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, url string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, bytes.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("PUT %s: %d %s", url, res.StatusCode, b)
	}
}

// TestRestoreKeepsTheProgram: a database restored into a directory
// without the rules file keeps its program, and writes it to the file;
// after that a file that differs wins only if it was modified after the
// database's version went live and passes its trial.
func TestRestoreKeepsTheProgram(t *testing.T) {
	var log syncBuffer
	first := t.TempDir()
	m := openMain(t, first, &log)
	v2 := bytes.Replace(rules.Example, []byte("enrol: 50"), []byte("enrol: 70"), 1)
	put(t, "http://"+m.Addr()+"/v1/rules", v2)
	closeMain(t, m)

	// serve --db copy.db in a directory without the rules file.
	restored := t.TempDir()
	db, err := os.ReadFile(filepath.Join(first, "loyalty.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "loyalty.db"), db, 0o644); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	m = openMain(t, restored, &log)
	base := "http://" + m.Addr()
	live := get(t, base+"/v1/rules")
	if live["version"] != 2.0 || live["source"] != string(v2) {
		t.Fatalf("after the restore: version %v", live["version"])
	}
	if vs := get(t, base+"/v1/rules/versions")["versions"].([]any); len(vs) != 2 {
		t.Fatalf("the restore made a version: %v", vs)
	}
	rulesPath := filepath.Join(restored, "rules.yaml")
	if onDisk, _ := os.ReadFile(rulesPath); !bytes.Equal(onDisk, v2) {
		t.Fatalf("the rules file holds:\n%s", onDisk)
	}
	if !strings.Contains(log.String(), "the rules file was missing: wrote it from the database") || !strings.Contains(log.String(), "version=2") {
		t.Errorf("the log does not say what happened:\n%s", log.String())
	}
	loadedAt, err := time.Parse(time.RFC3339Nano, live["loaded_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	closeMain(t, m)

	// An older file that differs: the database's version stays live.
	older := bytes.Replace(rules.Example, []byte("enrol: 50"), []byte("enrol: 80"), 1)
	if err := os.WriteFile(rulesPath, older, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(rulesPath, loadedAt.Add(-time.Hour), loadedAt.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	m = openMain(t, restored, &log)
	if live := get(t, "http://"+m.Addr()+"/v1/rules"); live["version"] != 2.0 {
		t.Fatalf("an older file went live: version %v", live["version"])
	}
	if !strings.Contains(log.String(), "modified before they went live, so they stay live") {
		t.Errorf("the log does not say why the file lost:\n%s", log.String())
	}
	closeMain(t, m)

	// A file edited since that fails its trial: the database's version
	// stays live and the refusal is shown.
	broken := bytes.Replace(rules.Example, []byte("points: item.quantity * 12"), []byte("points: 12 / (item.quantity - item.quantity)"), 1)
	if err := os.WriteFile(rulesPath, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	m = openMain(t, restored, &log)
	live = get(t, "http://"+m.Addr()+"/v1/rules")
	if live["version"] != 2.0 || live["last_error"] == nil {
		t.Fatalf("a failing file: version %v, last error %v", live["version"], live["last_error"])
	}
	if !strings.Contains(log.String(), "but it is refused, so they stay live") {
		t.Errorf("the log does not say why the file lost:\n%s", log.String())
	}
	closeMain(t, m)

	// A file edited since that passes: it is published.
	newer := bytes.Replace(rules.Example, []byte("enrol: 50"), []byte("enrol: 90"), 1)
	if err := os.WriteFile(rulesPath, newer, 0o644); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	m = openMain(t, restored, &log)
	if live := get(t, "http://"+m.Addr()+"/v1/rules"); live["version"] != 3.0 || live["source"] != string(newer) {
		t.Fatalf("an edited file: version %v", live["version"])
	}
	if !strings.Contains(log.String(), "modified after the database's rules went live: published it") {
		t.Errorf("the log does not say why the file won:\n%s", log.String())
	}
	closeMain(t, m)
}

// TestRulesCheckTriesRules: rules check refuses a rule that fails when it
// runs, positioned; with --db it tries the database's purchases too.
func TestRulesCheckTriesRules(t *testing.T) {
	dir := t.TempDir()
	oom := filepath.Join(dir, "oom.yaml")
	src := bytes.Replace(rules.Example, []byte("    when: member.churn_risk && purchase.amount >= 10"),
		[]byte(`    when: 'len(repeat(repeat("x", 999999), 999999)) > 0'`), 1)
	line := 1 + bytes.Count(src[:bytes.Index(src, []byte("repeat(repeat"))], []byte("\n"))
	os.WriteFile(oom, src, 0o644)
	code, out := runCLI(t, "rules", "check", oom)
	want := oom + ":" + strconv.Itoa(line) + ":16: rule \"win-back\": when: exceeds the memory budget of 1048576 bytes per purchase (limits.memory) (on a purchase of 0.00 with no items)\n"
	if code != 1 || out != want {
		t.Fatalf("rules check: %d %q, want %q", code, out, want)
	}

	// A rule that fails only on a purchase at store s13, which the
	// database has.
	var log syncBuffer
	m := openMain(t, dir, &log)
	base := "http://" + m.Addr()
	res, err := http.Post(base+"/v1/members", "application/json", strings.NewReader(`{"external_id": "c1"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("enrol: %v", err)
	}
	res.Body.Close()
	res, err = http.Post(base+"/v1/purchases", "application/json", strings.NewReader(`{"id": "at-13", "member_external_id": "c1", "store_id": "s13", "currency": "USD", "amount": "13.00"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("purchase: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	closeMain(t, m)
	fragile := filepath.Join(dir, "fragile.yaml")
	os.WriteFile(fragile, bytes.Replace(rules.Example, []byte("\nbonuses:"), []byte("\n  - name: s13\n    when: purchase.store_id == \"s13\"\n    points: 1 / (purchase.amount - 13)\n\nbonuses:"), 1), 0o644)
	if code, out := runCLI(t, "rules", "check", fragile); code != 0 || out != "ok\n" {
		t.Fatalf("without --db: %d %q", code, out)
	}
	code, out = runCLI(t, "rules", "check", fragile, "--db", filepath.Join(dir, "loyalty.db"))
	if code != 1 || !strings.Contains(out, `rule "s13": points: division by zero (on purchase "at-13")`) {
		t.Fatalf("with --db: %d %q", code, out)
	}
}
