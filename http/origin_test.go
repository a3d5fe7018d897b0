package http_test

import (
	nethttp "net/http"
	"strings"
	"testing"

	lhttp "github.com/loyaltyhq/loyalty/http"
)

// send makes a request with the headers given, as a browser or a rebound
// page would, and reads the answer.
func (s *server) send(method, path, body string, headers map[string]string) response {
	s.t.Helper()
	req, err := nethttp.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.answer(res)
}

// TestOpenModeRefusesBrowsersAndRebinding is the attack on a server that
// runs without keys: a page on another site posts a text/plain adjustment
// (no preflight needed), and a page whose name was rebound to 127.0.0.1
// reads the backup. Both are 403 forbidden; the same requests addressed to
// localhost from a local page go through.
func TestOpenModeRefusesBrowsersAndRebinding(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	id := s.enrol(`{"external_id": "card-1"}`)
	port := s.url[strings.LastIndex(s.url, ":"):]
	adjust := `{"id": "adj-evil", "points": 100000, "reason": "free points"}`

	refused := []struct {
		name, method, path, body string
		headers                  map[string]string
	}{
		{"cross-site text/plain POST", "POST", "/v1/members/" + id + "/adjustments", adjust,
			map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}},
		{"rebound backup", "GET", "/v1/admin/backup", "", map[string]string{"Host": "rebound.evil.example" + port}},
		{"rebound without a port", "GET", "/v1/members/" + id, "", map[string]string{"Host": "rebound.evil.example"}},
		{"rebound healthz", "GET", "/healthz", "", map[string]string{"Host": "evil.example" + port}},
		{"0.0.0.0", "GET", "/v1/members/" + id, "", map[string]string{"Host": "0.0.0.0" + port}},
		{"sandboxed page", "POST", "/v1/members/" + id + "/adjustments", adjust, map[string]string{"Origin": "null"}},
		{"lookalike origin", "POST", "/v1/members/" + id + "/adjustments", adjust, map[string]string{"Origin": "http://localhost.evil.example"}},
	}
	for _, tc := range refused {
		r := s.send(tc.method, tc.path, tc.body, tc.headers)
		if code, _ := r.errorCode(t); r.status != 403 || code != "forbidden" {
			t.Errorf("%s: %d %.200s", tc.name, r.status, r.body)
		}
	}
	if bal := s.do("GET", "/v1/members/"+id+"/balance", "").json(t); bal["available"].(float64) != 0 {
		t.Fatalf("a refused adjustment moved points: %v", bal)
	}

	allowed := []map[string]string{
		{"Origin": "http://localhost:3000"},
		{"Origin": "http://127.0.0.1" + port, "Host": "localhost" + port},
		{"Origin": "https://app.localhost", "Host": "127.0.0.1" + port},
		{"Host": "[::1]" + port},
		{"Host": "LOCALHOST"},
	}
	for i, h := range allowed {
		r := s.send("POST", "/v1/members/"+id+"/adjustments", `{"id": "adj-`+string(rune('a'+i))+`", "points": 1, "reason": "local"}`, h)
		if r.status != 201 {
			t.Errorf("%v: %d %s", h, r.status, r.body)
		}
	}
}

// TestCORSOnlyWhenConfigured: with keys, other sites' pages cannot send a
// key without a preflight, and the preflight gets no CORS header unless
// the origin was configured.
func TestCORSOnlyWhenConfigured(t *testing.T) {
	keys, err := lhttp.NewKeys([]lhttp.Key{{Name: "app", Key: "reader-key-012345678", Role: "reader"}})
	if err != nil {
		t.Fatal(err)
	}
	preflight := func(s *server, origin string) response {
		return s.send("OPTIONS", "/v1/clock", "", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization",
		})
	}
	off := newOpsServer(t, keys, nil).server
	if r := preflight(off, "https://app.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS answered without being configured: %v", r.header)
	}
	if r := off.send("GET", "/v1/clock", "", map[string]string{"Origin": "https://app.example", "Authorization": "Bearer reader-key-012345678"}); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("keyed request from another origin: %d %v", r.status, r.header)
	}

	origins, err := lhttp.ParseOrigins("https://app.example, http://kiosk.example:8443")
	if err != nil {
		t.Fatal(err)
	}
	on := newOpsServer(t, keys, nil, func(c *lhttp.Config) { c.CORSOrigins = origins }).server
	r := preflight(on, "https://app.example")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight from a configured origin: %d %v", r.status, r.header)
	}
	if r := preflight(on, "https://evil.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin allowed: %v", r.header)
	}
	got := on.send("GET", "/v1/clock", "", map[string]string{"Origin": "https://app.example", "Authorization": "Bearer reader-key-012345678"})
	if got.status != 200 || got.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("keyed request from the configured origin: %d %v", got.status, got.header)
	}

	for _, bad := range []string{"*", "https://*.example", "app.example", "https://app.example/path", "ftp://app.example"} {
		if _, err := lhttp.ParseOrigins(bad); err == nil {
			t.Errorf("ParseOrigins(%q) accepted", bad)
		}
	}
}
