package http_test

import (
	"fmt"
	"testing"
)

func (s *server) available(member string) float64 {
	s.t.Helper()
	return s.do("GET", "/v1/members/"+member+"/balance", "").json(s.t)["available"].(float64)
}

func (s *server) buy(id, member, amount string) map[string]any {
	s.t.Helper()
	r := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": %q, "member_id": %q, "currency": "USD", "amount": %q}`, id, member, amount))
	if r.status != 201 {
		s.t.Fatalf("purchase %s: %d %s", id, r.status, r.body)
	}
	return r.json(s.t)
}

// Purchases of "0" paid the referral bonus: three of them earned the
// referrer 600 points.
func TestReferralNeedsAPurchaseWithAnAmount(t *testing.T) {
	s := newServer(t, false)
	referrer := s.enrol(`{}`)
	var referees []string
	for i := range 3 {
		ref := s.enrol(fmt.Sprintf(`{"referrer_id": %q}`, referrer))
		referees = append(referees, ref)
		if res := s.buy(fmt.Sprintf("zero-%d", i), ref, "0"); res["bonuses"] != nil {
			t.Fatalf("a purchase of 0 paid bonuses: %v", res["bonuses"])
		}
	}
	if got := s.available(referrer); got != 50 {
		t.Fatalf("after three purchases of 0 by referees the referrer has %v, want the 50 of enrolment", got)
	}
	// The first purchase that has an amount pays, once.
	res := s.buy("real-0", referees[0], "3.00")
	if b, _ := res["bonuses"].([]any); len(b) != 1 {
		t.Fatalf("the first real purchase paid %v, want the referral bonus", res["bonuses"])
	}
	s.buy("real-1", referees[0], "3.00")
	if got := s.available(referrer); got != 250 {
		t.Fatalf("referrer has %v, want 50 + 200", got)
	}
	if got := s.available(referees[0]); got != 50+100+3+3 {
		t.Fatalf("referee has %v, want 50 + 100 + 3 + 3", got)
	}
}

// A referee's first purchase refunded in full left both bonuses in place.
func TestReferralBonusTakenBackWithAFullRefund(t *testing.T) {
	s := newServer(t, false)
	referrer := s.enrol(`{}`)
	referee := s.enrol(fmt.Sprintf(`{"referrer_id": %q}`, referrer))
	s.buy("first", referee, "10.00")
	if s.available(referrer) != 250 || s.available(referee) != 160 {
		t.Fatalf("after the first purchase: referrer %v, referee %v", s.available(referrer), s.available(referee))
	}
	// The referrer spends part of the bonus before the refund.
	if r := s.do("POST", "/v1/members/"+referrer+"/redemptions", `{"id": "spend", "points": 220}`); r.status != 201 {
		t.Fatalf("redeem: %d %s", r.status, r.body)
	}

	// A partial refund leaves the bonuses.
	if r := s.do("POST", "/v1/purchases/first/refunds", `{"id": "part", "amount": "4.00"}`); r.status != 201 || r.json(t)["bonuses"] != nil {
		t.Fatalf("partial refund: %d %s", r.status, r.body)
	}
	if s.available(referrer) != 30 {
		t.Fatalf("a partial refund moved the referrer's points: %v", s.available(referrer))
	}
	r := s.do("POST", "/v1/purchases/first/refunds", `{"id": "rest"}`)
	if r.status != 201 {
		t.Fatalf("full refund: %d %s", r.status, r.body)
	}
	if b, _ := r.json(t)["bonuses"].([]any); len(b) != 1 || b[0].(map[string]any)["points"] != -100.0 {
		t.Fatalf("the full refund says it took back %v, want the referee's 100", r.json(t)["bonuses"])
	}
	if got := s.available(referee); got != 50 {
		t.Fatalf("referee has %v after the full refund, want the 50 of enrolment", got)
	}
	// 30 left of the bonus, 200 taken back: 170 owed.
	if got := s.available(referrer); got != -170 {
		t.Fatalf("referrer has %v after the full refund, want 30 - 200 = -170", got)
	}
	led := s.do("GET", "/v1/members/"+referrer+"/ledger", "").json(t)["entries"].([]any)
	if top := led[0].(map[string]any); top["type"] != "refund" || top["points"] != -200.0 || top["ref"] != "rest" {
		t.Fatalf("the referrer's newest ledger entry is %v, want the bonus taken back", top)
	}

	// Bought again for real, the referral pays again.
	s.buy("second", referee, "5.00")
	if got := s.available(referrer); got != 30 {
		t.Fatalf("referrer has %v after the referee's next purchase, want -170 + 200", got)
	}
	if got := s.available(referee); got != 50+100+5 {
		t.Fatalf("referee has %v, want 50 + 100 + 5", got)
	}
}
