package http_test

import (
	"encoding/json"
	"strings"
	"testing"

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
	if live["version"] != 1.0 || live["last_error"] == nil {
		t.Fatalf("after a refused PUT: %v", live)
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
	events := s.do("GET", "/v1/events?after=0", "")
	if events.status != 200 || events.json(t)["next_cursor"] != "0" {
		t.Fatalf("events: %d %s", events.status, events.body)
	}
	if r := s.do("GET", "/v1/events?after=x", ""); r.status != 400 {
		t.Fatalf("bad cursor: %d", r.status)
	}
}
