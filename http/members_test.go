package http_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"

	lhttp "github.com/loyaltyhq/loyalty/http"
)

// balanceOf is a member's available points, as GET /balance answers.
func (s *server) balanceOf(id string) float64 {
	s.t.Helper()
	r := s.do("GET", "/v1/members/"+id+"/balance", "")
	if r.status != 200 {
		s.t.Fatalf("balance of %s: %d %s", id, r.status, r.body)
	}
	return r.json(s.t)["available"].(float64)
}

func (s *server) adjust(id, reqID string, points int) {
	s.t.Helper()
	if r := s.do("POST", "/v1/members/"+id+"/adjustments", fmt.Sprintf(`{"id": %q, "points": %d, "reason": "test"}`, reqID, points)); r.status != 201 {
		s.t.Fatalf("adjust %s: %d %s", id, r.status, r.body)
	}
}

// ledgerTypes lists the types of a member's ledger entries, newest first.
func (s *server) ledgerTypes(id string) []string {
	s.t.Helper()
	r := s.do("GET", "/v1/members/"+id+"/ledger", "")
	var out []string
	for _, e := range r.json(s.t)["entries"].([]any) {
		out = append(out, e.(map[string]any)["type"].(string))
	}
	return out
}

func (s *server) found(key, value string) []any {
	s.t.Helper()
	r := s.do("GET", "/v1/members?"+key+"="+value, "")
	if r.status != 200 {
		s.t.Fatalf("find by %s: %d %s", key, r.status, r.body)
	}
	return r.json(s.t)["members"].([]any)
}

// TestEnrolmentRetry: a till that retries an enrolment whose answer it
// lost gets the member with Idempotent-Replayed; a different body for the
// card is a conflict naming the field and the member.
func TestEnrolmentRetry(t *testing.T) {
	s := newServer(t, false)
	body := `{"external_id": "card-7", "email": "Ana@Example.com", "name": "Ana", "attributes": {"store": "s1"}}`
	id := s.enrol(body)
	again := s.do("POST", "/v1/members", body)
	if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || again.json(t)["id"] != id {
		t.Fatalf("retry = %d %s (replayed %q), want 200 with member %s", again.status, again.body, again.header.Get("Idempotent-Replayed"), id)
	}
	// One bonus, not two.
	if b := s.balanceOf(id); b != 50 {
		t.Errorf("balance after a retried enrolment = %v, want the one bonus of 50", b)
	}
	other := s.do("POST", "/v1/members", `{"external_id": "card-7", "name": "Bob"}`)
	if code, field := other.errorCode(t); other.status != 409 || code != "conflict" || field != "external_id" {
		t.Fatalf("different body = %d %s", other.status, other.body)
	}
	if d := other.json(t)["error"].(map[string]any)["details"].(map[string]any); d["member_id"] != id {
		t.Errorf("conflict details = %v, want member_id %s", d, id)
	}
	email := s.do("POST", "/v1/members", `{"external_id": "card-8", "email": "ana@example.com"}`)
	if code, field := email.errorCode(t); email.status != 409 || code != "conflict" || field != "email" {
		t.Fatalf("email clash = %d %s", email.status, email.body)
	}
}

