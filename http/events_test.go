package http_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/webhook"
)

// eventPayloads gives, for every type of the catalogue (docs/API.md), the
// fields its data has at least.
var eventPayloads = map[string][]string{
	engine.EventMemberEnrolled:         {"member"},
	engine.EventMemberUpdated:          {"member", "changed"},
	engine.EventMemberMerged:           {"member_id", "merged_id", "points_moved"},
	engine.EventMemberErased:           {"member_id"},
	engine.EventPurchaseCreated:        {"purchase_id", "member_id", "amount", "points", "breakdown", "balance", "tier"},
	engine.EventRefundCreated:          {"refund_id", "purchase_id", "member_id", "amount", "points", "balance"},
	engine.EventRedemptionCreated:      {"redemption_id", "member_id", "points", "balance"},
	engine.EventRedemptionCancelled:    {"redemption_id", "member_id", "points", "balance"},
	engine.EventPointsAdjusted:         {"adjustment_id", "member_id", "points", "reason", "balance"},
	engine.EventPointsTransferred:      {"transfer_id", "from_member_id", "to_member_id", "points"},
	engine.EventPointsImported:         {"member_id", "points"},
	engine.EventPointsExpired:          {"member_id", "points", "balance"},
	engine.EventPointsExpiring:         {"member_id", "points", "expires_on"},
	engine.EventBonusGranted:           {"member_id", "kind", "points"},
	engine.EventTierChanged:            {"member_id", "from", "to", "direction"},
	engine.EventCouponIssued:           {"code", "reward", "member_id"},
	engine.EventCouponUsed:             {"code", "reward", "member_id"},
	engine.EventCouponCancelled:        {"code", "reward", "member_id"},
	engine.EventCouponExpired:          {"code", "reward", "member_id"},
	engine.EventCouponExpiring:         {"code", "reward", "member_id", "expires_on"},
	engine.EventRulesPublished:         {"version", "by"},
	engine.EventMemberAnalyticsChanged: {"member_id", "changed"},
	engine.EventWebhookTest:            {"webhook_id"},
}

// eventTour makes every change the engine reports, through the API, on a
// server with a test clock and the example rules, and returns the member
// at the centre of it. sendTest, when set, sends the webhook.test event.
func eventTour(s *server, sendTest func()) string {
	t := s.t
	t.Helper()
	admin := s.as(adminKey)
	must := func(r response, status int, what string) map[string]any {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: %d %s", what, r.status, r.body)
		}
		return r.json(t)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	today := s.now().In(ny)
	if today.Month() == time.February && today.Day() == 29 {
		s.moveClock(`{"advance": "24h"}`)
		today = s.now().In(ny)
	}
	a := s.enrol(fmt.Sprintf(`{"name": "Ann", "birthday": "1990-%02d-%02d"}`, today.Month(), today.Day()))
	b := s.enrol(fmt.Sprintf(`{"referrer_id": %q}`, a))
	must(s.do("PATCH", "/v1/members/"+a, `{"name": "Anna"}`), 200, "update")
	s.buy("tour-b1", b, "10.00")
	big := s.buy("tour-a1", a, "600.00")
	coupons, _ := big["coupons"].([]any)
	if len(coupons) != 1 {
		t.Fatalf("the promotion to gold issued %v, want the welcome-gold coupon", big["coupons"])
	}
	welcome := coupons[0].(map[string]any)["code"].(string)
	must(s.do("POST", "/v1/purchases/tour-a1/refunds", `{"id": "tour-r1", "amount": "600.00"}`), 201, "refund")
	s.runJob(rules.JobEvaluateTiers)
	must(s.do("POST", "/v1/members/"+a+"/redemptions", `{"id": "tour-d1", "points": 20, "reward": "mug"}`), 201, "redeem")
	must(s.do("POST", "/v1/redemptions/tour-d1/cancel", ""), 200, "cancel redemption")
	must(admin.do("POST", "/v1/members/"+a+"/adjustments", `{"id": "tour-j1", "points": 500, "reason": "goodwill"}`), 201, "adjust")
	code := s.mustTake(a, "tour-t1", "free-coffee")
	must(s.do("POST", "/v1/coupons/"+code+"/use", `{"id": "tour-u1", "store_id": "s1"}`), 200, "use")
	must(admin.do("POST", "/v1/coupons/"+welcome+"/cancel", ""), 200, "cancel coupon")
	imported := must(s.as(adminKey).importBody("application/x-ndjson", `{"external_id": "tour-imp-1", "name": "Ian", "points": 300}`), 200, "import")
	if imported["created"] != 1.0 {
		t.Fatalf("import: %v", imported)
	}
	found := must(s.do("GET", "/v1/members?external_id=tour-imp-1", ""), 200, "find imported")
	c := found["members"].([]any)[0].(map[string]any)["id"].(string)
	must(admin.do("POST", "/v1/transfers", fmt.Sprintf(`{"id": "tour-x1", "from_member_id": %q, "to_member_id": %q, "points": 100, "reason": "gift"}`, c, b)), 201, "transfer")
	must(admin.do("POST", "/v1/members/"+b+"/merge", fmt.Sprintf(`{"from": %q}`, c)), 200, "merge")
	d := s.enrol(`{"name": "Dee"}`)
	must(admin.do("POST", "/v1/members/"+d+"/erase", ""), 200, "erase")
	s.runJob(rules.JobBirthdayBonus)
	s.runJob(rules.JobNotifyExpiring)
	s.runJob(rules.JobAnalytics)
	s.moveClock(`{"advance": "360h"}`)
	s.runJob(rules.JobExpireCoupons)
	s.moveClock(`{"advance": "8040h"}`) // 350 days in all
	s.runJob(rules.JobNotifyExpiring)
	s.moveClock(`{"advance": "720h"}`)
	s.runJob(rules.JobExpirePoints)
	if sendTest != nil {
		sendTest()
	}
	return a
}

