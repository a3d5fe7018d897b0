package http_test

import (
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/internal/version"
)

// The tests in this file are the things a newcomer tripped on following
// the README and docs/API.md (issue 17), through a real server.

func TestAmountErrorsSayHowToWriteIt(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123"}`)
	for amount, want := range map[string]string{
		"12,50":   "amount: is not a decimal number: write it with a dot before the decimals: 12.50",
		"$12.50":  `amount: is not a decimal number: write it without the currency (it goes in "currency"): 12.50`,
		" 12.50":  "amount: is not a decimal number: write it without spaces around it: 12.50",
		"1,234.5": "amount: is not a decimal number: write it without thousands separators: 1234.5",
		"12 50":   "amount: is not a decimal number: write digits and a dot before the decimals, with no currency, spaces or thousands separators, like 12.50",
	} {
		r := s.do("POST", "/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "`+amount+`"}`)
		code, field := r.errorCode(t)
		msg, _ := r.json(t)["error"].(map[string]any)["message"].(string)
		if r.status != 400 || code != "invalid" || field != "amount" || msg != want {
			t.Errorf("amount %q: %d %s %s %q, want %q", amount, r.status, code, field, msg, want)
		}
	}
	r := s.do("POST", "/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "10.00", "items": [{"sku": "a", "quantity": 1, "amount": "9,80"}]}`)
	if msg, _ := r.json(t)["error"].(map[string]any)["message"].(string); r.status != 400 || !strings.HasSuffix(msg, "write it with a dot before the decimals: 9.80") {
		t.Errorf("an item's amount: %d %s", r.status, r.body)
	}
}

// TestLimitZeroIsRefusedLike501: limit=0 answered the default page while
// limit=501 was an error.
func TestLimitZeroIsRefusedLike501(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123"}`)
	for _, path := range []string{"/v1/members/" + id + "/ledger", "/v1/events", "/v1/analytics/members"} {
		for _, l := range []string{"0", "501", "-1", "ten"} {
			r := s.do("GET", path+"?limit="+l, "")
			code, field := r.errorCode(t)
			if r.status != 400 || code != "invalid" || field != "limit" || !strings.Contains(string(r.body), "from 1 to 500") {
				t.Errorf("%s?limit=%s: %d %s", path, l, r.status, r.body)
			}
		}
		for _, q := range []string{"", "?limit=1", "?limit=500"} {
			if r := s.do("GET", path+q, ""); r.status != 200 {
				t.Errorf("%s%s: %d %s", path, q, r.status, r.body)
			}
		}
	}
}

// TestPatchMergesAttributes: PATCH replaced the whole attributes map, so a
// till setting one key wiped the others.
func TestPatchMergesAttributes(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123", "attributes": {"store": "downtown", "vip": "yes"}}`)
	attrs := func(r response) map[string]any {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("PATCH: %d %s", r.status, r.body)
		}
		a, _ := r.json(t)["attributes"].(map[string]any)
		return a
	}
	a := attrs(s.do("PATCH", "/v1/members/"+id, `{"attributes": {"vip": "no", "lang": "pt"}}`))
	if len(a) != 3 || a["store"] != "downtown" || a["vip"] != "no" || a["lang"] != "pt" {
		t.Fatalf("after a merge: %v", a)
	}
	a = attrs(s.do("PATCH", "/v1/members/"+id, `{"attributes": {"vip": null}}`))
	if len(a) != 2 || a["vip"] != nil {
		t.Fatalf("after removing vip: %v", a)
	}
	a = attrs(s.do("PATCH", "/v1/members/"+id, `{"name": "Ana"}`))
	if len(a) != 2 {
		t.Fatalf("a patch without attributes changed them: %v", a)
	}
	a = attrs(s.do("PATCH", "/v1/members/"+id, `{"attributes": {"store": null, "lang": null}}`))
	if a != nil {
		t.Fatalf("after removing every key: %v", a)
	}
	if got := s.do("GET", "/v1/members/"+id, "").json(t)["attributes"]; got != nil {
		t.Fatalf("stored: %v", got)
	}
	var many strings.Builder
	many.WriteString(`{"attributes": {`)
	for i := range 51 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"k` + strings.Repeat("x", i) + `": "v"`)
	}
	many.WriteString("}}")
	if r := s.do("PATCH", "/v1/members/"+id, many.String()); r.status != 400 || !strings.Contains(string(r.body), "attributes") {
		t.Fatalf("51 attributes: %d %s", r.status, r.body)
	}
}

// TestClockTakesRulesDurations: {"advance": "30d"} was refused (issue 12
// fixed it; this keeps it so).
func TestClockTakesRulesDurations(t *testing.T) {
	s := newServer(t, true)
	for _, d := range []string{"30d", "12mo", "1y", "36h", "90m"} {
		if r := s.do("POST", "/v1/clock", `{"advance": "`+d+`"}`); r.status != 200 {
			t.Errorf("advance %s: %d %s", d, r.status, r.body)
		}
	}
}

// TestAccessLogOfRefusedRules: the request line of a refused PUT /v1/rules
// said only status=422; it now says where the first problem is.
func TestAccessLogOfRefusedRules(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	typo := strings.Replace(simpleRules, "points: purchase.amount", "points: purchase.amont", 1)
	if r := s.do("PUT", "/v1/rules", typo); r.status != 422 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	var line string
	for _, l := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(l, "msg=request") && strings.Contains(l, "route=/v1/rules") {
			line = l
		}
	}
	for _, want := range []string{"status=422", "error_code=unprocessable", "problems=1", "first_at=8:22"} {
		if !strings.Contains(line, want) {
			t.Errorf("access line %q lacks %s", line, want)
		}
	}
	if r := s.do("POST", "/v1/purchases", `{"id": "p1", "member_id": "x", "currency": "USD", "amount": "1,00"}`); r.status != 400 {
		t.Fatalf("bad amount: %d", r.status)
	}
	if !strings.Contains(s.log.String(), "status=400 duration=") || !strings.Contains(s.log.String(), "error_code=invalid field=amount") {
		t.Errorf("no error code and field on the line of a 400:\n%s", s.log.String())
	}
}

// TestHealthzNamesTheBuild: a rollout is watched from the health checks,
// which say which build answers.
func TestHealthzNamesTheBuild(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	r := s.do("GET", "/healthz", "")
	v := version.Get()
	if h := r.json(t); r.status != 200 || h["status"] != "ok" || h["version"] != v.Version || h["commit"] != v.Commit || v.Version == "" {
		t.Fatalf("/healthz: %d %s", r.status, r.body)
	}
	want := `loyalty_build_info{commit="` + v.Commit + `",version="` + v.Version + `"} 1`
	if m := s.do("GET", "/metrics", ""); !strings.Contains(string(m.body), want) {
		t.Fatalf("/metrics lacks %s", want)
	}
}