// TestCardReplacement: PATCH external_id moves the member to a new card;
// the old one finds nobody and can be given to someone else.
func TestCardReplacement(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "old-card"}`)
	r := s.do("PATCH", "/v1/members/"+id, `{"external_id": "new-card"}`)
	if r.status != 200 || r.json(t)["external_id"] != "new-card" {
		t.Fatalf("patch = %d %s", r.status, r.body)
	}
	if got := s.found("external_id", "old-card"); len(got) != 0 {
		t.Errorf("the old card still finds %v", got)
	}
	if got := s.found("external_id", "new-card"); len(got) != 1 {
		t.Errorf("the new card finds %v", got)
	}
	s.enrol(`{"external_id": "old-card"}`)
	taken := s.do("PATCH", "/v1/members/"+id, `{"external_id": "old-card"}`)
	if code, _ := taken.errorCode(t); taken.status != 409 || code != "conflict" {
		t.Errorf("patch to a held card = %d %s", taken.status, taken.body)
	}
}

// TestTransferSplitsLots: a transfer takes the soonest-expiring points
// first, splitting a lot, and each moved part keeps its expiry; a retry is
// answered the same, too much is insufficient_points.
func TestTransferSplitsLots(t *testing.T) {
	s := newServer(t, true)
	a := s.enrol(`{"external_id": "a"}`) // 50, the bonus, expiring first
	s.do("POST", "/v1/clock", `{"advance": "720h"}`)
	s.adjust(a, "adj-1", 100) // expiring a month later
	b := s.enrol(`{"external_id": "b"}`)
	body := fmt.Sprintf(`{"id": "app-tr-1", "from_member_id": %q, "to_member_id": %q, "points": 80, "reason": "gift"}`, a, b)
	r := s.do("POST", "/v1/transfers", body)
	if r.status != 201 {
		t.Fatalf("transfer = %d %s", r.status, r.body)
	}
	res := r.json(t)
	if res["from_balance"] != 70.0 || res["to_balance"] != 130.0 || res["points"] != 80.0 {
		t.Errorf("transfer answer = %v", res)
	}
	again := s.do("POST", "/v1/transfers", body)
	if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" || again.json(t)["to_balance"] != 130.0 {
		t.Errorf("retry = %d %s", again.status, again.body)
	}
	if got := s.ledgerTypes(a)[0]; got != "transfer_out" {
		t.Errorf("sender's newest entry = %s", got)
	}
	if got := s.ledgerTypes(b)[0]; got != "transfer_in" {
		t.Errorf("receiver's newest entry = %s", got)
	}
	// b got a's bonus, 50 expiring first, and 30 of the adjustment's lot.
	exp := s.do("GET", "/v1/members/"+b+"/balance", "").json(t)["expiring"].([]any)
	var parts []float64
	for _, e := range exp {
		parts = append(parts, e.(map[string]any)["points"].(float64))
	}
	// b's own bonus and the adjustment's 30 expire on the same day.
	if fmt.Sprint(parts) != "[50 80]" {
		t.Errorf("receiver's expiring points = %v (%s)", parts, exp)
	}
	too := s.do("POST", "/v1/transfers", fmt.Sprintf(`{"id": "app-tr-2", "from_member_id": %q, "to_member_id": %q, "points": 71}`, a, b))
	if code, _ := too.errorCode(t); too.status != 422 || code != "insufficient_points" {
		t.Errorf("too many = %d %s", too.status, too.body)
	}
	self := s.do("POST", "/v1/transfers", fmt.Sprintf(`{"id": "app-tr-3", "from_member_id": %q, "to_member_id": %q, "points": 1}`, a, a))
	if self.status != 400 {
		t.Errorf("to oneself = %d %s", self.status, self.body)
	}
	s.do("PATCH", "/v1/members/"+b, `{"status": "blocked"}`)
	blocked := s.do("POST", "/v1/transfers", fmt.Sprintf(`{"id": "app-tr-4", "from_member_id": %q, "to_member_id": %q, "points": 1}`, a, b))
	if blocked.status != 422 {
		t.Errorf("to a blocked member = %d %s", blocked.status, blocked.body)
	}
	// Each side's export shows its own side of the transfer, and not the
	// other's balance.
	for _, side := range []struct {
		id, direction, other string
		points, balance      float64
	}{{a, "out", b, -80, 70}, {b, "in", a, 80, 130}} {
		x := s.do("GET", "/v1/members/"+side.id+"/export", "").json(t)["transfers"].([]any)
		if len(x) != 1 {
			t.Fatalf("export transfers of %s = %v", side.direction, x)
		}
		tr := x[0].(map[string]any)
		if tr["direction"] != side.direction || tr["other_member_id"] != side.other || tr["points"] != side.points || tr["balance"] != side.balance || len(tr) != 6 {
			t.Errorf("export of the %s side = %v", side.direction, tr)
		}
	}
	// The sender's 70 left expire with the adjustment, 12 months after it.
	s.do("POST", "/v1/clock", `{"advance": "9000h"}`)
	s.do("POST", "/v1/jobs/expire-points/run", "")
	if got := s.balanceOf(a); got != 0 {
		t.Errorf("sender after the adjustment's expiry = %v, want 0", got)
	}
}

// TestMergeKeepsExpiry: the merged member's lots arrive with their own
// expiry dates and expire on them; their card, email and phone find the
// survivor; a repeat answers the same; refusals are clear.
func TestMergeKeepsExpiry(t *testing.T) {
	s := newServer(t, true)
	surv := s.enrol(`{"external_id": "keep", "email": "keep@example.com"}`) // 50, expiring at month 12
	s.do("POST", "/v1/clock", `{"advance": "1440h"}`)
	other := s.enrol(`{"external_id": "dup", "email": "dup@example.com", "phone": "+15550100"}`) // 50 at month 14
	s.do("POST", "/v1/clock", `{"advance": "1440h"}`)
	s.adjust(other, "adj-o", 200) // 200 at month 16
	take := s.do("POST", "/v1/members/"+other+"/rewards", `{"id": "take-1", "reward": "free-coffee"}`)
	if take.status != 201 {
		t.Fatalf("take a reward: %d %s", take.status, take.body)
	}
	code := take.json(t)["coupon"].(map[string]any)["code"].(string)
	cost := 250 - s.balanceOf(other)

	r := s.do("POST", "/v1/members/"+surv+"/merge", fmt.Sprintf(`{"from": %q}`, other))
	if r.status != 200 {
		t.Fatalf("merge = %d %s", r.status, r.body)
	}
	if got := r.json(t)["balance"].(map[string]any)["available"].(float64); got != 300-cost {
		t.Errorf("survivor's balance = %v, want %v", got, 300-cost)
	}
	m := s.do("GET", "/v1/members/"+other, "").json(t)
	if m["status"] != "merged" || m["merged_into"] != surv {
		t.Errorf("merged member = %v", m)
	}
	for _, k := range [][2]string{{"external_id", "dup"}, {"email", "dup@example.com"}, {"phone", "%2B15550100"}} {
		if got := s.found(k[0], k[1]); len(got) != 1 || got[0].(map[string]any)["id"] != surv {
			t.Errorf("lookup by %s = %v, want the survivor", k[0], got)
		}
	}
	if got := s.ledgerTypes(other)[0]; got != "merge_out" {
		t.Errorf("merged's newest entry = %s", got)
	}
	if got := s.ledgerTypes(surv)[0]; got != "merge_in" {
		t.Errorf("survivor's newest entry = %s", got)
	}
	if c := s.do("GET", "/v1/coupons/"+code, ""); c.json(t)["member_id"] != surv {
		t.Errorf("coupon after the merge = %s", c.body)
	}
	again := s.do("POST", "/v1/members/"+surv+"/merge", fmt.Sprintf(`{"from": %q}`, other))
	if again.status != 200 || again.json(t)["id"] != surv {
		t.Errorf("repeat = %d %s", again.status, again.body)
	}
	if self := s.do("POST", "/v1/members/"+surv+"/merge", fmt.Sprintf(`{"from": %q}`, surv)); self.status != 400 {
		t.Errorf("into itself = %d %s", self.status, self.body)
	}
	third := s.enrol(`{"external_id": "third"}`)
	if into := s.do("POST", "/v1/members/"+other+"/merge", fmt.Sprintf(`{"from": %q}`, third)); into.status != 422 {
		t.Errorf("into a merged member = %d %s", into.status, into.body)
	}
	// A purchase on the merged card earns for the survivor.
	p := s.do("POST", "/v1/purchases", `{"id": "p-dup", "member_external_id": "dup", "store_id": "s", "currency": "USD", "amount": "10.00"}`)
	if p.status != 201 || p.json(t)["member_id"] != surv {
		t.Fatalf("purchase on the merged card = %d %s", p.status, p.body)
	}
	earned := p.json(t)["points"].(float64)
	before := s.balanceOf(surv)
	// Day 370: the survivor's own bonus has expired; day 430 the merged
	// bonus, which the coupon spent first; day 490 what the coupon left of
	// the adjustment, and the purchase's points, earned the same day.
	steps := []struct {
		advance string
		lost    float64
	}{{"6000h", 50}, {"1440h", 50 - min(50, cost)}, {"1440h", 200 - (cost - min(50, cost)) + earned}}
	for _, st := range steps {
		s.do("POST", "/v1/clock", fmt.Sprintf(`{"advance": %q}`, st.advance))
		s.do("POST", "/v1/jobs/expire-points/run", "")
		if got := s.balanceOf(surv); got != before-st.lost {
			t.Errorf("after %s: balance %v, want %v", st.advance, got, before-st.lost)
		}
		before -= st.lost
	}
}

// TestExportThenErase: the export holds the member's records; after
// erasure the personal data is gone from the member, its lookups and its
// events, the balance is forfeited, coupons cancelled, purchases refused.
func TestExportThenErase(t *testing.T) {
	s := newServer(t, false)
	id := s.enrol(`{"external_id": "card-000123", "email": "eve@example.com", "phone": "+15550199", "name": "Eve", "birthday": "1990-04-12", "attributes": {"store": "north"}}`)
	if r := s.do("POST", "/v1/purchases", purchase); r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/members/"+id+"/rewards", `{"id": "take-1", "reward": "free-coffee"}`); r.status != 201 {
		t.Fatalf("take: %d %s", r.status, r.body)
	}
	x := s.do("GET", "/v1/members/"+id+"/export", "")
	if x.status != 200 {
		t.Fatalf("export = %d %s", x.status, x.body)
	}
	doc := x.json(t)
	if doc["member"].(map[string]any)["name"] != "Eve" || len(doc["purchases"].([]any)) != 1 ||
		len(doc["coupons"].([]any)) != 1 || len(doc["ledger"].([]any)) < 3 || len(doc["events"].([]any)) < 1 {
		t.Errorf("export = %s", x.body)
	}
	r := s.do("POST", "/v1/members/"+id+"/erase", "")
	if r.status != 200 {
		t.Fatalf("erase = %d %s", r.status, r.body)
	}
	m := r.json(t)
	for _, k := range []string{"external_id", "email", "phone", "name", "birthday", "attributes"} {
		if _, ok := m[k]; ok {
			t.Errorf("erased member still has %s: %v", k, m[k])
		}
	}
	if m["status"] != "erased" || m["balance"].(map[string]any)["available"] != 0.0 {
		t.Errorf("erased member = %v", m)
	}
	if got := s.ledgerTypes(id)[0]; got != "erase" {
		t.Errorf("newest entry = %s, want erase", got)
	}
	for _, k := range [][2]string{{"external_id", "card-000123"}, {"email", "eve@example.com"}, {"phone", "%2B15550199"}} {
		if got := s.found(k[0], k[1]); len(got) != 0 {
			t.Errorf("lookup by old %s finds %v", k[0], got)
		}
	}
	cs := s.do("GET", "/v1/members/"+id+"/coupons", "").json(t)["coupons"].([]any)
	if len(cs) != 1 || cs[0].(map[string]any)["status"] != "cancelled" {
		t.Errorf("coupons after erasure = %v", cs)
	}
	p := s.do("POST", "/v1/purchases", fmt.Sprintf(`{"id": "p-after", "member_id": %q, "store_id": "s", "currency": "USD", "amount": "10.00"}`, id))
	if p.status != 422 {
		t.Errorf("purchase for an erased member = %d %s", p.status, p.body)
	}
	ev := s.do("GET", "/v1/events", "")
	for _, v := range []string{"Eve", "eve@example.com", "card-000123", "15550199", "north"} {
		if strings.Contains(string(ev.body), v) {
			t.Errorf("the events still carry %q: %s", v, ev.body)
		}
	}
	if !strings.Contains(string(ev.body), `"member.erased"`) {
		t.Errorf("no member.erased event: %s", ev.body)
	}
	again := s.do("POST", "/v1/members/"+id+"/erase", "")
	if again.status != 200 || again.json(t)["status"] != "erased" {
		t.Errorf("repeat = %d %s", again.status, again.body)
	}
	after := s.do("GET", "/v1/members/"+id+"/export", "")
	for _, v := range []string{"Eve", "eve@example.com", "card-000123", "north"} {
		if strings.Contains(string(after.body), v) {
			t.Errorf("the export after erasure still carries %q", v)
		}
	}
}

func (s *server) importBody(contentType, body string) response {
	s.t.Helper()
	req, err := nethttp.NewRequest("POST", s.url+"/v1/members/import", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.answer(res)
}

// TestImportCSV: good lines create members with their enrolment date,
// tier and opening balance and no bonus; bad lines are reported by line
// and field and written not at all; a re-run changes nothing.
func TestImportCSV(t *testing.T) {
	s := newServer(t, false)
	file := "external_id,email,name,enrolled_at,tier,points,points_expire_at,attributes.store\n" +
		"c-1,ana@example.com,Ana,2021-03-02T00:00:00Z,gold,1200,2030-06-30T00:00:00Z,north\n" +
		"c-2,not-an-email,Bob,,,,,\n" +
		"c-3,cy@example.com,Cy,,,\"1,200\",,\n" +
		"c-1,dup@example.com,Dup,,,,,\n" +
		"c-4,dee@example.com,Dee,,diamond,,,\n" +
		"c-5,eve@example.com,Eve,,,300,,south\n"
	r := s.importBody("text/csv", file)
	if r.status != 200 {
		t.Fatalf("import = %d %s", r.status, r.body)
	}
	rep := r.json(t)
	if rep["created"] != 2.0 || rep["unchanged"] != 0.0 || rep["failed"] != 4.0 {
		t.Errorf("report = %s", r.body)
	}
	want := map[float64]string{3: "email", 4: "points", 5: "external_id", 6: "tier"}
	for _, e := range rep["errors"].([]any) {
		e := e.(map[string]any)
		if want[e["line"].(float64)] != e["field"] {
			t.Errorf("error %v: want field %q for its line", e, want[e["line"].(float64)])
		}
		delete(want, e["line"].(float64))
	}
	if len(want) != 0 {
		t.Errorf("lines without their error: %v", want)
	}
	ms := s.found("external_id", "c-1")
	if len(ms) != 1 {
		t.Fatalf("c-1 not found")
	}
	m := ms[0].(map[string]any)
	id := m["id"].(string)
	if m["enrolled_at"] != "2021-03-02T00:00:00Z" || m["tier"].(map[string]any)["name"] != "gold" || m["attributes"].(map[string]any)["store"] != "north" {
		t.Errorf("imported member = %v", m)
	}
	bal := s.do("GET", "/v1/members/"+id+"/balance", "").json(t)
	exp := bal["expiring"].([]any)
	// 2030-06-30T00:00Z is still the 29th in the program's New York.
	if bal["available"] != 1200.0 || len(exp) != 1 || exp[0].(map[string]any)["on"] != "2030-06-29" {
		t.Errorf("imported balance = %v (no enrolment bonus, one lot)", bal)
	}
	if got := s.ledgerTypes(id); len(got) != 1 || got[0] != "import" {
		t.Errorf("imported ledger = %v", got)
	}
	for _, bad := range []string{"c-2", "c-3", "c-4"} {
		if got := s.found("external_id", bad); len(got) != 0 {
			t.Errorf("bad line %s was written: %v", bad, got)
		}
	}
	again := s.importBody("text/csv", file).json(t)
	if again["created"] != 0.0 || again["unchanged"] != 2.0 || again["failed"] != 4.0 {
		t.Errorf("re-run = %v", again)
	}
	differ := s.importBody("application/x-ndjson", `{"external_id": "c-5", "email": "eve@example.com", "name": "Eve", "points": 999, "attributes": {"store": "south"}}`+"\n").json(t)
	if differ["failed"] != 1.0 || differ["errors"].([]any)[0].(map[string]any)["field"] != "points" {
		t.Errorf("differing line = %v", differ)
	}
	later := s.importBody("application/x-ndjson", `{"external_id": "c-1", "email": "ana@example.com", "name": "Ana", "enrolled_at": "2021-03-02T00:00:00Z", "tier": "gold", "points": 1200, "points_expire_at": "2031-06-30T00:00:00Z", "attributes": {"store": "north"}}`+"\n").json(t)
	if later["failed"] != 1.0 || later["errors"].([]any)[0].(map[string]any)["field"] != "points_expire_at" {
		t.Errorf("a line with another expiry = %v", later)
	}
	if b := s.balanceOf(s.found("external_id", "c-5")[0].(map[string]any)["id"].(string)); b != 300 {
		t.Errorf("c-5's balance after a differing line = %v, want 300 as imported", b)
	}
}

// TestImportNDJSON: one object a line, with its own line numbers.
func TestImportNDJSON(t *testing.T) {
	s := newServer(t, false)
	body := `{"external_id": "n-1", "points": 10}` + "\n\n" + `{"external_id": "n-2", "bogus": 1}` + "\n" + `{"external_id": "n-3", "points": "12"}` + "\n"
	rep := s.importBody("application/x-ndjson", body).json(t)
	if rep["created"] != 1.0 || rep["failed"] != 2.0 {
		t.Fatalf("report = %v", rep)
	}
	errs := rep["errors"].([]any)
	if l := errs[0].(map[string]any)["line"]; l != 3.0 {
		t.Errorf("first error on line %v, want 3", l)
	}
	if r := s.importBody("application/json", body); r.status != 400 {
		t.Errorf("plain JSON = %d", r.status)
	}
}

// TestMergeThenRefundAndCancel: a refund of the merged member's purchase,
// and the cancellation of their redemption, move the survivor's points:
// the purchase's lot and the redemption's lots are the survivor's now.
func TestMergeThenRefundAndCancel(t *testing.T) {
	s := newServer(t, false)
	surv := s.enrol(`{"external_id": "keep"}`)
	other := s.enrol(`{"external_id": "card-000123"}`)
	p := s.do("POST", "/v1/purchases", purchase)
	if p.status != 201 {
		t.Fatalf("purchase: %d %s", p.status, p.body)
	}
	earned := p.json(t)["points"].(float64)
	if r := s.do("POST", "/v1/members/"+other+"/redemptions", `{"id": "red-1", "points": 30}`); r.status != 201 {
		t.Fatalf("redeem: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/members/"+surv+"/merge", fmt.Sprintf(`{"from": %q}`, other)); r.status != 200 {
		t.Fatalf("merge: %d %s", r.status, r.body)
	}
	before := s.balanceOf(surv)
	if want := 50 + 50 + earned - 30; before != want {
		t.Fatalf("survivor after the merge = %v, want %v", before, want)
	}
	if r := s.do("POST", "/v1/redemptions/red-1/cancel", ""); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if got := s.balanceOf(surv); got != before+30 {
		t.Errorf("survivor after the cancellation = %v, want %v", got, before+30)
	}
	r := s.do("POST", "/v1/purchases/store7-till2-000981/refunds", `{"id": "refund-1", "amount": "23.40"}`)
	if r.status != 201 {
		t.Fatalf("refund: %d %s", r.status, r.body)
	}
	if got, want := s.balanceOf(surv), before+30+r.json(t)["points"].(float64); got != want {
		t.Errorf("survivor after the refund = %v, want %v", got, want)
	}
	if got := s.balanceOf(other); got != 0 {
		t.Errorf("merged member's balance = %v, want 0", got)
	}
}

// TestImportStreamsLargeBodies: an import body larger than the 1 MiB
// every other route takes is read and imported; another route still
// refuses such a body when it comes without a length (chunked).
func TestImportStreamsLargeBodies(t *testing.T) {
	s := newServer(t, false)
	var b strings.Builder
	n := 0
	for b.Len() <= lhttp.BodyLimit {
		fmt.Fprintf(&b, `{"external_id": "big-%06d", "name": "Member number %06d of a file larger than the limit of the other routes"}`+"\n", n, n)
		n++
	}
	r := s.importBody("application/x-ndjson", b.String())
	if r.status != 200 || r.json(t)["created"] != float64(n) {
		t.Fatalf("import of %d bytes = %d %.300s", b.Len(), r.status, r.body)
	}
	// An io.Reader of unknown length makes net/http send it chunked.
	body := io.MultiReader(strings.NewReader(`{"name": "`), strings.NewReader(strings.Repeat("x", lhttp.BodyLimit)), strings.NewReader(`"}`))
	req, err := nethttp.NewRequest("POST", s.url+"/v1/members", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.answer(res); got.status != 400 || !strings.Contains(string(got.body), "larger than") {
		t.Errorf("chunked body over the limit = %d %s", got.status, got.body)
	}
	// A chunked body within it is read whole.
	small, err := nethttp.NewRequest("POST", s.url+"/v1/members", io.MultiReader(strings.NewReader(`{"external_id": `), strings.NewReader(`"chunked"}`)))
	if err != nil {
		t.Fatal(err)
	}
	small.Header.Set("Content-Type", "application/json")
	res, err = nethttp.DefaultClient.Do(small)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.answer(res); got.status != 201 || got.json(t)["external_id"] != "chunked" {
		t.Errorf("small chunked body = %d %s", got.status, got.body)
	}
}

// TestImportCSVMalformedRow: a row the CSV reader cannot parse is that
// line's error, not a failure of the import.
func TestImportCSVMalformedRow(t *testing.T) {
	s := newServer(t, false)
	for _, bad := range []string{`a"b,Bob`, `"bad,Bob`} {
		r := s.importBody("text/csv", "external_id,name\nok-1,Ann\n"+bad+"\n")
		if r.status != 200 {
			t.Fatalf("%s: import = %d %s", bad, r.status, r.body)
		}
		rep := r.json(t)
		errs, _ := rep["errors"].([]any)
		if rep["failed"] != 1.0 || len(errs) != 1 || errs[0].(map[string]any)["line"] != 3.0 {
			t.Errorf("%s: report = %s", bad, r.body)
		}
	}
}

// TestEraseMergedPerson: a merged member is the survivor's person, so
// erasing it alone is refused (its old purchases and redemptions are the
// survivor's now), and erasing the survivor clears both records and the
// events about both.
func TestEraseMergedPerson(t *testing.T) {
	s := newServer(t, false)
	surv := s.enrol(`{"external_id": "kim-1", "email": "kim@example.com", "name": "Kim"}`)
	dup := s.enrol(`{"external_id": "kim-2", "email": "kim.dup@example.com", "name": "Kim Dup", "phone": "+15550111"}`)
	if r := s.do("POST", "/v1/members/"+surv+"/merge", fmt.Sprintf(`{"from": %q}`, dup)); r.status != 200 {
		t.Fatalf("merge = %d %s", r.status, r.body)
	}
	r := s.do("POST", "/v1/members/"+dup+"/erase", "")
	if code, _ := r.errorCode(t); r.status != 422 || code != "unprocessable" || !strings.Contains(string(r.body), surv) {
		t.Fatalf("erase the merged member = %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/members/"+surv+"/erase", ""); r.status != 200 {
		t.Fatalf("erase the survivor = %d %s", r.status, r.body)
	}
	merged := s.do("GET", "/v1/members/"+dup, "")
	if merged.json(t)["status"] != "merged" {
		t.Errorf("the merged record = %s", merged.body)
	}
	for _, k := range [][2]string{{"external_id", "kim-2"}, {"email", "kim.dup@example.com"}, {"phone", "%2B15550111"}, {"external_id", "kim-1"}} {
		if got := s.found(k[0], k[1]); len(got) != 0 {
			t.Errorf("lookup by %s %s after erasure = %v", k[0], k[1], got)
		}
	}
	ev := s.do("GET", "/v1/events?limit=500", "")
	for _, v := range []string{"Kim", "kim@example.com", "kim.dup@example.com", "15550111", "kim-2"} {
		if strings.Contains(string(merged.body), v) || strings.Contains(string(ev.body), v) {
			t.Errorf("%q survives the erasure: %s %s", v, merged.body, ev.body)
		}
	}
}

// TestImportCutShort: a body that breaks off before its declared length is
// an error, not a report of a file that did not arrive whole.
func TestImportCutShort(t *testing.T) {
	s := newServer(t, false)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Past fasthttp's own buffering, so that the handler streams it.
	var b strings.Builder
	for i := range 40000 {
		fmt.Fprintf(&b, `{"external_id": "cut-%d", "name": "Ann"}`+"\n", i)
	}
	part := b.String() + `{"external_id": "cut-last", "na`
	fmt.Fprintf(conn, "POST /v1/members/import HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s", len(part)+1000, part)
	conn.(*net.TCPConn).CloseWrite()
	res, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode == 200 {
			t.Fatalf("a cut body was answered 200: %s", body)
		}
	}
	if got := s.found("external_id", "cut-last"); len(got) != 0 {
		t.Errorf("the cut line was imported: %v", got)
	}
}
