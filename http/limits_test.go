package http_test

import (
	"fmt"
	"strings"
	"testing"
)

// wantInvalid checks a 400 invalid that names field.
func wantInvalid(t *testing.T, r response, field string) {
	t.Helper()
	code, got := r.errorCode(t)
	if r.status != 400 || code != "invalid" || got != field {
		t.Fatalf("want 400 invalid naming %s, got %d %s", field, r.status, r.body)
	}
}

func lines(n int, amount string) string {
	ls := make([]string, n)
	for i := range ls {
		ls[i] = fmt.Sprintf(`{"sku": "X%d", "quantity": 1, "amount": %q}`, i, amount)
	}
	return "[" + strings.Join(ls, ",") + "]"
}

// The line-sum check wrapped: 93 lines of 999999999999999.99 added up to
// less than 1.00, and the purchase was accepted.
func TestPurchaseLinesCannotWrapTheirSum(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{}`)
	r := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "p1", "member_id": %q, "currency": "USD", "amount": "1.00", "items": %s}`,
		id, lines(93, "999999999999999.99")))
	wantInvalid(t, r, "items[0].amount")
	if !strings.Contains(string(r.body), "100000000000.00") {
		t.Errorf("the refusal does not say the largest amount: %s", r.body)
	}
}

func TestAmountsAboveTheLimitAreRefused(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{}`)
	wantInvalid(t, s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "p1", "member_id": %q, "currency": "USD", "amount": "100000000000.01"}`, id)), "amount")
	wantInvalid(t, s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "p1", "member_id": %q, "currency": "USD", "amount": "5.00",
		"items": [{"sku": "A", "quantity": 1000001, "amount": "1.00"}]}`, id)), "items[0].quantity")
	ok := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "p1", "member_id": %q, "currency": "USD", "amount": "100000000000.00"}`, id))
	if ok.status != 201 {
		t.Fatalf("the largest amount: %d %s", ok.status, ok.body)
	}
	wantInvalid(t, s.do("POST", "/v1/purchases/p1/refunds", `{"id": "r1", "amount": "100000000000.01"}`), "amount")
	wantInvalid(t, s.do("POST", "/v1/members/"+id+"/redemptions", `{"id": "d1", "points": 10000000000001}`), "points")
	wantInvalid(t, s.do("POST", "/v1/members/"+id+"/adjustments", `{"id": "a1", "points": 9223372036854775807, "reason": "wrap"}`), "points")
	wantInvalid(t, s.do("POST", "/v1/members/"+id+"/adjustments", `{"id": "a2", "points": -9223372036854775808, "reason": "wrap"}`), "points")
}

// After enough large purchases the tier value (the spend in the window)
// passed the int64 range and went negative.
func TestLargePurchasesCannotWrapTheTierValue(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{}`)
	for i := range 93 {
		r := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "big-%d", "member_id": %q, "currency": "USD", "amount": "999999999999999.99"}`, i, id))
		if r.status == 201 {
			continue
		}
		wantInvalid(t, r, "amount")
	}
	bal := s.do("GET", "/v1/members/"+id+"/balance", "").json(t)
	tier := bal["tier"].(map[string]any)
	if v := tier["value"].(string); strings.HasPrefix(v, "-") || bal["available"].(float64) < 0 {
		t.Fatalf("after 93 large purchases: tier value %s, balance %v", v, bal["available"])
	}
}

// Refunding part of a line multiplied its amount by the quantity before
// dividing, which wrapped: the refund came out negative (and so passed the
// check against what was left).
func TestPartialLineRefundOfALargeLine(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{}`)
	r := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "p1", "member_id": %q, "currency": "USD", "amount": "100000000000.00",
		"items": [{"sku": "BULK", "category": "beans", "quantity": 1000000, "amount": "100000000000.00"}]}`, id))
	if r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	ref := s.do("POST", "/v1/purchases/p1/refunds", `{"id": "r1", "items": [{"sku": "BULK", "quantity": 999999}]}`)
	if ref.status != 201 {
		t.Fatalf("refund: %d %s", ref.status, ref.body)
	}
	if got := ref.json(t)["amount"]; got != "99999900000.00" {
		t.Fatalf("999999 of 1000000 units of 100000000000.00 refunded %v, want 99999900000.00", got)
	}
	over := s.do("POST", "/v1/purchases/p1/refunds", `{"id": "r2", "amount": "100000.01"}`)
	if code, field := over.errorCode(t); over.status != 422 || code != "unprocessable" || field != "amount" {
		t.Fatalf("a refund over what is left: %d %s", over.status, over.body)
	}
	rest := s.do("POST", "/v1/purchases/p1/refunds", `{"id": "r3"}`)
	if rest.status != 201 || rest.json(t)["amount"] != "100000.00" {
		t.Fatalf("the rest: %d %s", rest.status, rest.body)
	}
	p := s.do("GET", "/v1/purchases/p1", "").json(t)
	if p["refunded_amount"] != "100000000000.00" {
		t.Fatalf("refunded %v of 100000000000.00", p["refunded_amount"])
	}
	if bal := s.do("GET", "/v1/members/"+id+"/balance", "").json(t); bal["available"].(float64) != 50 {
		t.Fatalf("after the full refund the balance is %v, want the enrolment bonus alone", bal["available"])
	}
}