// allEvents reads the whole feed through the API, page by page.
func (s *server) allEvents(query string) []map[string]any {
	s.t.Helper()
	var out []map[string]any
	cursor := ""
	for {
		r := s.as(adminKey).do("GET", "/v1/events?limit=50&cursor="+cursor+query, "")
		if r.status != 200 {
			s.t.Fatalf("events: %d %s", r.status, r.body)
		}
		page := r.json(s.t)
		evs := page["events"].([]any)
		for _, x := range evs {
			out = append(out, x.(map[string]any))
		}
		next, ok := page["next_cursor"].(string)
		if !ok {
			s.t.Fatalf("no next_cursor: %s", r.body)
		}
		if len(evs) == 0 {
			if next != cursor && cursor != "" {
				s.t.Fatalf("an empty page moved the cursor from %s to %s", cursor, next)
			}
			return out
		}
		cursor = next
	}
}

// checkPayloads fails on an event whose data lacks a field of its type.
func checkPayloads(t *testing.T, evs []map[string]any) map[string]int {
	t.Helper()
	seen := map[string]int{}
	ids := map[string]bool{}
	var last float64
	for _, ev := range evs {
		typ, _ := ev["type"].(string)
		seen[typ]++
		id, _ := ev["id"].(string)
		if !strings.HasPrefix(id, "evt_") || ids[id] {
			t.Errorf("event id %q: not evt_ or seen twice", id)
		}
		ids[id] = true
		if seq, _ := ev["seq"].(float64); seq <= last {
			t.Errorf("seq %v after %v", seq, last)
		} else {
			last = seq
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["timestamp"])); err != nil {
			t.Errorf("%s timestamp: %v", typ, err)
		}
		fields, known := eventPayloads[typ]
		if !known {
			t.Errorf("event of type %q, not in the catalogue", typ)
			continue
		}
		data, _ := ev["data"].(map[string]any)
		for _, f := range fields {
			if _, ok := data[f]; !ok {
				t.Errorf("%s data lacks %s: %v", typ, f, data)
			}
		}
	}
	return seen
}

func TestEventCatalogue(t *testing.T) {
	if len(eventPayloads) != len(engine.KnownEventTypes) {
		t.Fatalf("the test knows %d types, the engine %d", len(eventPayloads), len(engine.KnownEventTypes))
	}
	for _, typ := range engine.KnownEventTypes {
		if eventPayloads[typ] == nil {
			t.Errorf("no payload for %s", typ)
		}
	}
}

