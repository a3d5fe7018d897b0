package http_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
)

// storeKind is the store the package's tests run on: TestMain runs them
// once per kind storetesting offers (bbolt, and PostgreSQL when
// LOYALTY_TEST_POSTGRES names a server).
var storeKind = storetesting.Bolt

func TestMain(m *testing.M) { os.Exit(storetesting.RunEach(m, &storeKind)) }

// server is a real listener on :0 over a fresh store of storeKind.
type server struct {
	t   *testing.T
	url string
	e   *engine.Engine
	db  engine.Store
	key string // sent as a bearer key when set
}

func newServer(t *testing.T, testClock bool) *server {
	t.Helper()
	return newServerWithKeys(t, testClock, nil)
}

func newServerWithKeys(t *testing.T, testClock bool, keys *lhttp.Keys) *server {
	t.Helper()
	db := storetesting.Open(t, storeKind)
	var clock engine.Clock = engine.SystemClock{}
	var tc *engine.TestClock
	if testClock {
		tc = engine.NewTestClock(clock)
		clock = tc
	}
	e := engine.New(db, engine.Options{Clock: clock})
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadRules(t.Context(), prog, "file"); err != nil {
		t.Fatal(err)
	}
	srv := lhttp.NewServer(lhttp.Config{Engine: e, TestClock: tc, Keys: keys})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	// Runs before Open's cleanup, which checks and closes the store.
	t.Cleanup(func() {
		srv.Shutdown(5 * time.Second)
		storetesting.Verify(t, db)
	})
	return &server{t: t, url: "http://" + ln.Addr().String(), e: e, db: db}
}

type response struct {
	status int
	header nethttp.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %s", r.body)
	}
	return m
}

func (r response) errorCode(t *testing.T) (code, field string) {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an error answer: %s", r.body)
	}
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("error without message: %s", r.body)
	}
	return code, field
}

func (s *server) do(method, path, body string) response {
	s.t.Helper()
	if len(body) > lhttp.BodyLimit {
		return s.doOversized(method, path, body)
	}
	req, err := nethttp.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.answer(res)
}

// doOversized sends a body the server refuses before reading it all. The
// server answers and closes while the body is still being written, which a
// net/http client reports as a broken pipe instead of the answer, so the
// request goes over a raw connection and the answer is read regardless.
func (s *server) doOversized(method, path, body string) response {
	s.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, len(body))
		if s.key != "" {
			fmt.Fprintf(conn, "Authorization: Bearer %s\r\n", s.key)
		}
		io.WriteString(conn, "\r\n"+body)
	}()
	res, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.answer(res)
}

