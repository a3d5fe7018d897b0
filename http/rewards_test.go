package http_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
)

// rewardRules has a reward for each kind of limit, rewards that bonuses
// issue, and one with a small stock for the race.
const rewardRules = `currency: USD
timezone: UTC
points:
  expiry: {after: 12mo}
tiers:
  levels:
    - {name: green,    threshold: "0"}
    - {name: gold,     threshold: "100.00", reward: welcome-gold}
    - {name: platinum, threshold: "300.00", reward: welcome-platinum}
earn:
  - name: base
    points: purchase.amount
bonuses:
  birthday: {reward: cake}
rewards:
  - {name: coffee, title: Coffee, cost: 10, per_member: {max: 1, per: day}}
  - {name: weekly, title: Weekly treat, cost: 10, per_member: {max: 2, per: week}}
  - {name: once, title: Once ever, cost: 0, per_member: {max: 1}}
  - {name: gold-only, title: Gold only, cost: 5, when: 'member.tier == "gold"'}
  - {name: store-s1, title: Store s1 only, cost: 5, when: 'member.attributes["store"] == "s1"'}
  - {name: winter, title: Winter, cost: 5, valid: {from: "2030-12-01", to: "2030-12-31"}}
  - {name: mugs, title: Mug, cost: 20, stock: 2}
  - {name: big, title: Big, cost: 100000}
  - {name: refundable, title: Refundable, cost: 30, coupon: {expires_after: 1d}, refund_on_expiry: true}
  - {name: lapsing, title: Lapsing, cost: 30, coupon: {expires_after: 1d}}
  - {name: cake, title: Birthday cake, cost: 0, when: "false", coupon: {expires_after: 14d}}
  - {name: welcome-gold, title: Welcome to gold, cost: 0, when: "false"}
  - {name: welcome-platinum, title: Welcome to platinum, cost: 0, when: "false"}
  - {name: last, title: The last ones, cost: 1, stock: 5}
`