// Every change of the tour is in the feed, with the payload of its type,
// and every type of the catalogue but those of other commands is there.
func TestEveryChangeIsAnEvent(t *testing.T) {
	s := newRewardServer(t, storeKind, string(rules.Example), lhttp.GuessLimit{})
	var hook string
	a := eventTour(s, func() {
		hook = s.createWebhook("http://127.0.0.1:1/hook", `["*"]`)["id"].(string)
		if r := s.as(adminKey).do("POST", "/v1/webhooks/"+hook+"/test", ""); r.status != 202 {
			t.Fatalf("test: %d %s", r.status, r.body)
		}
	})
	evs := s.allEvents("")
	seen := checkPayloads(t, evs)
	for _, typ := range engine.KnownEventTypes {
		if seen[typ] == 0 {
			t.Errorf("no %s event in the tour", typ)
		}
	}

	byType := func(typ string) []map[string]any {
		var out []map[string]any
		for _, ev := range evs {
			if ev["type"] == typ {
				out = append(out, ev["data"].(map[string]any))
			}
		}
		return out
	}
	if u := byType(engine.EventMemberUpdated); len(u) != 1 || fmt.Sprint(u[0]["changed"]) != "[name]" || u[0]["member"].(map[string]any)["name"] != "Anna" {
		t.Errorf("member.updated: %v", u)
	}
	tiers := byType(engine.EventTierChanged)
	if len(tiers) != 2 || tiers[0]["to"] != "gold" || tiers[0]["direction"] != "up" || tiers[1]["from"] != "gold" || tiers[1]["direction"] != "down" {
		t.Errorf("tier.changed: %v", tiers)
	}
	kinds := map[string]int{}
	for _, b := range byType(engine.EventBonusGranted) {
		kinds[b["kind"].(string)]++
	}
	if kinds["enrolment"] != 3 || kinds["referral"] != 2 || kinds["birthday"] != 1 || kinds["tier"] != 1 {
		t.Errorf("bonus kinds: %v", kinds)
	}
	p := byType(engine.EventPurchaseCreated)
	if len(p) != 2 || p[1]["amount"] != "600.00" || p[1]["tier"] != "gold" || p[1]["member_id"] != a {
		t.Errorf("purchase.created: %v", p)
	}
	if r := byType(engine.EventRefundCreated); len(r) != 1 || r[0]["points"].(float64) >= 0 {
		t.Errorf("refund.created: %v", r)
	}
	if x := byType(engine.EventPointsExpired); len(x) == 0 || x[0]["points"].(float64) <= 0 {
		t.Errorf("points.expired: %v", x)
	}
	for _, c := range byType(engine.EventMemberAnalyticsChanged) {
		if len(c["changed"].(map[string]any)) == 0 {
			t.Errorf("analytics event with nothing changed: %v", c)
		}
	}
	if w := byType(engine.EventWebhookTest); len(w) != 1 || w[0]["webhook_id"] != hook {
		t.Errorf("webhook.test: %v", w)
	}

	// The type filter, exact and by prefix, pages through the same feed.
	points := s.allEvents("&type=points.*")
	for _, ev := range points {
		if !strings.HasPrefix(ev["type"].(string), "points.") {
			t.Errorf("points.* gave %v", ev["type"])
		}
	}
	// The imported member gives 100 of its 300 points to the referee, then
	// merges into it with the 200 left.
	i := byType(engine.EventPointsImported)
	x := byType(engine.EventPointsTransferred)
	m := byType(engine.EventMemberMerged)
	if len(i) != 1 || i[0]["points"] != 300.0 {
		t.Errorf("points.imported: %v", i)
	} else if len(x) != 1 || x[0]["transfer_id"] != "tour-x1" || x[0]["from_member_id"] != i[0]["member_id"] || x[0]["points"] != 100.0 {
		t.Errorf("points.transferred: %v", x)
	} else if len(m) != 1 || m[0]["member_id"] != x[0]["to_member_id"] || m[0]["merged_id"] != i[0]["member_id"] || m[0]["points_moved"] != 200.0 {
		t.Errorf("member.merged: %v", m)
	}
	if e := byType(engine.EventMemberErased); len(e) != 1 {
		t.Errorf("member.erased: %v", e)
	}
	if want := len(byType(engine.EventPointsAdjusted)) + len(byType(engine.EventPointsExpired)) + len(byType(engine.EventPointsExpiring)) + 2; len(points) != want {
		t.Errorf("points.*: %d events, want %d", len(points), want)
	}
	if got := s.allEvents("&type=tier.changed"); len(got) != 2 {
		t.Errorf("tier.changed: %d events", len(got))
	}
	for _, bad := range []string{"nope", "zzz.*"} {
		if code, field := s.as(adminKey).do("GET", "/v1/events?type="+bad, "").errorCode(t); code != "invalid" || field != "type" {
			t.Errorf("type=%s: %s %s", bad, code, field)
		}
	}
	if r := s.do("GET", "/v1/events", ""); r.status != 403 {
		t.Errorf("a till reads the feed: %d", r.status)
	}
	// A caught-up poll keeps its cursor.
	last := fmt.Sprint(evs[len(evs)-1]["seq"])
	if again := s.as(adminKey).do("GET", fmt.Sprintf("/v1/events?cursor=%v", last), "").json(t); again["next_cursor"] != last || len(again["events"].([]any)) != 0 {
		t.Errorf("caught up: %v", again)
	}
}

