package http_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	nethttp "net/http"
	"path/filepath"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// fuzzTarget is a server over the example rules, called in memory through
// fiber's app.Test, with a member and a purchase to refund.
type fuzzTarget struct {
	srv    *lhttp.Server
	member string
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	f.Helper()
	opts := store.DefaultOptions()
	// Durability is not under test here, and fsync would slow each input.
	opts.NoSync = true
	db, err := store.Open(filepath.Join(f.TempDir(), "loyalty.db"), opts)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	e := engine.New(db, engine.Options{Logger: discardLogger()})
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := e.LoadRules(prog, "file"); err != nil {
		f.Fatal(err)
	}
	ft := &fuzzTarget{srv: lhttp.NewServer(lhttp.Config{Engine: e, Logger: discardLogger()})}
	status, body := ft.call(f, "POST", "/v1/members", []byte(`{"external_id": "card-1"}`))
	if status != 201 {
		f.Fatalf("enrol: %d %s", status, body)
	}
	var m struct{ ID string }
	if err := json.Unmarshal(body, &m); err != nil {
		f.Fatal(err)
	}
	ft.member = m.ID
	if status, body := ft.call(f, "POST", "/v1/purchases", []byte(`{"id": "p1", "member_id": "`+m.ID+`", "currency": "USD", "amount": "900.00",
		"items": [{"sku": "LATTE-L", "category": "coffee", "quantity": 3, "amount": "15.00"}]}`)); status != 201 {
		f.Fatalf("purchase: %d %s", status, body)
	}
	return ft
}

// discardLogger keeps the access log of millions of inputs out of the
// fuzzer's output.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var errorStatus = map[string]int{
	"invalid": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404, "conflict": 409,
	"insufficient_points": 422, "unprocessable": 422,
}

func (ft *fuzzTarget) call(tb testing.TB, method, path string, body []byte) (int, []byte) {
	tb.Helper()
	req, err := nethttp.NewRequest(method, path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := ft.srv.App().Test(req, -1)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return res.StatusCode, b
}

// check posts body and holds the answer to the API's promises: never a
// 500, and every refusal has a known code, a message and the status of
// its code.
func (ft *fuzzTarget) check(t *testing.T, path string, body []byte) {
	status, b := ft.call(t, "POST", path, body)
	if status >= 500 {
		t.Fatalf("status %d for %q: %s", status, body, b)
	}
	var ans struct {
		Error *struct {
			Code, Message string
		}
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Fatalf("answer %d is not JSON: %q", status, b)
	}
	if status < 400 {
		if ans.Error != nil {
			t.Fatalf("status %d with an error: %s", status, b)
		}
		return
	}
	if ans.Error == nil || ans.Error.Message == "" || errorStatus[ans.Error.Code] != status {
		t.Fatalf("status %d with a bad error: %s", status, b)
	}
}

func FuzzPurchaseJSON(f *testing.F) {
	ft := newFuzzTarget(f)
	for _, s := range []string{
		`{"id": "p2", "member_id": "` + ft.member + `", "currency": "USD", "amount": "23.40"}`,
		`{"id": "p3", "member_external_id": "card-1", "store_id": "s", "terminal_id": "t", "occurred_at": "2026-11-23T14:05:00Z", "currency": "USD", "amount": "23.40",
		  "items": [{"sku": "LATTE-L", "category": "coffee", "quantity": 2, "amount": "9.80"}, {"sku": "B", "category": "beans", "quantity": 1, "amount": "13.60"}]}`,
		`{"id": "p4", "member_id": "nobody", "currency": "JPY", "amount": "1e3"}`,
		`{"id": "", "amount": -1, "items": null}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { ft.check(t, "/v1/purchases", body) })
}

func FuzzRefundJSON(f *testing.F) {
	ft := newFuzzTarget(f)
	for _, s := range []string{
		`{"id": "f1", "amount": "1.00"}`,
		`{"id": "f2", "items": [{"sku": "LATTE-L", "quantity": 1, "amount": "5.00"}]}`,
		`{"id": "f3", "currency": "USD"}`,
		`{"id": "f4", "amount": "1.00", "items": [{"sku": "LATTE-L", "quantity": 1}]}`,
		`{"id": "f5", "items": [{"sku": "LATTE-L", "quantity": 9223372036854775807}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { ft.check(t, "/v1/purchases/p1/refunds", body) })
}

func FuzzRedemptionJSON(f *testing.F) {
	ft := newFuzzTarget(f)
	for _, s := range []string{
		`{"id": "r1", "points": 5, "reward": "free-drink"}`,
		`{"id": "r2", "points": 9223372036854775807}`,
		`{"id": "r3", "points": 1.5}`,
		`{"id": "\u0000", "points": 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { ft.check(t, "/v1/members/"+ft.member+"/redemptions", body) })
}