// newRewardServer starts a server with a test clock over a fresh store of
// kind, on src, with the keys of a till (posKey, the one it speaks with),
// an admin and a marketer; on cleanup it verifies the ledger and the
// coupons (storetesting checks the store itself).
func newRewardServer(t *testing.T, kind, src string, guesses lhttp.GuessLimit) *server {
	t.Helper()
	db := storetesting.Open(t, kind)
	tc := engine.NewTestClock(engine.SystemClock{})
	e := engine.New(db, engine.Options{Clock: tc, Logger: slog.New(slog.DiscardHandler)})
	prog, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadRules(t.Context(), prog, "file"); err != nil {
		t.Fatal(err)
	}
	keys, err := lhttp.NewKeys([]lhttp.Key{
		{Name: "till", Key: posKey, Role: lhttp.RolePOS},
		{Name: "boss", Key: adminKey, Role: lhttp.RoleAdmin},
		{Name: "mkt", Key: marketerKey, Role: lhttp.RoleMarketer},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := lhttp.NewServer(lhttp.Config{Engine: e, TestClock: tc, Keys: keys, CouponGuesses: guesses,
		Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Shutdown(5 * time.Second)
		storetesting.Verify(t, db)
	})
	return &server{t: t, url: "http://" + ln.Addr().String(), e: e, db: db, key: posKey}
}

// as is s speaking with another key.
func (s *server) as(key string) *server {
	c := *s
	c.key = key
	return &c
}

// fund gives a member points by an admin's adjustment.
func (s *server) fund(member string, points int) {
	s.t.Helper()
	r := s.as(adminKey).do("POST", "/v1/members/"+member+"/adjustments", fmt.Sprintf(`{"id": "fund-%s-%d-%d", "points": %d, "reason": "test"}`, member, points, time.Now().UnixNano(), points))
	if r.status != 201 {
		s.t.Fatalf("fund: %d %s", r.status, r.body)
	}
}

func (s *server) take(member, id, reward string) response {
	s.t.Helper()
	return s.do("POST", "/v1/members/"+member+"/rewards", fmt.Sprintf(`{"id": %q, "reward": %q}`, id, reward))
}

// mustTake takes a reward and returns the coupon's code.
func (s *server) mustTake(member, id, reward string) string {
	s.t.Helper()
	r := s.take(member, id, reward)
	if r.status != 201 {
		s.t.Fatalf("take %s: %d %s", reward, r.status, r.body)
	}
	return r.json(s.t)["coupon"].(map[string]any)["code"].(string)
}

func (s *server) moveClock(body string) {
	s.t.Helper()
	if r := s.as(adminKey).do("POST", "/v1/clock", body); r.status != 200 {
		s.t.Fatalf("clock %s: %d %s", body, r.status, r.body)
	}
}

func (s *server) runJob(name string) map[string]any {
	s.t.Helper()
	r := s.as(adminKey).do("POST", "/v1/jobs/"+name+"/run", "")
	if r.status != 200 {
		s.t.Fatalf("run %s: %d %s", name, r.status, r.body)
	}
	return r.json(s.t)
}

// refusal returns an error answer's code and details.reason.
func refusal(t *testing.T, r response) (status int, code, reason string) {
	t.Helper()
	code, _ = r.errorCode(t)
	e := r.json(t)["error"].(map[string]any)
	if d, ok := e["details"].(map[string]any); ok {
		reason, _ = d["reason"].(string)
	}
	return r.status, code, reason
}

// offers returns, per reward, the reason a member cannot take it ("" when
// they can), from GET /v1/rewards?member_id=.
func (s *server) offers(member string) map[string]string {
	s.t.Helper()
	r := s.do("GET", "/v1/rewards?member_id="+member, "")
	if r.status != 200 {
		s.t.Fatalf("rewards: %d %s", r.status, r.body)
	}
	out := map[string]string{}
	for _, x := range r.json(s.t)["rewards"].([]any) {
		o := x.(map[string]any)
		reason, isText := o["reason"].(string)
		switch avail := o["available"].(bool); {
		case avail && o["reason"] != nil, !avail && !isText:
			s.t.Fatalf("offer %v: available and reason disagree", o)
		}
		out[o["name"].(string)] = reason
	}
	return out
}

// TestRewardsEachLimit: for each kind of limit, a member who can take the
// reward and one who cannot, with the reason, in the catalogue and in the
// refusal; a refusal takes no points.
func TestRewardsEachLimit(t *testing.T) {
	s := newRewardServer(t, storetesting.Bolt, rewardRules, lhttp.GuessLimit{})
	rich := s.enrol(`{"attributes": {"store": "s1"}}`)
	poor := s.enrol(`{"attributes": {"store": "s2"}}`)
	gold := s.enrol(`{}`)
	s.fund(rich, 1000)
	s.fund(gold, 50)
	if r := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "g1", "member_id": %q, "currency": "USD", "amount": "150.00"}`, gold)); r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}

	// What each sees before taking anything.
	for who, want := range map[string]map[string]string{
		rich: {"coffee": "", "once": "", "gold-only": "not_eligible", "store-s1": "", "winter": "not_in_window", "mugs": "", "big": "insufficient_points", "cake": "not_eligible"},
		poor: {"coffee": "insufficient_points", "once": "", "gold-only": "not_eligible", "store-s1": "not_eligible", "winter": "not_in_window", "mugs": "insufficient_points"},
		gold: {"gold-only": "", "store-s1": "not_eligible"},
	} {
		got := s.offers(who)
		for reward, reason := range want {
			if got[reward] != reason {
				t.Errorf("member %s, reward %s: reason %q, want %q", who, reward, got[reward], reason)
			}
		}
	}

	refused := func(member, id, reward string, wantStatus int, wantCode, wantReason string) {
		t.Helper()
		before := s.available(member)
		status, code, reason := refusal(t, s.take(member, id, reward))
		if status != wantStatus || code != wantCode || reason != wantReason {
			t.Errorf("take %s: %d %s %q, want %d %s %q", reward, status, code, reason, wantStatus, wantCode, wantReason)
		}
		if after := s.available(member); after != before {
			t.Errorf("a refused take of %s moved the balance from %v to %v", reward, before, after)
		}
	}
	// Not enough points, then enough.
	refused(poor, "p-coffee", "coffee", 422, "insufficient_points", "insufficient_points")
	s.mustTake(rich, "r-coffee", "coffee")
	if got := s.available(rich); got != 990 {
		t.Errorf("after a coffee for 10: %v available, want 990", got)
	}
	// Per day: a second coffee today is refused, tomorrow it is not.
	refused(rich, "r-coffee-2", "coffee", 422, "unprocessable", "limit_reached")
	if got := s.offers(rich)["coffee"]; got != "limit_reached" {
		t.Errorf("catalogue after the day's coffee: %q", got)
	}
	// Per week: two, then no third.
	s.mustTake(rich, "r-weekly-1", "weekly")
	s.mustTake(rich, "r-weekly-2", "weekly")
	refused(rich, "r-weekly-3", "weekly", 422, "unprocessable", "limit_reached")
	// Ever, and free.
	s.mustTake(poor, "p-once", "once")
	refused(poor, "p-once-2", "once", 422, "unprocessable", "limit_reached")
	// Eligibility by tier and by attribute.
	refused(rich, "r-gold", "gold-only", 422, "unprocessable", "not_eligible")
	s.mustTake(gold, "g-gold", "gold-only")
	refused(poor, "p-s1", "store-s1", 422, "unprocessable", "not_eligible")
	s.mustTake(rich, "r-s1", "store-s1")
	// Bonus-only rewards cannot be taken.
	refused(rich, "r-cake", "cake", 422, "unprocessable", "not_eligible")
	// Outside the window.
	refused(rich, "r-winter", "winter", 422, "unprocessable", "not_in_window")
	// Stock: two mugs, the third member finds none.
	s.fund(poor, 100)
	s.mustTake(rich, "r-mug", "mugs")
	s.mustTake(gold, "g-mug", "mugs")
	refused(poor, "p-mug", "mugs", 422, "unprocessable", "out_of_stock")
	if got := s.offers(poor)["mugs"]; got != "out_of_stock" {
		t.Errorf("catalogue of an empty stock: %q", got)
	}
	// A blocked member may take nothing.
	if r := s.as(adminKey).do("PATCH", "/v1/members/"+poor, `{"status": "blocked"}`); r.status != 200 {
		t.Fatalf("block: %d %s", r.status, r.body)
	}
	refused(poor, "p-weekly", "weekly", 422, "unprocessable", "not_eligible")
	// An unknown reward, with a suggestion.
	if r := s.take(rich, "r-x", "cofee"); r.status != 404 || !strings.Contains(string(r.body), `did you mean \"coffee\"`) {
		t.Errorf("unknown reward: %d %s", r.status, r.body)
	}

	// Tomorrow: a coffee again; in December 2030, the winter reward.
	s.moveClock(`{"advance": "24h"}`)
	s.mustTake(rich, "r-coffee-3", "coffee")
	s.moveClock(`{"now": "2030-12-05T12:00:00Z"}`)
	s.fund(rich, 100) // the points of 2026 have expired by now
	s.runJob("expire-points")
	if got := s.offers(rich)["winter"]; got != "" {
		t.Errorf("winter in December 2030: %q", got)
	}
	s.mustTake(rich, "r-winter-2", "winter")

	// The catalogue without a member: no availability, stock left.
	r := s.do("GET", "/v1/rewards", "")
	if r.status != 200 {
		t.Fatalf("catalogue: %d %s", r.status, r.body)
	}
	for _, x := range r.json(t)["rewards"].([]any) {
		o := x.(map[string]any)
		if _, ok := o["available"]; ok {
			t.Errorf("catalogue entry with availability: %v", o)
		}
		if o["name"] == "mugs" && o["stock_left"] != 0.0 {
			t.Errorf("mugs stock_left = %v, want 0", o["stock_left"])
		}
		if o["name"] == "coffee" && o["stock_left"] != nil {
			t.Errorf("coffee, without a stock, has stock_left %v", o["stock_left"])
		}
	}
}

