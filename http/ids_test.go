package http_test

import (
	"encoding/json"
	"net/url"
	"testing"
)

// TestIdsInPaths checks both halves of the rule on client ids: an id that
// could not be reached through a path (a slash, or a dot segment, which
// clients and proxies remove) is refused when it is created, naming the
// field; every other id, however odd, is reachable by every route that
// takes it once it is percent-encoded as a path segment.
func TestIdsInPaths(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	member := s.enrol(`{"external_id": "CRM/0042"}`)
	if r := s.do("POST", "/v1/purchases", `{"id": "seed", "member_id": "`+member+`", "currency": "USD", "amount": "500.00"}`); r.status != 201 {
		t.Fatalf("seed purchase: %d %s", r.status, r.body)
	}
	refused := []struct{ path, body string }{
		{"/v1/purchases", `{"id": "a/b", "member_id": "` + member + `", "currency": "USD", "amount": "1.00"}`},
		{"/v1/purchases", `{"id": ".", "member_id": "` + member + `", "currency": "USD", "amount": "1.00"}`},
		{"/v1/purchases", `{"id": "..", "member_id": "` + member + `", "currency": "USD", "amount": "1.00"}`},
		{"/v1/purchases/seed/refunds", `{"id": "seed/r/1", "amount": "1.00"}`},
		{"/v1/members/" + member + "/redemptions", `{"id": "till7/r/1", "points": 1}`},
		{"/v1/members/" + member + "/adjustments", `{"id": "../a", "points": 1, "reason": "x"}`},
	}
	for _, tc := range refused {
		r := s.do("POST", tc.path, tc.body)
		if code, field := r.errorCode(t); r.status != 400 || code != "invalid" || field != "id" {
			t.Errorf("POST %s %s: %d %s, want 400 invalid naming id", tc.path, tc.body, r.status, r.body)
		}
	}

	for i, id := range []string{"till 7+1", "a?b#c", "50%", "a%2Fb", "ü-ñ", "a;b=c&d", "a..b", ".x", "@:!$'()*,"} {
		esc := url.PathEscape(id)
		body := `{"id": ` + quote(id) + `, "member_id": "` + member + `", "currency": "USD", "amount": "10.00"}`
		if r := s.do("POST", "/v1/purchases", body); r.status != 201 {
			t.Errorf("purchase %q: %d %s", id, r.status, r.body)
			continue
		}
		if r := s.do("GET", "/v1/purchases/"+esc, ""); r.status != 200 || r.json(t)["id"] != id {
			t.Errorf("GET purchase %q as %s: %d %s", id, esc, r.status, r.body)
		}
		if r := s.do("POST", "/v1/purchases/"+esc+"/refunds", `{"id": `+quote(id)+`, "amount": "1.00"}`); r.status != 201 {
			t.Errorf("refund of purchase %q: %d %s", id, r.status, r.body)
		}
		if r := s.do("POST", "/v1/members/"+member+"/redemptions", `{"id": `+quote(id)+`, "points": 1}`); r.status != 201 {
			t.Errorf("redemption %q: %d %s", id, r.status, r.body)
			continue
		}
		if r := s.do("POST", "/v1/redemptions/"+esc+"/cancel", ""); r.status != 200 || r.json(t)["cancelled"] != true {
			t.Errorf("cancel of redemption %q as %s: %d %s", id, esc, r.status, r.body)
		}
		if r := s.do("POST", "/v1/members/"+member+"/adjustments", `{"id": `+quote(id)+`, "points": 1, "reason": "case `+string(rune('a'+i))+`"}`); r.status != 201 {
			t.Errorf("adjustment %q: %d %s", id, r.status, r.body)
		}
	}

	found := s.do("GET", "/v1/members?external_id="+url.QueryEscape("CRM/0042"), "").json(t)["members"].([]any)
	if len(found) != 1 {
		t.Fatalf("an external id with a slash is not found by the query: %v", found)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
