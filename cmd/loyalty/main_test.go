package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// startMain runs the real server wiring on a temp database, a temp copy of
// the example rules and a :0 port.
func startMain(t *testing.T) (*Main, string) {
	t.Helper()
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, rules.Example, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: Config{Addr: "127.0.0.1:0", DBPath: filepath.Join(dir, "loyalty.db"), RulesPath: rulesPath}}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, rulesPath
}

func get(t *testing.T, url string) map[string]any {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// eventually polls until cond holds, for changes the server picks up on
// its own (file events).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHotReload(t *testing.T) {
	m, rulesPath := startMain(t)
	base := "http://" + m.Addr()
	if v := get(t, base+"/v1/rules")["version"]; v != 1.0 {
		t.Fatalf("version %v", v)
	}

	typo := bytes.Replace(rules.Example, []byte("points: item.quantity * 12"), []byte("points: item.quantity * 12 +"), 1)
	if err := os.WriteFile(rulesPath, typo, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the typo to be reported", func() bool { return get(t, base+"/v1/rules")["last_error"] != nil })
	r := get(t, base+"/v1/rules")
	if r["version"] != 1.0 {
		t.Fatalf("a bad file changed the live version: %v", r["version"])
	}
	detail := r["last_error"].(map[string]any)["details"].([]any)[0].(map[string]any)
	if detail["line"].(float64) < 1 || detail["column"].(float64) < 1 {
		t.Fatalf("detail without a position: %v", detail)
	}

	// Save the fix the way many editors do: a new file renamed over the old.
	better := bytes.Replace(rules.Example, []byte("points: item.quantity * 12"), []byte("points: item.quantity * 15"), 1)
	tmp := rulesPath + ".swp"
	if err := os.WriteFile(tmp, better, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, rulesPath); err != nil {
		t.Fatal(err)
	}
	eventually(t, "version 2", func() bool { return get(t, base+"/v1/rules")["version"] == 2.0 })
	if r := get(t, base+"/v1/rules"); r["last_error"] != nil || r["by"] != "file" {
		t.Fatalf("after the fix: %v", r)
	}

	// A publish through the API writes the file, and the watcher does not
	// make a version of its own from that write.
	third := bytes.Replace(better, []byte("enrol: 50"), []byte("enrol: 60"), 1)
	req, _ := http.NewRequest("PUT", base+"/v1/rules", bytes.NewReader(third))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("PUT: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	onDisk, _ := os.ReadFile(rulesPath)
	if !bytes.Equal(onDisk, third) {
		t.Fatal("PUT did not write the rules file")
	}
	time.Sleep(300 * time.Millisecond)
	versions := get(t, base+"/v1/rules/versions")["versions"].([]any)
	if len(versions) != 3 || versions[2].(map[string]any)["by"] != "open" {
		t.Fatalf("versions: %v", versions)
	}
}

func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String() + errOut.String()
}

func TestRulesCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, rules.Example, 0o644)
	os.WriteFile(bad, bytes.Replace(rules.Example, []byte("rounding: floor"), []byte("rouding: floor"), 1), 0o644)
	if code, out := runCLI(t, "rules", "check", good); code != 0 || out != "ok\n" {
		t.Fatalf("good: %d %q", code, out)
	}
	line := 1 + bytes.Count(rules.Example[:bytes.Index(rules.Example, []byte("rounding: floor"))], []byte("\n"))
	code, out := runCLI(t, "rules", "check", bad)
	want := fmt.Sprintf("%s:%d:3: unknown key \"rouding\"; did you mean \"rounding\"?\n", bad, line)
	if code != 1 || out != want {
		t.Fatalf("bad: %d %q", code, out)
	}
}

func TestRulesSimulateAndDiff(t *testing.T) {
	dir := t.TempDir()
	oldPath, newPath := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml")
	os.WriteFile(oldPath, rules.Example, 0o644)
	os.WriteFile(newPath, bytes.Replace(rules.Example, []byte("points: item.quantity * 12"), []byte("points: item.quantity * 20"), 1), 0o644)
	purchase := filepath.Join(dir, "p.json")
	os.WriteFile(purchase, []byte(`{"currency": "USD", "amount": "23.40", "items": [{"sku": "LATTE-L", "category": "coffee", "quantity": 2, "amount": "9.80"}]}`), 0o644)
	member := filepath.Join(dir, "m.json")
	os.WriteFile(member, []byte(`{"tier": "gold"}`), 0o644)

	code, out := runCLI(t, "rules", "simulate", oldPath, "--purchase", purchase, "--member", member)
	if code != 0 {
		t.Fatalf("simulate: %d %s", code, out)
	}
	var res struct {
		Points    int64 `json:"points"`
		Breakdown []struct {
			Rule   string `json:"rule"`
			Points int64  `json:"points"`
		} `json:"breakdown"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Points != 35+24 || res.Breakdown[0].Rule != "base" || res.Breakdown[0].Points != 35 {
		t.Fatalf("simulate: %+v", res)
	}

	purchases := filepath.Join(dir, "ps.json")
	os.WriteFile(purchases, []byte(`[{"currency": "USD", "amount": "9.80", "items": [{"sku": "LATTE-L", "category": "coffee", "quantity": 2, "amount": "9.80"}]},
		{"currency": "USD", "amount": "100.00", "member": {"tier": "gold"}}]`), 0o644)
	code, out = runCLI(t, "rules", "diff", oldPath, newPath, "--purchases", purchases)
	if code != 0 || !strings.Contains(out, "points: 183 before, 199 after, change +16") {
		t.Fatalf("diff: %d\n%s", code, out)
	}
}

func TestVerifyAfterServing(t *testing.T) {
	m, _ := startMain(t)
	base := "http://" + m.Addr()
	res, err := http.Post(base+"/v1/members", "application/json", strings.NewReader(`{"external_id": "c1"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("enrol: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "verify", "--db", m.Config.DBPath); code != 0 || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("verify: %d %s", code, out)
	}
}

func TestServeRefusesAnOpenPublicAddress(t *testing.T) {
	dir := t.TempDir()
	code, out := runCLI(t, "serve", "--addr", "0.0.0.0:0", "--db", filepath.Join(dir, "x.db"), "--rules", filepath.Join(dir, "r.yaml"))
	if code != 1 || !strings.Contains(out, "loopback") {
		t.Fatalf("%d %s", code, out)
	}
}