// TestRewardTakeIsIdempotent: the same take again answers the first
// coupon; the id with another body is a conflict; a reader may not take.
func TestRewardTakeIsIdempotent(t *testing.T) {
	s := newRewardServer(t, storetesting.Bolt, rewardRules, lhttp.GuessLimit{})
	m := s.enrol(`{}`)
	s.fund(m, 100)
	first := s.take(m, "take-1", "weekly")
	again := s.take(m, "take-1", "weekly")
	if first.status != 201 || again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		t.Fatalf("replay: %d %s / %d %s", first.status, first.body, again.status, again.body)
	}
	if got := s.available(m); got != 90 {
		t.Errorf("after a take and its replay: %v available, want 90", got)
	}
	if r := s.take(m, "take-1", "coffee"); r.status != 409 {
		t.Errorf("same id, other reward: %d %s", r.status, r.body)
	}
	if r := s.as(marketerKey).take(m, "take-2", "coffee"); r.status != 403 {
		t.Errorf("a marketer took a reward: %d %s", r.status, r.body)
	}
	if r := s.take(m, "a/b", "coffee"); r.status != 400 {
		t.Errorf("an id with a slash: %d %s", r.status, r.body)
	}
	coupons := s.do("GET", "/v1/members/"+m+"/coupons", "").json(t)["coupons"].([]any)
	if len(coupons) != 1 {
		t.Errorf("coupons after a take and its replay: %v", coupons)
	}
}