// createWebhook makes an endpoint through the API and returns the answer.
func (s *server) createWebhook(url, events string) map[string]any {
	s.t.Helper()
	r := s.as(adminKey).do("POST", "/v1/webhooks", fmt.Sprintf(`{"url": %q, "events": %s, "description": "test"}`, url, events))
	if r.status != 201 {
		s.t.Fatalf("create webhook: %d %s", r.status, r.body)
	}
	return r.json(s.t)
}

// A receiver written from the Standard Webhooks specification gets every
// event of the tour after its endpoint's creation, each signed, each type
// with its payload, across a rotation of the secret.
func TestTourReachesAReceiver(t *testing.T) {
	s := newRewardServer(t, storeKind, string(rules.Example), lhttp.GuessLimit{})
	var mu sync.Mutex
	var secrets []string
	got := map[string]map[string]any{} // by webhook-id: type and data
	bad := 0
	rc := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		ok := false
		for _, secret := range secrets {
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(id + "." + ts + "." + string(body)))
			for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
				b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1,"))
				ok = ok || err == nil && hmac.Equal(b, mac.Sum(nil))
			}
		}
		if !ok {
			bad++
			w.WriteHeader(nethttp.StatusUnauthorized)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err == nil {
			got[id] = ev
		}
	}))
	defer rc.Close()
	created := s.createWebhook(rc.URL, `["*"]`)
	hook := created["id"].(string)
	mu.Lock()
	secrets = []string{created["secret"].(string)}
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	worker := webhook.New(s.db, webhook.Options{Holder: "test", Poll: 10 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		defer close(done)
		worker.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	eventTour(s, func() {
		r := s.as(adminKey).do("POST", "/v1/webhooks/"+hook+"/rotate", "")
		mu.Lock()
		// During the overlap a receiver takes either: a delivery on its way
		// when the secret changed carries the old one's alone.
		secrets = append(secrets, r.json(t)["secret"].(string))
		mu.Unlock()
		s.as(adminKey).do("POST", "/v1/webhooks/"+hook+"/test", "")
	})
	evs := s.allEvents("")
	var want []map[string]any
	for _, ev := range evs {
		if ev["type"] != engine.EventRulesPublished { // before the endpoint
			want = append(want, ev)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	types := map[string]bool{}
	for _, ev := range want {
		b, ok := got[ev["id"].(string)]
		if !ok {
			t.Errorf("%s %s never arrived", ev["type"], ev["id"])
			continue
		}
		if b["type"] != ev["type"] || fmt.Sprint(b["data"]) != fmt.Sprint(ev["data"]) || b["timestamp"] != ev["timestamp"] {
			t.Errorf("delivered %v, the feed has %v", b, ev)
		}
		types[b["type"].(string)] = true
	}
	for _, typ := range engine.KnownEventTypes {
		if !types[typ] && typ != engine.EventRulesPublished {
			t.Errorf("no %s delivered", typ)
		}
	}
	if bad > 0 {
		t.Errorf("%d deliveries the receiver could not verify", bad)
	}
}
