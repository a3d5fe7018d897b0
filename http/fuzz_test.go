package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	nethttp "net/http"
	"testing"
	"unicode/utf8"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
)

// fuzzTarget is a server over the example rules, called in memory through
// fiber's app.Test, with a member and a purchase to refund.
type fuzzTarget struct {
	srv    *lhttp.Server
	member string
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	f.Helper()
	// Durability is not under test here: a bbolt store skips fsync.
	db := storetesting.Open(f, storeKind)
	e := engine.New(db, engine.Options{Logger: discardLogger()})
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := e.LoadRules(context.Background(), prog, "file"); err != nil {
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
	// The server runs without keys, so it answers only requests addressed
	// to a loopback name.
	req, err := nethttp.NewRequest(method, "http://localhost"+path, bytes.NewReader(body))
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
		`{"id": "p5", "member_id": "` + ft.member + `", "currency": "USD", "amount": "1.00", "amount": "900.00"}`,
		`{"id": "p6", "member_id": "` + ft.member + `", "currency": "USD", "AMOUNT": "900.00"}`,
		`{"id": "p7", "member_id": "` + ft.member + `", "currency": "USD", "amount": "9.00", "items": [{"sku": "a", "quantity": 1, "Quantity": 9, "amount": "1.00"}]}`,
		"{\"id\": \"p8\xff\", \"member_id\": \"" + ft.member + "\", \"currency\": \"USD\", \"amount\": \"1.00\"}",
		`{"id": "p9\ud800", "store_id": "s\u0000", "currency": "USD", "amount": "1.00"}`,
		`{"id": "p10\ud83d\ude00", "member_id": "` + ft.member + `", "currency": "USD", "amount": "1.00"}`,
		`{"items": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
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
		`{"id": "f6", "amount": "1.00", "amount": "900.00"}`,
		`{"id": "f7", "items": [{"SKU": "LATTE-L", "quantity": 1, "amount": "5.00"}]}`,
		`{"id": "f8\udc00", "amount": "1.00"}`,
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
		`{"id": "r4", "points": 1, "points": 100000}`,
		`{"id": "r5", "Points": 100000}`,
		"{\"id\": \"r6\", \"points\": 1, \"reward\": \"\xc3\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { ft.check(t, "/v1/members/"+ft.member+"/redemptions", body) })
}

// FuzzDecodeJSON holds the strict decoder to what it promises: whatever it
// accepts is well-formed UTF-8 JSON whose objects each name a key once, by
// another reading of the body than its own.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"id": "p1", "currency": "USD", "amount": "1.00", "items": [{"sku": "a", "quantity": 1, "amount": "1.00"}]}`,
		`{"id": "p1", "amount": "1.00", "amount": "900.00"}`,
		`{"id": "p1", "AMOUNT": "900.00"}`,
		`{"id": "p\u00e9\ud83d\ude00", "store_id": "s\u0000"}`,
		"{\"id\": \"p\xff\"}",
		`{"items": [{"sku": "a", "sku": "b"}]}`,
		`{"id": "a\"b\\", "items": [], "occurred_at": null}`,
		`{"i\u0064": "p1", "id": "p2"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req engine.PurchaseRequest
		if lhttp.DecodeJSON(body, &req) != nil {
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("accepted %q", body)
		}
		if key, twice := repeatedKey(body); twice {
			t.Fatalf("accepted %q with %q twice", body, key)
		}
	})
}

// repeatedKey reads body token by token and reports a key that appears
// twice in one object.
func repeatedKey(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var objects []map[string]bool // the keys of each open object; nil for an array
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				objects = append(objects, map[string]bool{})
				expectKey = true
				continue
			case '[':
				objects = append(objects, nil)
			default:
				objects = objects[:len(objects)-1]
			}
		case string:
			if expectKey {
				keys := objects[len(objects)-1]
				if keys[tok] {
					return tok, true
				}
				keys[tok] = true
				expectKey = false
				continue
			}
		}
		expectKey = len(objects) > 0 && objects[len(objects)-1] != nil
	}
}