// TestCouponUse: the till finds a coupon however its code is typed, uses
// it once (a retry gets the same answer), and is refused a second use and
// an unknown code.
func TestCouponUse(t *testing.T) {
	s := newRewardServer(t, storetesting.Bolt, rewardRules, lhttp.GuessLimit{})
	m := s.enrol(`{}`)
	s.fund(m, 100)
	code := s.mustTake(m, "take-1", "weekly")
	if len(code) != 12 || code[4] != '-' || code[9] != '-' || strings.ContainsAny(code, "01OI") {
		t.Errorf("code %q is not grouped 4-4-2 from the alphabet without 0, 1, O and I", code)
	}
	for _, typed := range []string{code, strings.ToLower(code), strings.ReplaceAll(code, "-", ""), strings.ToLower(code[:4]) + code[5:]} {
		r := s.do("GET", "/v1/coupons/"+typed, "")
		if r.status != 200 || r.json(t)["code"] != code || r.json(t)["member_id"] != m || r.json(t)["status"] != "issued" {
			t.Errorf("GET %s: %d %s", typed, r.status, r.body)
		}
	}
	use := `{"id": "till2-use-1", "store_id": "s1", "purchase_id": "p-9"}`
	first := s.do("POST", "/v1/coupons/"+code+"/use", use)
	if first.status != 200 || first.json(t)["status"] != "used" || first.json(t)["used_at"] == nil || first.json(t)["store_id"] != "s1" {
		t.Fatalf("use: %d %s", first.status, first.body)
	}
	again := s.do("POST", "/v1/coupons/"+strings.ToLower(code)+"/use", use)
	if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		t.Errorf("the use again: %d %s", again.status, again.body)
	}
	if r := s.do("POST", "/v1/coupons/"+code+"/use", `{"id": "till2-use-1", "store_id": "s2"}`); r.status != 409 {
		t.Errorf("the use's id with another body: %d %s", r.status, r.body)
	}
	if status, code, reason := refusal(t, s.do("POST", "/v1/coupons/"+code+"/use", `{"id": "till3-use-1", "store_id": "s1"}`)); status != 422 || code != "unprocessable" || reason != "used" {
		t.Errorf("a second use: %d %s %q", status, code, reason)
	}
	if r := s.do("POST", "/v1/coupons/"+code+"/use", `{"id": "till3-use-2"}`); r.status != 400 {
		t.Errorf("a use without store_id: %d %s", r.status, r.body)
	}
	for _, unknown := range []string{"2222-2222-22", "not-a-code", "K7QM-4XRT-P0"} {
		if r := s.do("POST", "/v1/coupons/"+unknown+"/use", `{"id": "u", "store_id": "s1"}`); r.status != 404 {
			t.Errorf("use of %s: %d %s", unknown, r.status, r.body)
		}
	}
	if r := s.as(marketerKey).do("GET", "/v1/coupons/"+code, ""); r.status != 403 {
		t.Errorf("a marketer looked a coupon up: %d %s", r.status, r.body)
	}
	if s.available(m) != 90 {
		t.Errorf("a use moved points: %v available", s.available(m))
	}
}

