package http_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	lhttp "github.com/loyaltyhq/loyalty/http"
)

// TestStrictJSON sends what encoding/json forgives (a key twice, a key in
// another case, invalid UTF-8, control characters) at every depth of every
// kind of body, and expects each to be refused as invalid with the field
// named, and nothing booked.
func TestStrictJSON(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	id := s.enrol(`{"external_id": "card-1"}`)
	if r := s.do("POST", "/v1/purchases", `{"id": "p0", "member_id": "`+id+`", "currency": "USD", "amount": "50.00"}`); r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/members/"+id+"/redemptions", `{"id": "r0", "points": 5}`); r.status != 201 {
		t.Fatalf("redemption: %d %s", r.status, r.body)
	}
	buy := func(fields string) string {
		return `{"id": "p1", "member_id": "` + id + `", "currency": "USD", ` + fields + `}`
	}
	nested := strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100)
	cases := []struct{ name, method, path, body, field string }{
		{"amount twice", "POST", "/v1/purchases", buy(`"amount": "1.00", "amount": "900.00"`), "amount"},
		{"amount in capitals", "POST", "/v1/purchases", buy(`"amount": "1.00", "AMOUNT": "900.00"`), "AMOUNT"},
		{"amount capitalised alone", "POST", "/v1/purchases", buy(`"Amount": "900.00"`), "Amount"},
		{"quantity twice in an item", "POST", "/v1/purchases", buy(`"amount": "9.00", "items": [{"sku": "a", "quantity": 1, "amount": "1.00"}, {"sku": "b", "quantity": 1, "quantity": 5, "amount": "1.00"}]`), "items[1].quantity"},
		{"sku in capitals", "POST", "/v1/purchases", buy(`"amount": "9.00", "items": [{"SKU": "a", "quantity": 1, "amount": "1.00"}]`), "items[0].SKU"},
		{"unknown item field", "POST", "/v1/purchases", buy(`"amount": "9.00", "items": [{"sku": "a", "qty": 1, "amount": "1.00"}]`), "items[0].qty"},
		{"invalid UTF-8 in the id", "POST", "/v1/purchases", `{"id": "p` + "\xff" + `1", "member_id": "` + id + `", "currency": "USD", "amount": "1.00"}`, "id"},
		{"half a surrogate pair in the id", "POST", "/v1/purchases", `{"id": "p\ud800", "member_id": "` + id + `", "currency": "USD", "amount": "1.00"}`, "id"},
		{"NUL in store_id", "POST", "/v1/purchases", buy(`"amount": "1.00", "store_id": "s\u0000"`), "store_id"},
		{"line break in store_id", "POST", "/v1/purchases", buy(`"amount": "1.00", "store_id": "s\n7"`), "store_id"},
		{"escape in a sku", "POST", "/v1/purchases", buy(`"amount": "9.00", "items": [{"sku": "a\u001b[31m", "quantity": 1, "amount": "1.00"}]`), "items[0].sku"},
		{"C1 control in a category", "POST", "/v1/purchases", buy(`"amount": "9.00", "items": [{"sku": "a", "category": "c` + "\u0085" + `", "quantity": 1, "amount": "1.00"}]`), "items[0].category"},
		{"invalid UTF-8 in a key", "POST", "/v1/purchases", buy(`"amount": "1.00", "x` + "\xc3" + `": 1`), "x\ufffd"},
		{"attribute twice", "POST", "/v1/members", `{"attributes": {"store": "a", "store": "b"}}`, "attributes.store"},
		{"NUL in an attribute", "POST", "/v1/members", `{"attributes": {"store": "a\u0000"}}`, "attributes.store"},
		{"name twice in a patch", "PATCH", "/v1/members/" + id, `{"name": "a", "name": "b"}`, "name"},
		{"status in capitals", "PATCH", "/v1/members/" + id, `{"STATUS": "blocked"}`, "STATUS"},
		{"refund amount twice", "POST", "/v1/purchases/p0/refunds", `{"id": "f1", "amount": "1.00", "amount": "50.00"}`, "amount"},
		{"points twice", "POST", "/v1/members/" + id + "/redemptions", `{"id": "r1", "points": 1, "points": 100000}`, "points"},
		{"points capitalised", "POST", "/v1/members/" + id + "/adjustments", `{"id": "a1", "Points": 100000, "reason": "x"}`, "Points"},
		{"nested purchase field twice", "POST", "/v1/rules/simulate", `{"purchase": {"currency": "USD", "amount": "1.00", "amount": "2.00"}}`, "purchase.amount"},
		{"nested member field in capitals", "POST", "/v1/rules/simulate", `{"member": {"Tier": "gold"}, "purchase": {"currency": "USD", "amount": "1.00"}}`, "member.Tier"},
		{"NUL in simulated rules", "POST", "/v1/rules/simulate", `{"rules": "currency: USD\u0000", "purchase": {"currency": "USD", "amount": "1.00"}}`, "rules"},
		{"diff new twice", "POST", "/v1/rules/diff", `{"new": "a", "new": "b"}`, "new"},
		{"clock advance twice", "POST", "/v1/clock", `{"advance": "1h", "advance": "100000h"}`, "advance"},
	}
	for _, tc := range cases {
		r := s.do(tc.method, tc.path, tc.body)
		if code, field := r.errorCode(t); r.status != 400 || code != "invalid" || field != tc.field {
			t.Errorf("%s: %d %s, want 400 invalid naming %q", tc.name, r.status, r.body, tc.field)
		}
	}
	if r := s.do("POST", "/v1/purchases", `{"items": `+nested+`}`); r.status != 400 {
		t.Errorf("100 levels of nesting: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/v1/purchases/p1", ""); r.status != 404 {
		t.Fatalf("a refused purchase was booked: %d %s", r.status, r.body)
	}
	led := s.do("GET", "/v1/members/"+id+"/ledger", "").json(t)["entries"].([]any)
	if len(led) != 2 {
		t.Fatalf("the refused requests wrote to the ledger: %v", led)
	}
	text := `{"rules": "currency: USD\npoints:\n\trounding: floor\n", "purchase": {"currency": "USD", "amount": "1.00"}}`
	if r := s.do("POST", "/v1/rules/simulate", text); r.status == 400 {
		if _, field := r.errorCode(t); field == "rules" {
			t.Fatalf("line breaks and tabs in rules text are refused: %s", r.body)
		}
	}
}

