package http_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// metricValues reads the samples of /metrics: "name{labels}" → value.
func metricValues(t *testing.T, s *opsServer) map[string]float64 {
	t.Helper()
	r := s.do("GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	out := map[string]float64{}
	sample := regexp.MustCompile(`^(loyalty_points_[a-z_]+(?:\{[^}]*\})?) (\S+)$`)
	for _, line := range strings.Split(string(r.body), "\n") {
		if m := sample.FindStringSubmatch(line); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			out[m[1]] = v
		}
	}
	return out
}

// TestPointsMetricsAddUpToTheLedger runs every way points move (enrolment,
// a purchase with a referral, a refund, a redemption and its cancellation,
// adjustments both ways, a birthday, expiry) and holds the points series
// to the ledger: each series is the sum of the entries of its kind, and
// together they make the members' balances. Before, the enrolment,
// referrer's and birthday bonuses and adjustments were not counted, and a
// cancelled redemption stayed in the redeemed total.
func TestPointsMetricsAddUpToTheLedger(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	if r := s.do("PUT", "/v1/rules", string(rules.Example)); r.status != 200 {
		t.Fatalf("rules: %d %s", r.status, r.body)
	}
	ny, _ := time.LoadLocation("America/New_York")
	today := s.e.Now().In(ny)
	a := s.enrol(`{"external_id": "a"}`)
	b := s.enrol(`{"external_id": "b", "referrer_id": "` + a + `"}`)
	c := s.enrol(`{"external_id": "c", "birthday": "` + today.AddDate(-30, 0, 0).Format("2006-01-02") + `"}`)
	steps := []struct{ method, path, body string }{
		{"POST", "/v1/purchases", `{"id": "p1", "member_id": "` + b + `", "currency": "USD", "amount": "23.40",
			"items": [{"sku": "LATTE-L", "category": "coffee", "quantity": 2, "amount": "9.80"}, {"sku": "BEANS", "category": "beans", "quantity": 1, "amount": "13.60"}]}`},
		{"POST", "/v1/purchases", `{"id": "p2", "member_id": "` + a + `", "currency": "USD", "amount": "80.00"}`},
		{"POST", "/v1/purchases/p1/refunds", `{"id": "f1", "amount": "23.40"}`},
		{"POST", "/v1/members/" + a + "/redemptions", `{"id": "r1", "points": 100, "reward": "mug"}`},
		{"POST", "/v1/redemptions/r1/cancel", ``},
		{"POST", "/v1/members/" + a + "/redemptions", `{"id": "r2", "points": 30, "reward": "cookie"}`},
		{"POST", "/v1/members/" + a + "/adjustments", `{"id": "j1", "points": 25, "reason": "goodwill"}`},
		{"POST", "/v1/members/" + a + "/adjustments", `{"id": "j2", "points": -10, "reason": "duplicate receipt"}`},
		{"POST", "/v1/jobs/birthday-bonus/run", ``},
	}
	for _, st := range steps {
		if r := s.do(st.method, st.path, st.body); r.status/100 != 2 {
			t.Fatalf("%s %s: %d %s", st.method, st.path, r.status, r.body)
		}
	}
	if err := s.clock.Advance(400 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/v1/jobs/expire-points/run", ""); r.status != 200 {
		t.Fatalf("expire: %d %s", r.status, r.body)
	}

	// The ledger, read back, classified by type and reference.
	want := map[string]float64{}
	var balances float64
	for _, id := range []string{a, b, c} {
		entries := s.do("GET", "/v1/members/"+id+"/ledger?limit=500", "").json(t)["entries"].([]any)
		balances += entries[0].(map[string]any)["balance_after"].(float64)
		for _, e := range entries {
			en := e.(map[string]any)
			typ, ref, points := en["type"].(string), en["ref"].(string), en["points"].(float64)
			var series string
			switch {
			case typ == "earn":
				series = `loyalty_points_earned_total{kind="purchase"}`
			case typ == "bonus":
				kind, _, _ := strings.Cut(ref, ":")
				series = `loyalty_points_earned_total{kind="` + kind + `"}`
			case typ == "adjust" && points > 0:
				series = `loyalty_points_earned_total{kind="adjustment"}`
			case typ == "adjust":
				series = `loyalty_points_deducted_total{kind="adjustment"}`
			case typ == "redeem":
				series = "loyalty_points_redeemed_total"
			case typ == "redeem_cancel":
				series = "loyalty_points_redemptions_cancelled_total"
			case typ == "refund":
				series = "loyalty_points_refunded_total"
			case typ == "expire":
				series = "loyalty_points_expired_total"
			default:
				t.Fatalf("entry of type %q", typ)
			}
			if points < 0 {
				points = -points
			}
			want[series] += points
		}
	}
	for _, kind := range []string{"enrol", "referral", "birthday", "purchase", "adjustment"} {
		if want[`loyalty_points_earned_total{kind="`+kind+`"}`] == 0 {
			t.Fatalf("the scenario wrote no %s credit: %v", kind, want)
		}
	}
	for _, series := range []string{"loyalty_points_redeemed_total", "loyalty_points_redemptions_cancelled_total", "loyalty_points_refunded_total", "loyalty_points_expired_total", `loyalty_points_deducted_total{kind="adjustment"}`} {
		if want[series] == 0 {
			t.Fatalf("the scenario wrote nothing for %s: %v", series, want)
		}
	}

	got := metricValues(t, s)
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %v, the ledger says %v", series, got[series], v)
		}
	}
	var net float64
	for series, v := range got {
		if _, counted := want[series]; !counted && v != 0 {
			t.Errorf("%s = %v, which the ledger has nothing for", series, v)
		}
		if strings.HasPrefix(series, "loyalty_points_earned_total") || series == "loyalty_points_redemptions_cancelled_total" {
			net += v
		} else {
			net -= v
		}
	}
	if net != balances {
		t.Errorf("the points series net %v, the members' balances add up to %v", net, balances)
	}
}