// TestCouponExpiry: past its expiry a coupon is refused even before the
// job marks it; the job expires it, giving the points back only when the
// reward says so, to the lots they came from; notify-expiring warns first.
func TestCouponExpiry(t *testing.T) {
	s := newRewardServer(t, storetesting.Bolt, rewardRules, lhttp.GuessLimit{})
	m := s.enrol(`{}`)
	s.fund(m, 100)
	lapsing := s.mustTake(m, "take-lapsing", "lapsing")
	refundable := s.mustTake(m, "take-refundable", "refundable")
	if got := s.available(m); got != 40 {
		t.Fatalf("after two takes of 30: %v available", got)
	}
	expiringOf := func() []any {
		t.Helper()
		return s.do("GET", "/v1/members/"+m+"/balance", "").json(t)["expiring"].([]any)
	}
	expiring := fmt.Sprint(expiringOf())

	// Within the notice period (30 days by default): one coupon.expiring
	// event per coupon, once.
	s.runJob("notify-expiring")
	s.runJob("notify-expiring")
	events := s.as(adminKey).do("GET", "/v1/events?limit=500", "").json(t)["events"].([]any)
	notices := map[string]int{}
	for _, x := range events {
		ev := x.(map[string]any)
		if ev["type"] == "coupon.expiring" {
			d := ev["data"].(map[string]any)
			notices[d["code"].(string)]++
			if d["member_id"] != m || d["expires_on"] == nil || d["reward"] == nil {
				t.Errorf("coupon.expiring data: %v", d)
			}
		}
	}
	if notices[lapsing] != 1 || notices[refundable] != 1 {
		t.Errorf("coupon notices: %v", notices)
	}

	s.moveClock(`{"advance": "25h"}`)
	if status, _, reason := refusal(t, s.do("POST", "/v1/coupons/"+lapsing+"/use", `{"id": "u1", "store_id": "s1"}`)); status != 422 || reason != "expired" {
		t.Errorf("use past expiry, before the job: %d %q", status, reason)
	}
	if n := s.runJob("expire-coupons")["processed"]; n != 2.0 {
		t.Errorf("expire-coupons processed %v, want 2", n)
	}
	if n := s.runJob("expire-coupons")["processed"]; n != 0.0 {
		t.Errorf("expire-coupons again processed %v, want 0", n)
	}
	for code, want := range map[string]string{lapsing: "expired", refundable: "expired"} {
		if got := s.do("GET", "/v1/coupons/"+code, "").json(t)["status"]; got != want {
			t.Errorf("coupon %s: %v, want %s", code, got, want)
		}
	}
	if status, _, reason := refusal(t, s.do("POST", "/v1/coupons/"+lapsing+"/use", `{"id": "u2", "store_id": "s1"}`)); status != 422 || reason != "expired" {
		t.Errorf("use of an expired coupon: %d %q", status, reason)
	}
	// Only the refundable one's 30 came back, into the lot they left.
	if got := s.available(m); got != 70 {
		t.Errorf("after the expiry: %v available, want 70", got)
	}
	if got := fmt.Sprint(expiringOf()); got == expiring {
		t.Errorf("expiring points unchanged by the refund: %s", got)
	}
	if status, _, reason := refusal(t, s.as(adminKey).do("POST", "/v1/coupons/"+lapsing+"/cancel", "")); status != 422 || reason != "expired" {
		t.Errorf("cancel of an expired coupon: %d %q", status, reason)
	}
}

