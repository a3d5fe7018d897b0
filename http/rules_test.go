package http_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/rules"
)

func TestRulesEndpoints(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123"}`)
	example := string(rules.Example)

	typo := strings.Replace(example, "points: purchase.amount * tier.multiplier", "points: purchase.amount * tier.multiplyer", 1)
	for _, path := range []string{"/v1/rules/validate", "/v1/rules"} {
		method := "POST"
		if path == "/v1/rules" {
			method = "PUT"
		}
		r := s.do(method, path, typo)
		code, _ := r.errorCode(t)
		details := r.json(t)["error"].(map[string]any)["details"].([]any)
		d := details[0].(map[string]any)
		if r.status != 422 || code != "unprocessable" || d["line"].(float64) == 0 || !strings.Contains(d["message"].(string), `"multiplier"`) {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
		}
	}
	live := s.do("GET", "/v1/rules", "").json(t)
	if live["version"] != 1.0 || live["last_error"] != nil {
		t.Fatalf("after a refused PUT, which has its answer and left the file alone: %v", live)
	}
	if r := s.do("POST", "/v1/rules/validate", example); r.status != 200 || r.json(t)["ok"] != true {
		t.Fatalf("validate: %d %s", r.status, r.body)
	}

	sim := s.do("POST", "/v1/rules/simulate", `{"member_id": "`+id+`", "purchase": {"currency": "USD", "amount": "12.00"}}`)
	if sim.status != 200 || sim.json(t)["points"] != 12.0 {
		t.Fatalf("simulate: %d %s", sim.status, sim.body)
	}
	if r := s.do("GET", "/v1/members/"+id+"/ledger", "").json(t)["entries"].([]any); len(r) != 1 {
		t.Fatal("simulate wrote to the ledger")
	}

	if r := s.do("POST", "/v1/purchases", purchase); r.status != 201 {
		t.Fatalf("purchase: %s", r.body)
	}
	newRules := strings.Replace(example, "points: item.quantity * 12", "points: item.quantity * 20", 1)
	body, _ := json.Marshal(map[string]string{"new": newRules, "last": "7d"})
	diff := s.do("POST", "/v1/rules/diff", string(body))
	if diff.status != 200 || diff.json(t)["points_change"] != 16.0 || diff.json(t)["purchases"] != 1.0 {
		t.Fatalf("diff: %d %s", diff.status, diff.body)
	}

	put := s.do("PUT", "/v1/rules", newRules)
	if put.status != 200 || put.json(t)["version"] != 2.0 {
		t.Fatalf("PUT: %d %s", put.status, put.body)
	}
	if live := s.do("GET", "/v1/rules", "").json(t); live["last_error"] != nil || live["version"] != 2.0 {
		t.Fatalf("after a good PUT: %v", live)
	}
	if v := s.do("GET", "/v1/rules/versions/1", "").json(t); v["source"] != example {
		t.Fatal("version 1 lost its text")
	}

	schema := s.do("GET", "/v1/rules/schema", "")
	if schema.status != 200 || schema.header.Get("Content-Type") != "application/schema+json" || schema.json(t)["title"] == nil {
		t.Fatalf("schema: %d %s", schema.status, schema.header.Get("Content-Type"))
	}
	// after is the cursor's old name, still taken; each publication is
	// an event.
	events := s.do("GET", "/v1/events?after=0&type=rules.*", "")
	if evs, _ := events.json(t)["events"].([]any); events.status != 200 || len(evs) != 2 || evs[1].(map[string]any)["data"].(map[string]any)["version"] != 2.0 {
		t.Fatalf("events: %d %s", events.status, events.body)
	}
	if r := s.do("GET", "/v1/events?after=x", ""); r.status != 400 {
		t.Fatalf("bad cursor: %d", r.status)
	}
}

