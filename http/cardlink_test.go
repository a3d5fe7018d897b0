package http_test

import (
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	lhttp "github.com/loyaltyhq/loyalty/http"
)

// TestCardLink: a till issues a card link; the page it names opens
// without a key and shows the member's balance and coupons; a tampered
// token is a 404 page that names nobody. Readers and marketers issue no
// links.
func TestCardLink(t *testing.T) {
	s := newRewardServer(t, storeKind, rewardRules, lhttp.GuessLimit{})
	m := s.enrol(`{"name": "Ana Card"}`)
	s.fund(m, 140)
	code := s.mustTake(m, "t1", "coffee")

	r := s.do("POST", "/v1/members/"+m+"/card-link", `{"ttl": "48h"}`)
	if r.status != 200 {
		t.Fatalf("card link: %d %s", r.status, r.body)
	}
	link := r.json(t)
	url, _ := link["url"].(string)
	if !strings.HasPrefix(url, s.url+"/m/") || link["expires_at"] == nil {
		t.Fatalf("card link answer: %s", r.body)
	}
	page := (&server{t: t}).get(url)
	if page.status != 200 || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("card page: %d %s", page.status, page.header.Get("Content-Type"))
	}
	expires, _ := time.Parse(time.RFC3339, link["expires_at"].(string))
	for _, want := range []string{"Ana Card", ">130<", code, "Coffee", "Yours to take", "99870 more points", "valid until " + expires.Format("2 Jan 2006 15:04")} {
		if !strings.Contains(string(page.body), want) {
			t.Errorf("card page lacks %q:\n%s", want, page.body)
		}
	}
	if page.header.Get("Cache-Control") != "no-store" || page.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("card page headers: %v", page.header)
	}

	tampered := url[:len(url)-2] + "AA"
	if strings.HasSuffix(url, "AA") {
		tampered = url[:len(url)-2] + "BB"
	}
	bad := (&server{t: t}).get(tampered)
	if bad.status != 404 || strings.Contains(string(bad.body), "Ana") || strings.Contains(string(bad.body), code) || !strings.Contains(string(bad.body), "not valid") {
		t.Errorf("tampered link: %d\n%s", bad.status, bad.body)
	}

	// Behind a proxy the link names the address the proxy was asked.
	req, _ := nethttp.NewRequest("POST", s.url+"/v1/members/"+m+"/card-link", nil)
	req.Header.Set("Authorization", "Bearer "+posKey)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "loyalty.example.com")
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := s.answer(res).json(t)["url"].(string); !strings.HasPrefix(u, "https://loyalty.example.com/m/") {
		t.Errorf("behind a proxy the link is %q", u)
	}

	for body, field := range map[string]string{`{"ttl": "1000d"}`: "ttl", `{"ttl": 5}`: "ttl", `{"days": 1}`: "days"} {
		r := s.do("POST", "/v1/members/"+m+"/card-link", body)
		if code, f := r.errorCode(t); r.status != 400 || code != "invalid" || f != field {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
	// Two days on, the 48-hour link is as dead as a tampered one.
	s.moveClock(`{"advance": "48h"}`)
	if late := (&server{t: t}).get(url); late.status != 404 || string(late.body) != string(bad.body) {
		t.Errorf("an expired link: %d, and its page differs from a tampered one's", late.status)
	}
	if r := s.do("POST", "/v1/members/nobody/card-link", ``); r.status != 404 {
		t.Errorf("a link for nobody: %d %s", r.status, r.body)
	}
	if r := s.as(marketerKey).do("POST", "/v1/members/"+m+"/card-link", ``); r.status != 403 {
		t.Errorf("a marketer's link: %d %s", r.status, r.body)
	}
}

// get fetches an absolute URL without a key.
func (s *server) get(url string) response {
	s.t.Helper()
	res, err := nethttp.Get(url)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.answer(res)
}

// TestWhoAmI: a key learns its own role and the program's money and time
// zone, and nothing about other keys.
func TestWhoAmI(t *testing.T) {
	s := newRewardServer(t, storeKind, rewardRules, lhttp.GuessLimit{})
	for key, role := range map[string]string{posKey: "pos", adminKey: "admin", marketerKey: "marketer"} {
		r := s.as(key).do("GET", "/v1/whoami", "")
		v := r.json(t)
		prog, _ := v["program"].(map[string]any)
		if r.status != 200 || v["role"] != role || v["open"] != false || prog["currency"] != "USD" || prog["timezone"] != "UTC" {
			t.Errorf("whoami as %s: %d %s", role, r.status, r.body)
		}
	}
	if r := s.as("").do("GET", "/v1/whoami", ""); r.status != 401 {
		t.Errorf("whoami without a key: %d", r.status)
	}
}

// TestPointsByDayRoute: the dashboard's series lists today's points moved, and
// is for marketers.
func TestPointsByDayRoute(t *testing.T) {
	s := newRewardServer(t, storeKind, rewardRules, lhttp.GuessLimit{})
	m := s.enrol(`{}`)
	s.fund(m, 40)
	r := s.as(marketerKey).do("GET", "/v1/analytics/points?days=7", "")
	days, _ := r.json(t)["days"].([]any)
	if r.status != 200 || len(days) != 7 || days[6].(map[string]any)["earned"] != 40.0 {
		t.Fatalf("points by day: %d %s", r.status, r.body)
	}
	if r := s.as(marketerKey).do("GET", "/v1/analytics/points?days=x", ""); r.status != 400 {
		t.Errorf("days=x: %d", r.status)
	}
	if r := s.do("GET", "/v1/analytics/points", ""); r.status != 403 {
		t.Errorf("a till's points by day: %d", r.status)
	}
}

// TestSearchMembersByName: GET /v1/members?name= lists the members whose
// name holds it, and takes no other key beside it.
func TestSearchMembersByName(t *testing.T) {
	s := newRewardServer(t, storeKind, rewardRules, lhttp.GuessLimit{})
	ana := s.enrol(`{"name": "Ana Lima"}`)
	s.enrol(`{"name": "Bob"}`)
	r := s.do("GET", "/v1/members?name=lim", "")
	ms, _ := r.json(t)["members"].([]any)
	if r.status != 200 || len(ms) != 1 || ms[0].(map[string]any)["id"] != ana {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/v1/members?name=lim&email=a@b.c", ""); r.status != 400 {
		t.Errorf("name and email: %d %s", r.status, r.body)
	}
}