// TestUnknownMethodIsJSON sends a method HTTP does not define; fiber
// answers those in plain text before any middleware runs.
func TestUnknownMethodIsJSON(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	r := s.do("BREW", "/v1/members", "")
	if code, _ := r.errorCode(t); r.status != 400 || code != "invalid" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("BREW: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if !strings.Contains(s.do("GET", "/metrics", "").String(), `loyalty_http_requests_total{method="unknown",route="",status="400"} 1`) {
		t.Fatal("the refused method is not counted")
	}
}

func (r response) String() string { return string(r.body) }

// TestIdleConnectionIsClosedSilently opens a connection and sends nothing:
// the server must close it at the read timeout without writing an answer to
// a request nobody made. A connection that sent half a request still hears
// why it is dropped.
func TestIdleConnectionIsClosedSilently(t *testing.T) {
	s := newOpsServer(t, nil, nil, func(c *lhttp.Config) { c.ReadTimeout = 200 * time.Millisecond })
	addr := strings.TrimPrefix(s.url, "http://")

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(idle)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the idle connection was not closed")
	}
	if len(got) > 0 {
		t.Fatalf("the idle connection was sent %q", got)
	}

	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	io.WriteString(half, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	half.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := nethttp.ReadResponse(bufio.NewReader(half), nil)
	if err != nil {
		t.Fatalf("half a request got no answer: %v", err)
	}
	if r := s.answer(res); r.status != 400 {
		t.Fatalf("half a request: %d %s", r.status, r.body)
	}
}