// answer reads a whole answer, however the request went out.
func (s *server) answer(res *nethttp.Response) response {
	s.t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (s *server) enrol(body string) string {
	s.t.Helper()
	r := s.do("POST", "/v1/members", body)
	if r.status != 201 {
		s.t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	return r.json(s.t)["id"].(string)
}

const purchase = `{"id": "store7-till2-000981", "member_external_id": "card-000123",
  "store_id": "store7", "terminal_id": "till2", "currency": "USD", "amount": "23.40",
  "items": [{"sku": "LATTE-L", "category": "coffee", "quantity": 2, "amount": "9.80"},
            {"sku": "BEANS-1KG", "category": "beans", "quantity": 1, "amount": "13.60"}]}`

func TestTour(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123", "email": "ana@example.com", "name": "Ana", "attributes": {"store": "downtown"}}`)

	r := s.do("POST", "/v1/purchases", purchase)
	if r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	first := r.json(t)
	if first["member_id"] != id || first["points"].(float64) < 47 || first["rules_version"].(float64) != 1 {
		t.Fatalf("answer = %s", r.body)
	}
	if bd := first["breakdown"].([]any); len(bd) < 2 || bd[0].(map[string]any)["rule"] != "base" {
		t.Fatalf("breakdown = %v", bd)
	}

	again := s.do("POST", "/v1/purchases", strings.ReplaceAll(purchase, "\n", " "))
	if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, r.body) {
		t.Fatalf("retry: %d %q\n%s\nvs\n%s", again.status, again.header.Get("Idempotent-Replayed"), again.body, r.body)
	}
	conflict := s.do("POST", "/v1/purchases", strings.Replace(purchase, `"23.40"`, `"23.41"`, 1))
	if code, _ := conflict.errorCode(t); conflict.status != 409 || code != "conflict" {
		t.Fatalf("other body: %d %s", conflict.status, conflict.body)
	}

	found := s.do("GET", "/v1/members?external_id=card-000123", "")
	if ms := found.json(t)["members"].([]any); len(ms) != 1 || ms[0].(map[string]any)["id"] != id {
		t.Fatalf("lookup: %s", found.body)
	}
	bal := s.do("GET", "/v1/members/"+id+"/balance", "").json(t)
	if bal["available"].(float64) != 50+first["points"].(float64) || len(bal["expiring"].([]any)) != 1 {
		t.Fatalf("balance: %v", bal)
	}
	tier := bal["tier"].(map[string]any)
	if tier["name"] != "green" || tier["value"] != "23.40" || tier["next"].(map[string]any)["remaining"] != "476.60" {
		t.Fatalf("tier: %v", tier)
	}
	led := s.do("GET", "/v1/members/"+id+"/ledger?limit=1", "").json(t)
	if es := led["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["type"] != "earn" || led["next_cursor"] == nil {
		t.Fatalf("ledger: %v", led)
	}
	p := s.do("GET", "/v1/purchases/store7-till2-000981", "").json(t)
	if p["amount"] != "23.40" || p["points"] != first["points"] {
		t.Fatalf("purchase: %v", p)
	}

	name := "Ana B"
	patched := s.do("PATCH", "/v1/members/"+id, fmt.Sprintf(`{"name": %q, "status": "blocked"}`, name))
	if patched.status != 200 || patched.json(t)["name"] != name || patched.json(t)["status"] != "blocked" {
		t.Fatalf("patch: %d %s", patched.status, patched.body)
	}
	blocked := s.do("POST", "/v1/purchases", strings.Replace(purchase, "000981", "000982", 1))
	if code, _ := blocked.errorCode(t); blocked.status != 422 || code != "unprocessable" {
		t.Fatalf("blocked member: %d %s", blocked.status, blocked.body)
	}

	jobs := s.do("GET", "/v1/jobs", "")
	if jobs.status != 200 || !strings.Contains(string(jobs.body), `"expire-points"`) {
		t.Fatalf("jobs: %s", jobs.body)
	}
	run := s.do("POST", "/v1/jobs/expire-points/run", "")
	if run.status != 200 || run.json(t)["name"] != "expire-points" {
		t.Fatalf("run: %d %s", run.status, run.body)
	}
	if h := s.do("GET", "/healthz", ""); h.status != 200 {
		t.Fatalf("healthz: %d", h.status)
	}
	rulesAns := s.do("GET", "/v1/rules", "").json(t)
	if rulesAns["version"].(float64) != 1 || !strings.Contains(rulesAns["source"].(string), "Coffee Club") {
		t.Fatalf("rules: %v", rulesAns)
	}
	if vs := s.do("GET", "/v1/rules/versions", "").json(t)["versions"].([]any); len(vs) != 1 {
		t.Fatalf("versions: %v", vs)
	}
}

func TestErrorTable(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123", "email": "ana@example.com"}`)
	big := `{"id": "x", "member_id": "` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"malformed JSON", "POST", "/v1/purchases", `{"id": "p1",`, 400, "invalid", ""},
		{"not JSON", "POST", "/v1/purchases", `hello`, 400, "invalid", ""},
		{"empty body", "POST", "/v1/purchases", ``, 400, "invalid", ""},
		{"trailing data", "POST", "/v1/purchases", `{"id": "p1"} {}`, 400, "invalid", ""},
		{"amount as number", "POST", "/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "amount": 23.40}`, 400, "invalid", "amount"},
		{"quantity as string", "POST", "/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "amount": "1", "items": [{"sku": "a", "quantity": "2", "amount": "1"}]}`, 400, "invalid", "items.quantity"},
		{"unknown field", "POST", "/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "ammount": "1"}`, 400, "invalid", "ammount"},
		{"negative amount", "POST", "/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "amount": "-1"}`, 400, "invalid", "amount"},
		{"over-precise", "POST", "/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "amount": "1.001"}`, 400, "invalid", "amount"},
		{"non-numeric", "POST", "/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "amount": "1,00"}`, 400, "invalid", "amount"},
		{"wrong currency", "POST", "/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "EUR", "amount": "1.00"}`, 422, "unprocessable", "currency"},
		{"id over 128", "POST", "/v1/purchases", `{"id": "` + strings.Repeat("i", 129) + `", "member_id": "` + id + `", "currency": "USD", "amount": "1.00"}`, 400, "invalid", "id"},
		{"unknown member", "POST", "/v1/purchases", `{"id": "p1", "member_id": "nobody", "currency": "USD", "amount": "1.00"}`, 404, "not_found", ""},
		{"body over 1 MiB", "POST", "/v1/purchases", big, 400, "invalid", ""},
		{"duplicate email", "POST", "/v1/members", `{"email": "ANA@example.com"}`, 409, "conflict", "email"},
		{"bad birthday", "POST", "/v1/members", `{"birthday": "12/04/1990"}`, 400, "invalid", "birthday"},
		{"unknown member GET", "GET", "/v1/members/nobody", "", 404, "not_found", ""},
		{"unknown balance", "GET", "/v1/members/nobody/balance", "", 404, "not_found", ""},
		{"unknown purchase", "GET", "/v1/purchases/nope", "", 404, "not_found", ""},
		{"unknown route", "GET", "/v1/nothing", "", 404, "not_found", ""},
		{"bad limit", "GET", "/v1/members/" + id + "/ledger?limit=9999", "", 400, "invalid", "limit"},
		{"bad status", "PATCH", "/v1/members/" + id, `{"status": "gone"}`, 400, "invalid", "status"},
		{"lookup without key", "GET", "/v1/members", "", 400, "invalid", ""},
		{"unknown job", "POST", "/v1/jobs/nap/run", "", 404, "not_found", ""},
		{"clock without flag", "POST", "/v1/clock", `{"advance": "1h"}`, 403, "forbidden", ""},
		{"unknown rules version", "GET", "/v1/rules/versions/9", "", 404, "not_found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(tc.method, tc.path, tc.body)
			code, field := r.errorCode(t)
			if r.status != tc.status || code != tc.code || field != tc.field {
				t.Fatalf("got %d %s field %q, want %d %s field %q: %s", r.status, code, field, tc.status, tc.code, tc.field, r.body)
			}
		})
	}
	led := s.do("GET", "/v1/members/"+id+"/ledger", "").json(t)
	if n := len(led["entries"].([]any)); n != 1 {
		t.Fatalf("bad requests wrote %d ledger entries, want only the enrolment bonus", n-1)
	}
}

func TestTestClock(t *testing.T) {
	s := newServer(t, true)
	before := s.do("GET", "/v1/clock", "").json(t)["now"].(string)
	r := s.do("POST", "/v1/clock", `{"advance": "8784h"}`)
	if r.status != 200 {
		t.Fatalf("advance: %d %s", r.status, r.body)
	}
	t0, _ := time.Parse(time.RFC3339Nano, before)
	t1, _ := time.Parse(time.RFC3339Nano, r.json(t)["now"].(string))
	if d := t1.Sub(t0); d < 8784*time.Hour || d > 8785*time.Hour {
		t.Fatalf("clock moved %v", d)
	}
	back := s.do("POST", "/v1/clock", `{"now": "2020-01-01T00:00:00Z"}`)
	if code, _ := back.errorCode(t); back.status != 400 || code != "invalid" {
		t.Fatalf("moving back: %d %s", back.status, back.body)
	}
}

func TestKeysAndRoles(t *testing.T) {
	keys, err := lhttp.NewKeys([]lhttp.Key{
		{Name: "ops", Key: "admin-key-0123456789", Role: "admin"},
		{Name: "till", Key: "pos-key-0123456789ab", Role: "pos"},
		{Name: "web", Key: "reader-key-012345678", Role: "reader"},
		{Name: "mkt", Key: "marketer-key-0123456", Role: "marketer"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := newServerWithKeys(t, false, keys)
	s.key = "pos-key-0123456789ab"
	id := s.enrol(`{"external_id": "card-000123"}`)
	cases := []struct {
		name, key, method, path, body string
		status                        int
	}{
		{"no key", "", "GET", "/v1/members/" + id, "", 401},
		{"unknown key", "nope-nope-nope-nope", "GET", "/v1/members/" + id, "", 401},
		{"reader reads", "reader-key-012345678", "GET", "/v1/members/" + id + "/balance", "", 200},
		{"reader may not buy", "reader-key-012345678", "POST", "/v1/purchases", purchase, 403},
		{"marketer may not buy", "marketer-key-0123456", "POST", "/v1/purchases", purchase, 403},
		{"pos buys", "pos-key-0123456789ab", "POST", "/v1/purchases", purchase, 201},
		{"pos may not adjust", "pos-key-0123456789ab", "POST", "/v1/members/" + id + "/adjustments", `{"id": "a1", "points": 5, "reason": "x"}`, 403},
		{"pos may not block", "pos-key-0123456789ab", "PATCH", "/v1/members/" + id, `{"status": "blocked"}`, 403},
		{"pos may not run jobs", "pos-key-0123456789ab", "POST", "/v1/jobs/expire-points/run", "", 403},
		{"admin adjusts", "admin-key-0123456789", "POST", "/v1/members/" + id + "/adjustments", `{"id": "a1", "points": 5, "reason": "welcome back"}`, 201},
		{"healthz needs no key", "", "GET", "/healthz", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.key = tc.key
			r := s.do(tc.method, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status >= 400 {
				code, _ := r.errorCode(t)
				want := map[int]string{401: "unauthorized", 403: "forbidden"}[tc.status]
				if code != want {
					t.Fatalf("code %s, want %s", code, want)
				}
			}
		})
	}
	s.key = "admin-key-0123456789"
	led := s.do("GET", "/v1/members/"+id+"/ledger", "").json(t)["entries"].([]any)
	if adj := led[0].(map[string]any); adj["type"] != "adjust" || adj["note"] != "welcome back" {
		t.Fatalf("ledger: %v", led)
	}
}

func TestPointsMoveBothWays(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123"}`)
	if r := s.do("POST", "/v1/purchases", purchase); r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	refund := s.do("POST", "/v1/purchases/store7-till2-000981/refunds", `{"id": "refund-77", "items": [{"sku": "LATTE-L", "quantity": 1, "amount": "4.90"}]}`)
	if refund.status != 201 || refund.json(t)["points"].(float64) >= 0 || refund.json(t)["amount"] != "4.90" {
		t.Fatalf("refund: %d %s", refund.status, refund.body)
	}
	if again := s.do("POST", "/v1/purchases/store7-till2-000981/refunds", `{"id": "refund-77", "items": [{"sku": "LATTE-L", "quantity": 1, "amount": "4.90"}]}`); again.status != 200 {
		t.Fatalf("refund retry: %d", again.status)
	}
	red := s.do("POST", "/v1/members/"+id+"/redemptions", `{"id": "redeem-5", "points": 20, "reward": "free-drink"}`)
	if red.status != 201 || red.json(t)["points"].(float64) != -20 {
		t.Fatalf("redeem: %d %s", red.status, red.body)
	}
	for _, bad := range []string{`{"id": "r0", "points": 0}`, `{"id": "r0", "points": -3}`, `{"id": "r0", "points": "ten"}`} {
		if r := s.do("POST", "/v1/members/"+id+"/redemptions", bad); r.status != 400 {
			t.Fatalf("%s: %d %s", bad, r.status, r.body)
		}
	}
	tooMuch := s.do("POST", "/v1/members/"+id+"/redemptions", `{"id": "redeem-6", "points": 100000}`)
	if code, _ := tooMuch.errorCode(t); tooMuch.status != 422 || code != "insufficient_points" {
		t.Fatalf("too much: %d %s", tooMuch.status, tooMuch.body)
	}
	cancel := s.do("POST", "/v1/redemptions/redeem-5/cancel", "")
	if cancel.status != 200 || cancel.json(t)["cancelled"] != true {
		t.Fatalf("cancel: %d %s", cancel.status, cancel.body)
	}
	noReason := s.do("POST", "/v1/members/"+id+"/adjustments", `{"id": "adj-1", "points": -30}`)
	if code, field := noReason.errorCode(t); noReason.status != 400 || code != "invalid" || field != "reason" {
		t.Fatalf("adjustment without reason: %d %s", noReason.status, noReason.body)
	}
	p := s.do("GET", "/v1/purchases/store7-till2-000981", "").json(t)
	if refunds := p["refunds"].([]any); len(refunds) != 1 || p["refunded_amount"] != "4.90" {
		t.Fatalf("purchase after refund: %v", p)
	}
}
