package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/rules"
)

// TestRewardsThenVerify: through the real server on the example rules, a
// member takes the free coffee and the till uses it; once the server is
// stopped, loyalty verify finds the database clean.
func TestRewardsThenVerify(t *testing.T) {
	dir := t.TempDir()
	rulesPath, dbPath := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "loyalty.db")
	if err := os.WriteFile(rulesPath, rules.Example, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: Config{Addr: "127.0.0.1:0", DBPath: dbPath, RulesPath: rulesPath}}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + m.Addr()
	post := func(path, body string) map[string]any {
		t.Helper()
		res, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	id := post("/v1/members", `{"external_id": "card-1"}`)["id"].(string)
	post("/v1/purchases", `{"id": "p1", "member_external_id": "card-1", "currency": "USD", "amount": "60.00"}`)
	coupon := post("/v1/members/"+id+"/rewards", `{"id": "take-1", "reward": "free-coffee"}`)["coupon"].(map[string]any)
	used := post("/v1/coupons/"+coupon["code"].(string)+"/use", `{"id": "use-1", "store_id": "store7"}`)
	if used["status"] != "used" {
		t.Fatalf("use: %v", used)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "verify", "--db", dbPath); code != 0 || out != "ok\n" {
		t.Fatalf("verify: %d %s", code, out)
	}
}

// TestRulesDiffPrintsRewards: loyalty rules diff names the rewards added,
// removed and changed.
func TestRulesDiffPrintsRewards(t *testing.T) {
	dir := t.TempDir()
	oldPath, newPath, purchases := filepath.Join(dir, "old.yaml"), filepath.Join(dir, "new.yaml"), filepath.Join(dir, "p.json")
	changed := bytes.NewBuffer(nil)
	changed.WriteString(strings.NewReplacer(
		"    cost: 90\n", "    cost: 100\n",
		"  - name: free-pastry\n", "  - name: free-muffin\n",
	).Replace(string(rules.Example)))
	for path, b := range map[string][]byte{oldPath: rules.Example, newPath: changed.Bytes(), purchases: []byte(`[{"currency": "USD", "amount": "5.00"}]`)} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out := runCLI(t, "rules", "diff", oldPath, newPath, "--purchases", purchases)
	if code != 0 {
		t.Fatalf("diff: %d %s", code, out)
	}
	for _, want := range []string{"rewards:\n", "  + free-muffin (added)\n", "  - free-pastry (removed)\n", `  ~ free-coffee cost: "90" -> "100"` + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff does not print %q:\n%s", want, out)
		}
	}
}
