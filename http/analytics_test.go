package http_test

import (
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	lhttp "github.com/loyaltyhq/loyalty/http"
)

const (
	adminKey    = "admin-key-0123456789"
	marketerKey = "marketer-key-0123456"
	readerKey   = "reader-key-012345678"
	posKey      = "pos-key-0123456789ab"
)

// analyticsServer has six members enrolled 200 days ago, five of whom
// bought once since: 100.00, 50.00 and three times 10.00; the analytics job
// has run. It returns the ids in enrolment order.
func analyticsServer(t *testing.T) (*server, []string) {
	t.Helper()
	keys, err := lhttp.NewKeys([]lhttp.Key{
		{Name: "ops", Key: adminKey, Role: "admin"},
		{Name: "mkt", Key: marketerKey, Role: "marketer"},
		{Name: "web", Key: readerKey, Role: "reader"},
		{Name: "till", Key: posKey, Role: "pos"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := newServerWithKeys(t, true, keys)
	s.key = adminKey
	names := []string{"Ana", "Ben", "Cy", "=HYPERLINK(\"http://x\")", "Eve", "Flo"}
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = s.enrol(fmt.Sprintf(`{"external_id": "card-%d", "name": %q}`, i, n))
	}

	s.key = marketerKey
	if r := s.do("GET", "/v1/analytics/summary", ""); r.status != 404 {
		t.Fatalf("summary before the first run: %d %s", r.status, r.body)
	}

	s.key = adminKey
	if r := s.do("POST", "/v1/clock", `{"advance": "4800h"}`); r.status != 200 {
		t.Fatalf("advance: %d %s", r.status, r.body)
	}
	for i, amount := range []string{"100.00", "50.00", "", "10.00", "10.00", "10.00"} {
		if amount == "" {
			continue
		}
		body := fmt.Sprintf(`{"id": "p%d", "member_id": %q, "currency": "USD", "amount": %q}`, i, ids[i], amount)
		if r := s.do("POST", "/v1/purchases", body); r.status != 201 {
			t.Fatalf("purchase %d: %d %s", i, r.status, r.body)
		}
	}
	if r := s.do("POST", "/v1/jobs/analytics/run", ""); r.status != 200 || r.json(t)["processed"] != 6.0 {
		t.Fatalf("run analytics: %d %s", r.status, r.body)
	}
	return s, ids
}

func TestAnalyticsSummaryEndpoint(t *testing.T) {
	s, ids := analyticsServer(t)
	for _, key := range []string{readerKey, posKey} {
		s.key = key
		for _, path := range []string{"/v1/analytics/summary", "/v1/analytics/members", "/v1/analytics/members?format=csv"} {
			if r := s.do("GET", path, ""); r.status != 403 {
				t.Errorf("%s with a %s key: %d, want 403", path, key[:3], r.status)
			}
		}
	}

	s.key = marketerKey
	r := s.do("GET", "/v1/analytics/summary", "")
	if r.status != 200 {
		t.Fatalf("summary: %d %s", r.status, r.body)
	}
	sum := r.json(t)
	if sum["members"] != 6.0 || sum["active"] != 5.0 || sum["churn_risk"] != 0.0 || sum["window"] != "12mo" || sum["computed_at"] == nil {
		t.Errorf("summary: %s", r.body)
	}
	// ceil(0.2 × 5 active) = 1 member brings 100.00 of 180.00.
	rev := sum["revenue"].(map[string]any)
	if rev["total"] != "180.00" || rev["top_members"] != 1.0 || rev["top"] != "100.00" || rev["top_share"] != 0.5556 {
		t.Errorf("revenue: %v", rev)
	}
	// Six enrolment bonuses of 50 and a point per unit spent, none of it
	// due within 90 days: the bonuses expire a year after enrolment.
	pts := sum["points"].(map[string]any)
	if pts["outstanding"] != 480.0 || pts["liability"] != "4.80" || pts["expiring_30d"] != 0.0 || pts["expiring_90d"] != 0.0 {
		t.Errorf("points: %v", pts)
	}
	segs := sum["segments"].(map[string]any)
	if segs["mvc"] != 1.0 || segs["mgc"] != 0.0 || segs["bzc"] != 0.0 || segs["regular"] != 5.0 {
		t.Errorf("segments: %v", segs)
	}
	if lc := sum["lifecycle"].(map[string]any); lc["new"] != 6.0 || len(lc) != 5 {
		t.Errorf("lifecycle: %v", lc)
	}

	// Everyone bought once today, so recency and frequency tie (3, their
	// midpoint) and Ana's 100.00 is the best monetary (5).
	m := s.do("GET", "/v1/members/"+ids[0], "").json(t)
	a, ok := m["analytics"].(map[string]any)
	if !ok || a["segment"] != "mvc" || a["lifecycle"] != "new" || a["churn_risk"] != false || a["computed_at"] == nil ||
		a["monetary"] != "100.00" || a["frequency"] != 1.0 || a["recency_days"] != 0.0 || a["rfm"] != "335" ||
		a["realised_value"] != "30.00" || a["usual_interval_days"] != nil || a["referrals"] != 0.0 {
		t.Errorf("member analytics: %v", m["analytics"])
	}
	if a := s.do("GET", "/v1/members/"+ids[2], "").json(t)["analytics"].(map[string]any); a["recency_days"] != nil || a["rfm"] != "" {
		t.Errorf("analytics of a member who never bought: %v", a)
	}
}

func TestAnalyticsMembersEndpoint(t *testing.T) {
	s, ids := analyticsServer(t)
	s.key = marketerKey
	list := func(query string) ([]string, string) {
		t.Helper()
		r := s.do("GET", "/v1/analytics/members"+query, "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", query, r.status, r.body)
		}
		body := r.json(t)
		var got []string
		for _, m := range body["members"].([]any) {
			got = append(got, m.(map[string]any)["id"].(string))
		}
		next, _ := body["next_cursor"].(string)
		return got, next
	}

	if got, next := list("?segment=mvc"); len(got) != 1 || got[0] != ids[0] || next != "" {
		t.Errorf("mvc: %v next %q", got, next)
	}
	if got, _ := list("?lifecycle=new&churn_risk=false"); len(got) != 6 {
		t.Errorf("new and not at risk: %d members", len(got))
	}
	if got, _ := list("?churn_risk=true"); len(got) != 0 {
		t.Errorf("at risk: %v", got)
	}

	first, next := list("?limit=4")
	if len(first) != 4 || next == "" {
		t.Fatalf("first page: %v next %q", first, next)
	}
	rest, end := list("?limit=4&cursor=" + next)
	if len(rest) != 2 || end != "" {
		t.Fatalf("second page: %v next %q", rest, end)
	}
	seen := map[string]bool{}
	for _, id := range append(first, rest...) {
		seen[id] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("paging missed %s", id)
		}
	}

	for _, tc := range []struct{ query, field string }{
		{"?segment=vip", "segment"},
		{"?lifecycle=teen", "lifecycle"},
		{"?churn_risk=maybe", "churn_risk"},
		{"?format=xml", "format"},
		{"?limit=501", "limit"},
		{"?format=csv&segment=vip", "segment"},
	} {
		r := s.do("GET", "/v1/analytics/members"+tc.query, "")
		if code, field := r.errorCode(t); r.status != 400 || code != "invalid" || field != tc.field {
			t.Errorf("%s: %d %s %s, want 400 invalid on %s", tc.query, r.status, code, field, tc.field)
		}
	}
}

