package engine_test

import (
	"fmt"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// analyticsRules earns a point per unit of money and nothing else, so every
// balance, and with it every lifetime value, is known by hand. UTC keeps the
// window at exactly 365 days.
const analyticsRules = `currency: USD
timezone: UTC
earn:
  - name: base
    points: purchase.amount
`

// timeline runs a year day by day from the harness's start: each day the
// clock moves on, then that day's actions run.
type timeline map[int][]func()

// every schedules a purchase of amount by member on days from, from+step,
// ... up to to.
func (tl timeline) every(h *harness, member *string, from, step, to int, amount string) {
	for d := from; d <= to; d += step {
		tl[d] = append(tl[d], func() { h.buy(fmt.Sprintf("%s-%d", (*member)[:8], d), *member, amount) })
	}
}

func (tl timeline) on(day int, f func()) { tl[day] = append(tl[day], f) }

func (tl timeline) run(h *harness, days int) {
	for d := 1; d <= days; d++ {
		h.advanceDays(1)
		for _, f := range tl[d] {
			f()
		}
	}
}

func (h *harness) analytics(id string) *engine.AnalyticsView {
	h.t.Helper()
	m, err := h.e.Member(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	if m.Analytics == nil {
		h.t.Fatalf("member %s has no analytics", id)
	}
	return m.Analytics
}

// want is a member's expected analytics; recency and interval are -1 for
// null.
type want struct {
	recency, frequency    int64
	monetary              string
	rfm                   string
	interval              float64
	clv, realised, potent string
	segment, lifecycle    string
	risk                  bool
	referrals             int64
	referredSpend         string
}

func checkAnalytics(t *testing.T, name string, got *engine.AnalyticsView, w want) {
	t.Helper()
	recency, interval := int64(-1), -1.0
	if got.RecencyDays != nil {
		recency = *got.RecencyDays
	}
	if got.UsualIntervalDays != nil {
		interval = *got.UsualIntervalDays
	}
	scores := fmt.Sprintf("%d%d%d", got.RScore, got.FScore, got.MScore)
	if got.RFM == "" && scores == "000" {
		scores = ""
	}
	g := want{
		recency: recency, frequency: got.Frequency, monetary: got.Monetary, rfm: got.RFM, interval: interval,
		clv: got.CLV, realised: got.RealisedValue, potent: got.PotentialValue,
		segment: got.Segment, lifecycle: got.Lifecycle, risk: got.ChurnRisk,
		referrals: got.Referrals, referredSpend: got.ReferredSpend,
	}
	if g != w || scores != got.RFM {
		t.Errorf("%s:\n got %+v (scores %s)\nwant %+v", name, g, scores, w)
	}
}

// TestAnalyticsKnownAnswers builds a year of history for a population whose
// every figure was worked out by hand (docs/ANALYTICS.md has the
// definitions) and checks them after the job ran at the end of the year.
func TestAnalyticsKnownAnswers(t *testing.T) {
	h := newHarness(t, analyticsRules)
	id := func() string { return h.enrol(engine.MemberInput{}).ID }
	steady, whale, stopped, costly, referrer := id(), id(), id(), id(), id()
	referee1 := h.enrol(engine.MemberInput{ReferrerID: referrer}).ID
	referee2 := h.enrol(engine.MemberInput{ReferrerID: referrer}).ID
	var newcomer string

	tl := timeline{}
	tl.every(h, &steady, 7, 7, 364, "10.00")   // 52 × 10.00
	tl.every(h, &whale, 14, 14, 364, "200.00") // 26 × 200.00
	tl.every(h, &stopped, 7, 7, 154, "20.00")  // 22 × 20.00, then nothing
	tl.every(h, &costly, 100, 200, 300, "100.00")
	tl.on(301, func() {
		if _, err := h.redeem(costly, "costly-x1", 150); err != nil {
			t.Fatal(err)
		}
	})
	tl.on(302, func() { h.refund(costly[:8]+"-300", engine.RefundRequest{ID: "costly-r1", Amount: "80.00"}) })
	tl.every(h, &referrer, 200, 1, 200, "30.00")
	tl.every(h, &referee1, 250, 1, 250, "50.00")
	tl.every(h, &referee2, 260, 1, 260, "70.00")
	tl.on(300, func() { newcomer = id() })
	tl.every(h, &newcomer, 330, 15, 360, "40.00")
	tl.run(h, 365)

	if got := h.run(engine.JobAnalytics).Processed; got != 8 {
		t.Fatalf("processed %d members, want 8", got)
	}
	check := func() {
		t.Helper()
		for _, c := range []struct {
			name string
			id   string
			want want
		}{
			{"steady regular", steady, want{1, 52, "520.00", "555", 7, "462.80", "156.00", "306.80", "mvc", "mature", false, 0, "0.00"}},
			{"whale", whale, want{1, 26, "5200.00", "555", 14, "4628.00", "1560.00", "3068.00", "mvc", "mature", false, 0, "0.00"}},
			{"stopped coming", stopped, want{211, 22, "440.00", "144", 7, "391.60", "132.00", "259.60", "regular", "churned", true, 0, "0.00"}},
			{"redeemed and refunded", costly, want{65, 2, "120.00", "333", 200, "108.00", "36.00", "72.00", "bzc", "mature", false, 0, "0.00"}},
			{"referrer", referrer, want{165, 1, "30.00", "111", -1, "26.70", "9.00", "17.70", "regular", "new", false, 2, "120.00"}},
			{"first referee", referee1, want{115, 1, "50.00", "211", -1, "44.50", "15.00", "29.50", "regular", "new", false, 0, "0.00"}},
			{"second referee", referee2, want{105, 1, "70.00", "312", -1, "62.30", "21.00", "41.30", "regular", "new", false, 0, "0.00"}},
			{"promising newcomer", newcomer, want{5, 3, "120.00", "433", 15, "436.80", "36.00", "400.80", "mgc", "new", false, 0, "0.00"}},
		} {
			checkAnalytics(t, c.name, h.analytics(c.id), c.want)
		}
		s, err := h.e.AnalyticsSummary(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !s.ComputedAt.Equal(h.e.Now()) || s.Window != "12mo" || s.Members != 8 || s.Active != 8 || s.ChurnRisk != 1 {
			t.Errorf("summary = %+v", s)
		}
		if got := fmt.Sprint(s.Segments); got != "map[bzc:1 mgc:1 mvc:2 regular:4]" {
			t.Errorf("segments = %s", got)
		}
		if got := fmt.Sprint(s.Lifecycle); got != "map[churned:1 declining:0 growing:0 mature:3 new:4]" {
			t.Errorf("lifecycle = %s", got)
		}
		// ceil(0.2 × 8) = 2 members, the whale and the steady regular.
		if r := s.Revenue; r.Total != "6550.00" || r.TopMembers != 2 || r.Top != "5720.00" || r.TopShare != 0.8733 {
			t.Errorf("revenue = %+v", r)
		}
		// Balances are the spend in points; the costly member owes 30 and
		// adds nothing. Nothing expires under these rules.
		if p := s.Points; p.Outstanding != 6430 || p.Liability != "64.30" || p.Expiring30d != 0 || p.Expiring90d != 0 {
			t.Errorf("points = %+v", p)
		}
	}
	check()

	// A second run at the same time changes nothing; one a day later
	// only ages recency.
	if got := h.run(engine.JobAnalytics).Processed; got != 8 {
		t.Fatalf("second run processed %d members, want 8", got)
	}
	check()
	h.advanceDays(1)
	h.run(engine.JobAnalytics)
	if got := h.analytics(steady); *got.RecencyDays != 2 {
		t.Errorf("a day later the steady regular's recency is %d, want 2", *got.RecencyDays)
	}
}

// TestAnalyticsLifecycle covers the stages the known-answer population does
// not reach, and the edges of new and churned.
func TestAnalyticsLifecycle(t *testing.T) {
	h := newHarness(t, analyticsRules)
	id := func() string { return h.enrol(engine.MemberInput{}).ID }
	declining, growing, lapsing, never, once := id(), id(), id(), id(), id()

	tl := timeline{}
	tl.every(h, &declining, 7, 7, 273, "20.00") // then a quarter at a quarter of the spend
	tl.every(h, &declining, 280, 7, 364, "5.00")
	tl.every(h, &growing, 14, 14, 266, "10.00") // then weekly and three times as much
	tl.every(h, &growing, 280, 7, 364, "30.00")
	tl.every(h, &lapsing, 7, 7, 329, "10.00") // weekly until 36 days ago
	tl.every(h, &once, 10, 1, 10, "10.00")    // one purchase, 355 days ago
	tl.run(h, 365)
	h.run(engine.JobAnalytics)

	for _, c := range []struct {
		name, id, lifecycle string
		risk                bool
	}{
		{"declining", declining, "declining", true},
		{"growing", growing, "growing", false},
		{"lapsing: 36 days against a weekly habit", lapsing, "churned", true},
		{"never bought", never, "new", false},
		{"bought once, long ago", once, "churned", true},
	} {
		a := h.analytics(c.id)
		if a.Lifecycle != c.lifecycle || a.ChurnRisk != c.risk {
			t.Errorf("%s: lifecycle %s, risk %v; want %s, %v", c.name, a.Lifecycle, a.ChurnRisk, c.lifecycle, c.risk)
		}
	}
	if a := h.analytics(never); a.RecencyDays != nil || a.RFM != "" || a.Frequency != 0 || a.Segment != "regular" || a.CLV != "0.00" {
		t.Errorf("never bought: %+v", a)
	}
	if a := h.analytics(once); a.RecencyDays == nil || *a.RecencyDays != 355 || a.Frequency != 1 {
		t.Errorf("bought once, long ago: %+v", a)
	}
}

// TestWinBackRuleAfterAnalytics runs the shipped example end to end: after
// the analytics job, the win-back rule pays a drifting member once and a
// steady one never.
func TestWinBackRuleAfterAnalytics(t *testing.T) {
	h := newHarness(t, exampleRules)
	steady := h.enrol(engine.MemberInput{}).ID
	drifting := h.enrol(engine.MemberInput{}).ID
	tl := timeline{}
	tl.every(h, &steady, 7, 7, 357, "12.00")
	tl.every(h, &drifting, 7, 7, 343, "12.00") // then 17 days away from a weekly habit
	tl.run(h, 360)
	h.run(engine.JobAnalytics)

	if a := h.analytics(drifting); !a.ChurnRisk || a.Lifecycle != "mature" {
		t.Fatalf("drifting member: risk %v, lifecycle %s; want at risk and mature", a.ChurnRisk, a.Lifecycle)
	}
	if a := h.analytics(steady); a.ChurnRisk {
		t.Fatalf("steady member at risk: %+v", a)
	}
	if !winBack(h.buy("back", drifting, "15.00")) {
		t.Error("the drifting member's return did not earn win-back")
	}
	if winBack(h.buy("again", drifting, "15.00")) {
		t.Error("win-back paid twice (max_per_member: 1)")
	}
	if winBack(h.buy("usual", steady, "15.00")) {
		t.Error("the steady member earned win-back")
	}
}

func winBack(res *engine.PurchaseResult) bool {
	for _, l := range res.Breakdown {
		if l.Rule == "win-back" {
			return l.Points == 200
		}
	}
	return false
}

// TestAnalyticsSummaryParetoAndExpiry checks the summary on a population
// built so that the top 20% of active members bring 80% of the revenue.
func TestAnalyticsSummaryParetoAndExpiry(t *testing.T) {
	h := newHarness(t, exampleRules)
	members := make([]string, 13) // 2 big spenders, 8 small ones, 3 who never buy
	for i := range members {
		members[i] = h.enrol(engine.MemberInput{}).ID
	}
	tl := timeline{}
	for i := range members[:10] {
		switch {
		case i < 2:
			tl.every(h, &members[i], 200, 1, 200, "400.00")
		case i < 8:
			tl.every(h, &members[i], 1, 1, 1, "25.00")
		default:
			tl.every(h, &members[i], 40, 1, 40, "25.00")
		}
	}
	tl.run(h, 340)
	h.run(engine.JobAnalytics)

	s, err := h.e.AnalyticsSummary(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Members != 13 || s.Active != 10 {
		t.Errorf("members %d, active %d; want 13, 10", s.Members, s.Active)
	}
	if r := s.Revenue; r.Total != "1000.00" || r.TopMembers != 2 || r.Top != "800.00" || r.TopShare != 0.8 {
		t.Errorf("revenue = %+v, want the top 2 of 10 bringing 800.00 of 1000.00", r)
	}
	// Enrolment bonuses (13 × 50) expire a year after enrolment, 25 days
	// from now, like the purchases of day 1; those of day 40 in 65 days,
	// those of day 200 later than 90.
	p := s.Points
	if p.Outstanding != 13*50+2*400+8*25 || p.Liability != "16.50" {
		t.Errorf("outstanding = %d (%s)", p.Outstanding, p.Liability)
	}
	if p.Expiring30d != 13*50+6*25 || p.Expiring90d != 13*50+8*25 {
		t.Errorf("expiring = %d in 30 days, %d in 90", p.Expiring30d, p.Expiring90d)
	}
	big := h.analytics(members[0])
	if big.Segment != "mvc" {
		t.Errorf("a big spender is %s, want mvc", big.Segment)
	}
}

func TestAnalyticsMembersFilterAndPaging(t *testing.T) {
	h := newHarness(t, analyticsRules)
	var ids []string
	for range 7 {
		ids = append(ids, h.enrol(engine.MemberInput{}).ID)
	}
	if _, err := h.e.AnalyticsSummary(h.ctx); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("summary before any run: %v, want not_found", err)
	}
	h.advanceDays(1)
	h.buy("big", ids[0], "500.00")
	h.buy("small", ids[1], "5.00")
	h.run(engine.JobAnalytics)

	all := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := h.e.AnalyticsMembers(h.ctx, engine.AnalyticsFilter{}, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Members {
			if all[m.ID] || m.Analytics == nil {
				t.Fatalf("page %d: %+v repeated or without analytics", pages, m)
			}
			all[m.ID] = true
		}
		if p.NextCursor == "" {
			if len(p.Members) == 0 {
				t.Errorf("page %d is empty: the one before should have had no cursor", pages)
			}
			break
		}
		cursor = p.NextCursor
	}
	if len(all) != 7 {
		t.Fatalf("pages listed %d members, want 7", len(all))
	}

	yes := true
	p, err := h.e.AnalyticsMembers(h.ctx, engine.AnalyticsFilter{Segment: "mvc"}, "", 0)
	if err != nil || len(p.Members) != 1 || p.Members[0].ID != ids[0] || p.NextCursor != "" {
		t.Fatalf("mvc = %+v, %v", p, err)
	}
	p, err = h.e.AnalyticsMembers(h.ctx, engine.AnalyticsFilter{Lifecycle: "new", ChurnRisk: &yes}, "", 0)
	if err != nil || len(p.Members) != 0 {
		t.Fatalf("new and at risk = %+v, %v", p, err)
	}
	_, err = h.e.AnalyticsMembers(h.ctx, engine.AnalyticsFilter{Segment: "vip"}, "", 0)
	wantCode(t, err, engine.EINVALID)
	var n int
	err = h.e.EachAnalyticsMember(h.ctx, engine.AnalyticsFilter{Lifecycle: "new"}, func(engine.AnalyticsMember) error { n++; return nil })
	if err != nil || n != 7 {
		t.Fatalf("each new member: %d, %v", n, err)
	}
}