// TestCouponCancel: a till cancels an issued coupon, and the points and
// the stock come back; a used one only an admin may cancel.
func TestCouponCancel(t *testing.T) {
	s := newRewardServer(t, storetesting.Bolt, rewardRules, lhttp.GuessLimit{})
	a, b := s.enrol(`{}`), s.enrol(`{}`)
	s.fund(a, 100)
	s.fund(b, 100)
	stockLeft := func() any {
		t.Helper()
		for _, x := range s.do("GET", "/v1/rewards", "").json(t)["rewards"].([]any) {
			if o := x.(map[string]any); o["name"] == "mugs" {
				return o["stock_left"]
			}
		}
		t.Fatal("no mugs in the catalogue")
		return nil
	}
	first := s.mustTake(a, "a-mug", "mugs")
	second := s.mustTake(b, "b-mug", "mugs")
	if stockLeft() != 0.0 || s.available(a) != 80 {
		t.Fatalf("after two mugs: stock %v, %v available", stockLeft(), s.available(a))
	}
	// Before use, by the till.
	r := s.do("POST", "/v1/coupons/"+first+"/cancel", "")
	if r.status != 200 || r.json(t)["status"] != "cancelled" || r.json(t)["cancelled_at"] == nil {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if again := s.do("POST", "/v1/coupons/"+first+"/cancel", ""); again.status != 200 || string(again.body) != string(r.body) {
		t.Errorf("cancel again: %d %s", again.status, again.body)
	}
	if stockLeft() != 1.0 || s.available(a) != 100 {
		t.Errorf("after the cancel: stock %v, %v available; want 1 and 100", stockLeft(), s.available(a))
	}
	if status, _, reason := refusal(t, s.do("POST", "/v1/coupons/"+first+"/use", `{"id": "u1", "store_id": "s1"}`)); status != 422 || reason != "cancelled" {
		t.Errorf("use of a cancelled coupon: %d %q", status, reason)
	}
	// The cancelled one does not count against the per-member limit, nor
	// the stock: a takes a mug again.
	s.mustTake(a, "a-mug-2", "mugs")
	// After use: not by the till; by an admin, points and stock back.
	if r := s.do("POST", "/v1/coupons/"+second+"/use", `{"id": "u2", "store_id": "s1"}`); r.status != 200 {
		t.Fatalf("use: %d %s", r.status, r.body)
	}
	if status, _, reason := refusal(t, s.do("POST", "/v1/coupons/"+second+"/cancel", "")); status != 422 || reason != "used" {
		t.Errorf("a till's cancel of a used coupon: %d %q", status, reason)
	}
	if r := s.as(adminKey).do("POST", "/v1/coupons/"+second+"/cancel", ""); r.status != 200 || r.json(t)["status"] != "cancelled" {
		t.Errorf("an admin's cancel of a used coupon: %d %s", r.status, r.body)
	}
	if stockLeft() != 1.0 || s.available(b) != 100 {
		t.Errorf("after the admin's cancel: stock %v, %v available; want 1 and 100", stockLeft(), s.available(b))
	}
	// The report counts what happened.
	r = s.as(marketerKey).do("GET", "/v1/analytics/rewards", "")
	for _, x := range r.json(t)["rewards"].([]any) {
		o := x.(map[string]any)
		if o["reward"] != "mugs" {
			continue
		}
		if o["issued"] != 3.0 || o["used"] != 0.0 || o["cancelled"] != 2.0 || o["outstanding"] != 1.0 || o["points_spent"] != 20.0 {
			t.Errorf("mugs report: %v", o)
		}
	}
	s.runJob("analytics")
	summary := s.as(marketerKey).do("GET", "/v1/analytics/summary", "")
	if summary.status != 200 || !strings.Contains(string(summary.body), `{"reward":"mugs","title":"Mug","issued":3,"used":0,"expired":0,"cancelled":2,"outstanding":1,"points_spent":20,"stock_left":1}`) {
		t.Errorf("summary's rewards: %d %s", summary.status, summary.body)
	}
	csv := s.as(marketerKey).do("GET", "/v1/analytics/rewards?format=csv", "")
	if csv.status != 200 || !strings.HasPrefix(csv.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(string(csv.body), "reward,title,issued,used,expired,cancelled,outstanding,points_spent,stock_left\n") ||
		!strings.Contains(string(csv.body), "\nmugs,Mug,3,0,0,2,1,20,1\n") {
		t.Errorf("CSV report: %d %s", csv.status, csv.body)
	}
}

// TestRewardStockRace: 20 members racing for the last 5 coupons get exactly
// 5, on every store; one member racing against itself for a once-ever
// reward gets one.
func TestRewardStockRace(t *testing.T) {
	for _, kind := range storetesting.Kinds() {
		t.Run(kind, func(t *testing.T) {
			s := newRewardServer(t, kind, rewardRules, lhttp.GuessLimit{})
			const racers = 20
			members := make([]string, racers)
			for i := range members {
				members[i] = s.enrol(`{}`)
				s.fund(members[i], 10)
			}
			statuses := make([]int, racers)
			reasons := make([]string, racers)
			var wg sync.WaitGroup
			for i, m := range members {
				wg.Go(func() {
					r := s.take(m, "race-"+strconv.Itoa(i), "last")
					statuses[i] = r.status
					if r.status != 201 {
						_, _, reasons[i] = refusal(t, r)
					}
				})
			}
			wg.Wait()
			won := 0
			for i := range statuses {
				switch {
				case statuses[i] == 201:
					won++
				case statuses[i] != 422 || reasons[i] != "out_of_stock":
					t.Errorf("racer %d: %d %q", i, statuses[i], reasons[i])
				}
			}
			if won != 5 {
				t.Errorf("%d of %d racers got a coupon of a stock of 5", won, racers)
			}
			spent := 0.0
			for _, m := range members {
				spent += 10 - s.available(m)
			}
			if spent != 5 {
				t.Errorf("the racers spent %v points, want 5", spent)
			}
			// One member, ten tills at once, a reward once ever.
			m := members[0]
			wins := make(chan int, 10)
			for i := range 10 {
				wg.Go(func() { wins <- s.take(m, "once-"+strconv.Itoa(i), "once").status })
			}
			wg.Wait()
			close(wins)
			n := 0
			for st := range wins {
				if st == 201 {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d takes of a once-ever reward by one member succeeded", n)
			}
		})
	}
}

// TestRewardsFromBonuses: on a fake clock, the birthday bonus issues its
// reward once a year, and each promotion the reward of the level reached
// (of every level passed), with coupon.issued and bonus.granted events.
func TestRewardsFromBonuses(t *testing.T) {
	s := newRewardServer(t, storetesting.Bolt, rewardRules, lhttp.GuessLimit{})
	now := s.e.Now()
	tomorrow := now.AddDate(0, 0, 1)
	birthday := fmt.Sprintf("1990-%02d-%02d", tomorrow.Month(), tomorrow.Day())
	if tomorrow.Month() == time.February && tomorrow.Day() == 29 {
		birthday = "1992-02-29"
	}
	m := s.enrol(fmt.Sprintf(`{"birthday": %q}`, birthday))
	coupons := func(member string) []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, x := range s.do("GET", "/v1/members/"+member+"/coupons", "").json(t)["coupons"].([]any) {
			out = append(out, x.(map[string]any))
		}
		return out
	}
	s.runJob("birthday-bonus")
	if got := coupons(m); len(got) != 0 {
		t.Fatalf("coupons before the birthday: %v", got)
	}
	s.moveClock(`{"advance": "24h"}`)
	s.runJob("birthday-bonus")
	s.runJob("birthday-bonus")
	got := coupons(m)
	if len(got) != 1 || got[0]["reward"] != "cake" || got[0]["source"] != "birthday" || got[0]["points"] != 0.0 {
		t.Fatalf("coupons after the birthday: %v", got)
	}
	if s.available(m) != 0 {
		t.Errorf("a reward-only birthday bonus paid points: %v", s.available(m))
	}
	// A year on, the next birthday's cake.
	s.moveClock(`{"advance": "8760h"}`)
	s.runJob("birthday-bonus")
	if got := coupons(m); len(got) != 2 {
		t.Errorf("coupons after the next birthday: %v", got)
	}

	// Promotions: to gold, then platinum; a purchase at gold issues nothing.
	p := s.enrol(`{}`)
	buy := func(id, amount string) map[string]any {
		t.Helper()
		r := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": %q, "member_id": %q, "currency": "USD", "amount": %q}`, id, p, amount))
		if r.status != 201 {
			t.Fatalf("purchase: %d %s", r.status, r.body)
		}
		return r.json(t)
	}
	res := buy("p1", "150.00")
	issued, _ := res["coupons"].([]any)
	if len(issued) != 1 || issued[0].(map[string]any)["reward"] != "welcome-gold" || res["tier"].(map[string]any)["name"] != "gold" {
		t.Fatalf("purchase to gold: %v", res)
	}
	if res := buy("p2", "10.00"); res["coupons"] != nil {
		t.Errorf("a purchase at gold issued coupons: %v", res["coupons"])
	}
	if res := buy("p3", "200.00"); len(res["coupons"].([]any)) != 1 {
		t.Errorf("purchase to platinum: %v", res)
	}
	if got := coupons(p); len(got) != 2 || got[0]["reward"] != "welcome-platinum" || got[1]["reward"] != "welcome-gold" {
		t.Errorf("coupons after two promotions (newest first): %v", got)
	}
	// Straight from green to platinum: both levels' rewards.
	q := s.enrol(`{}`)
	if r := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "q1", "member_id": %q, "currency": "USD", "amount": "500.00"}`, q)); r.status != 201 || len(r.json(t)["coupons"].([]any)) != 2 {
		t.Errorf("purchase from green to platinum: %d %s", r.status, r.body)
	}
	// The coupon of a promotion is a coupon like any other.
	code := coupons(p)[0]["code"].(string)
	if r := s.do("POST", "/v1/coupons/"+code+"/use", `{"id": "u1", "store_id": "s1"}`); r.status != 200 {
		t.Errorf("use of a promotion's coupon: %d %s", r.status, r.body)
	}

	counts := map[string]int{}
	for _, x := range s.as(adminKey).do("GET", "/v1/events?limit=500", "").json(t)["events"].([]any) {
		ev := x.(map[string]any)
		d := ev["data"].(map[string]any)
		counts[fmt.Sprintf("%v %v %v", ev["type"], d["kind"], d["source"])]++
	}
	for key, want := range map[string]int{
		"coupon.issued <nil> birthday": 2, "bonus.granted birthday <nil>": 2,
		"coupon.issued <nil> tier": 4, "bonus.granted tier <nil>": 4, "coupon.used <nil> tier": 1,
	} {
		if counts[key] != want {
			t.Errorf("%d events %q, want %d (all: %v)", counts[key], key, want, counts)
		}
	}
}

// TestCouponGuessing: a caller that looks up codes that do not exist is
// answered 429, known codes included, once its allowance is spent; other
// callers are not.
func TestCouponGuessing(t *testing.T) {
	s := newRewardServer(t, storetesting.Bolt, rewardRules, lhttp.GuessLimit{Burst: 3, Every: time.Hour})
	m := s.enrol(`{}`)
	s.fund(m, 100)
	code := s.mustTake(m, "take-1", "weekly")
	for i := range 3 {
		if r := s.do("GET", fmt.Sprintf("/v1/coupons/2222-2222-%02d", 22+i*11), ""); r.status != 404 {
			t.Fatalf("guess %d: %d %s", i, r.status, r.body)
		}
	}
	for _, path := range []string{"/v1/coupons/3333-3333-33", "/v1/coupons/" + code} {
		r := s.do("GET", path, "")
		if status, code, _ := refusal(t, r); status != 429 || code != "rate_limited" || r.header.Get("Retry-After") == "" {
			t.Errorf("GET %s after the allowance: %d %s, Retry-After %q", path, status, code, r.header.Get("Retry-After"))
		}
	}
	if r := s.do("POST", "/v1/coupons/"+code+"/use", `{"id": "u1", "store_id": "s1"}`); r.status != 429 {
		t.Errorf("use after the allowance: %d %s", r.status, r.body)
	}
	// Another key has its own allowance; known codes cost nothing.
	admin := s.as(adminKey)
	for range 5 {
		if r := admin.do("GET", "/v1/coupons/"+code, ""); r.status != 200 {
			t.Fatalf("admin GET: %d %s", r.status, r.body)
		}
	}
}

// TestRulesDiffShowsRewards: the diff of two rules files lists rewards
// added, removed and changed, and the rewards bonuses issue.
func TestRulesDiffShowsRewards(t *testing.T) {
	s := newRewardServer(t, storetesting.Bolt, rewardRules, lhttp.GuessLimit{})
	next := strings.NewReplacer(
		"  - {name: coffee, title: Coffee, cost: 10,", "  - {name: coffee, title: Coffee, cost: 12,",
		"  - {name: big, title: Big, cost: 100000}\n", "  - {name: bigger, title: Bigger, cost: 200000}\n",
		"  birthday: {reward: cake}", "  birthday: {points: 5}",
	).Replace(rewardRules)
	body, _ := json.Marshal(map[string]string{"new": next})
	r := s.as(marketerKey).do("POST", "/v1/rules/diff", string(body))
	if r.status != 200 {
		t.Fatalf("diff: %d %s", r.status, r.body)
	}
	got := r.json(t)["rewards"].(map[string]any)
	want := `map[added:[bigger] changed:[map[changes:[map[after:12 before:10 field:cost]] reward:coffee]] issued:[map[after: before:cake field:bonuses.birthday.reward]] removed:[big]]`
	if fmt.Sprint(got) != want {
		t.Errorf("rewards diff:\n%v\nwant\n%s", got, want)
	}
}

// TestTourCoupon is the README tour's coupon, on the example rules: after
// the tour's purchase the member can afford the free coffee, takes it,
// and a till uses the coupon once.
func TestTourCoupon(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123", "email": "ana@example.com", "name": "Ana"}`)
	if r := s.do("POST", "/v1/purchases", purchase); r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	if got := s.offers(id)["free-coffee"]; got != "" || s.available(id) != 97 {
		t.Fatalf("before the take: free-coffee %q, %v available", got, s.available(id))
	}
	r := s.take(id, "till2-take-1", "free-coffee")
	if r.status != 201 || r.json(t)["balance"].(map[string]any)["available"] != 7.0 {
		t.Fatalf("take: %d %s", r.status, r.body)
	}
	code := r.json(t)["coupon"].(map[string]any)["code"].(string)
	if got := s.do("GET", "/v1/coupons/"+strings.ToLower(strings.ReplaceAll(code, "-", "")), ""); got.status != 200 {
		t.Fatalf("lookup: %d %s", got.status, got.body)
	}
	if used := s.do("POST", "/v1/coupons/"+code+"/use", `{"id": "till2-use-1", "store_id": "store7"}`); used.status != 200 || used.json(t)["status"] != "used" {
		t.Fatalf("use: %d %s", used.status, used.body)
	}
	if status, _, reason := refusal(t, s.do("POST", "/v1/coupons/"+code+"/use", `{"id": "till3-use-1", "store_id": "store7"}`)); status != 422 || reason != "used" {
		t.Errorf("second use: %d %q", status, reason)
	}
}