// failing are rules that used to pass every check and then crash the
// server, stall it, or fail every purchase, with where and why each is
// refused.
var failing = []struct {
	name, rule, why string
	line, column    float64
}{
	{"oom", "    when: 'len(repeat(repeat(\"x\", 999999), 999999)) > 0'\n    points: 1\n", "exceeds the memory budget", 10, 16},
	{"slow", "    points: 'let r = 1..10000; reduce(r, reduce(r, #acc + 1, 0) + #acc, 0) * 0'\n", "exceeds the budget of 1000000 steps", 10, 32},
	{"zero", "    points: purchase.amount / (purchase.amount - purchase.amount)\n", "division by zero", 10, 29},
	{"overflow", "    points: purchase.amount * (2 ** 2000)\n", "+Inf is not a number", 10, 29},
	{"long-text", "    points: len(repeat(\"ab\", 600000))\n", "exceeds the memory budget", 10, 17},
}

// TestRulesThatFailAreRefused: each failing rule is refused by validate,
// PUT, simulate and diff with its name, line, column and why; the server
// stays up, the old rules stay live and purchases earn.
func TestRulesThatFailAreRefused(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	id := s.enrol(`{"external_id": "card-1"}`)
	for _, f := range failing {
		src := simpleRules + "  - name: " + f.name + "\n" + f.rule
		sim, _ := json.Marshal(map[string]any{"rules": src, "member_id": id, "purchase": map[string]string{"currency": "USD", "amount": "5.00"}})
		diff, _ := json.Marshal(map[string]string{"new": src})
		for _, call := range []struct{ method, path, body string }{
			{"POST", "/v1/rules/validate", src},
			{"PUT", "/v1/rules", src},
			{"POST", "/v1/rules/simulate", string(sim)},
			{"POST", "/v1/rules/diff", string(diff)},
		} {
			r := s.do(call.method, call.path, call.body)
			if code, _ := r.errorCode(t); r.status != 422 || code != "unprocessable" {
				t.Fatalf("%s %s with rule %s: %d %s", call.method, call.path, f.name, r.status, r.body)
			}
			details, _ := r.json(t)["error"].(map[string]any)["details"].([]any)
			if len(details) != 1 {
				t.Fatalf("%s %s with rule %s: details %v", call.method, call.path, f.name, details)
			}
			d := details[0].(map[string]any)
			if d["rule"] != f.name || d["line"] != f.line || d["column"] != f.column || !strings.Contains(d["message"].(string), f.why) {
				t.Errorf("%s %s: detail %v, want rule %s at %v:%v: ...%s...", call.method, call.path, d, f.name, f.line, f.column, f.why)
			}
		}
	}
	if r := s.do("GET", "/healthz", ""); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	if live := s.do("GET", "/v1/rules", "").json(t); live["version"] != 1.0 || live["source"] != simpleRules {
		t.Fatalf("live rules: %v", live)
	}
	r := s.do("POST", "/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "12.00"}`)
	if r.status != 201 || r.json(t)["points"] != 12.0 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
}

// TestFailingRuleAtTheTill: a live rule that fails on one purchase (no
// trial could know store 13) refuses that purchase with 422 naming the
// rule, counts it in the metrics and the log, and every other purchase
// earns.
func TestFailingRuleAtTheTill(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	id := s.enrol(`{"external_id": "card-1"}`)
	fragile := simpleRules + "  - name: store-13\n    when: purchase.store_id == \"s13\"\n    points: 100 / (purchase.amount - 13)\n" +
		"  - name: store-14\n    when: purchase.store_id == \"s14\"\n    points: 'len(repeat(repeat(\"x\", 999999), 999999))'\n"
	if r := s.do("PUT", "/v1/rules", fragile); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	r := s.do("POST", "/v1/purchases", `{"id": "p13", "member_id": "`+id+`", "store_id": "s13", "currency": "USD", "amount": "13.00"}`)
	if code, _ := r.errorCode(t); r.status != 422 || code != "unprocessable" {
		t.Fatalf("purchase at store 13: %d %s", r.status, r.body)
	}
	e := r.json(t)["error"].(map[string]any)
	d := e["details"].([]any)[0].(map[string]any)
	if !strings.Contains(e["message"].(string), `rule "store-13"`) || d["rule"] != "store-13" || d["line"] != 11.0 || d["column"] != 17.0 ||
		!strings.Contains(d["message"].(string), "division by zero") {
		t.Fatalf("answer: %s", r.body)
	}
	if r := s.do("GET", "/v1/purchases/p13", ""); r.status != 404 {
		t.Fatalf("the refused purchase: %d %s", r.status, r.body)
	}
	// The rule that took the process down with an out-of-memory error
	// fails its purchase alone.
	r = s.do("POST", "/v1/purchases", `{"id": "p14", "member_id": "`+id+`", "store_id": "s14", "currency": "USD", "amount": "14.00"}`)
	if r.status != 422 || !strings.Contains(string(r.body), "exceeds the memory budget") || !strings.Contains(string(r.body), `"rule":"store-14"`) {
		t.Fatalf("purchase at store 14: %d %s", r.status, r.body)
	}
	for i, store := range []string{"s12", "s13"} {
		body := fmt.Sprintf(`{"id": "ok-%d", "member_id": "%s", "store_id": "%s", "currency": "USD", "amount": "20.00"}`, i, id, store)
		if r := s.do("POST", "/v1/purchases", body); r.status != 201 {
			t.Fatalf("purchase at %s: %d %s", store, r.status, r.body)
		}
	}
	if m := string(s.do("GET", "/metrics", "").body); !strings.Contains(m, `loyalty_rule_failures_total{rule="store-13"} 1`) ||
		!strings.Contains(m, `loyalty_rule_failures_total{rule="store-14"} 1`) {
		t.Errorf("/metrics does not count the failures of store-13 and store-14")
	}
	if log := s.log.String(); !strings.Contains(log, "rule=store-13") || !strings.Contains(log, "purchase=p13") || !strings.Contains(log, "division by zero") {
		t.Errorf("the log does not say which rule failed and why:\n%s", log)
	}
}

// TestPutRulesWithAFailingSave: when the rules file cannot be written the
// new rules do not go live, the answer says the old ones stay live, and a
// restart would find what the database holds in the file.
func TestPutRulesWithAFailingSave(t *testing.T) {
	var saved []string
	fail := true
	s := newOpsServer(t, nil, nil, func(c *lhttp.Config) {
		c.SaveRules = func(src []byte) error {
			if fail {
				return errors.New("write rules.yaml: no space left on device")
			}
			saved = append(saved, string(src))
			return nil
		}
	})
	double := strings.Replace(simpleRules, "points: purchase.amount", "points: purchase.amount * 2", 1)
	r := s.do("PUT", "/v1/rules", double)
	if code, _ := r.errorCode(t); r.status != 500 || code != "internal" || !strings.Contains(string(r.body), "version 1 stays live") {
		t.Fatalf("PUT with a full disk: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "no space") {
		t.Errorf("the answer carries the server's error: %s", r.body)
	}
	if !strings.Contains(s.log.String(), "no space left on device") {
		t.Errorf("the log lacks the reason")
	}
	if live := s.do("GET", "/v1/rules", "").json(t); live["version"] != 1.0 || live["source"] != simpleRules {
		t.Fatalf("live after a failed save: %v", live)
	}
	if vs := s.do("GET", "/v1/rules/versions", "").json(t)["versions"].([]any); len(vs) != 1 {
		t.Fatalf("versions after a failed save: %v", vs)
	}
	fail = false
	if r := s.do("PUT", "/v1/rules", double); r.status != 200 || r.json(t)["version"] != 2.0 || len(saved) != 1 || saved[0] != double {
		t.Fatalf("PUT once the disk has room: %d %s, saved %q", r.status, r.body, saved)
	}
}