func TestAnalyticsCSVExport(t *testing.T) {
	s, ids := analyticsServer(t)
	s.key = marketerKey
	r := s.do("GET", "/v1/analytics/members?format=csv&lifecycle=new", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(r.header.Get("Content-Disposition"), "members.csv") {
		t.Fatalf("export: %d %v", r.status, r.header)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 {
		t.Fatalf("%d rows, want a header and 6 members:\n%s", len(rows), r.body)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	byID := map[string][]string{}
	for _, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			t.Fatalf("row of %d cells under a header of %d", len(row), len(rows[0]))
		}
		byID[row[col["id"]]] = row
	}
	ana := byID[ids[0]]
	if ana == nil || ana[col["name"]] != "Ana" || ana[col["external_id"]] != "card-0" || ana[col["segment"]] != "mvc" ||
		ana[col["monetary"]] != "100.00" || ana[col["points"]] != "150" || ana[col["rfm"]] != "335" || ana[col["churn_risk"]] != "false" {
		t.Errorf("Ana's row: %v", ana)
	}
	if got := byID[ids[3]][col["name"]]; got != `'=HYPERLINK("http://x")` {
		t.Errorf("a formula-like name went out as %q", got)
	}

	r = s.do("GET", "/v1/analytics/members?format=csv&segment=bzc", "")
	if rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll(); err != nil || len(rows) != 1 {
		t.Errorf("an empty export is the header alone: %v %v", rows, err)
	}
}
