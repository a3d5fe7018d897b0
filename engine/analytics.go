package engine

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/loyaltyhq/loyalty/rules"
)

// AnalyticsSummary is the program-wide picture an analytics run leaves, as
// of its ComputedAt. Money is in minor units. It is stored: see types.go
// before renaming a field.
type AnalyticsSummary struct {
	ComputedAt time.Time
	Window     string // the analytics window, as the rules file writes it
	Members    int64
	Active     int64 // members with a purchase in the window
	Segments   map[string]int64
	Lifecycles map[string]int64
	ChurnRisk  int64
	// Revenue is the window spend of the active members; TopRevenue is that
	// of the TopMembers biggest spenders among them.
	Revenue    int64
	TopMembers int64
	TopRevenue int64
	// PointsOutstanding is the sum of positive balances; Liability is what
	// they cost at the point cost.
	PointsOutstanding int64
	Liability         int64
	// Expiring30 and Expiring90 are points of lots that expire within 30
	// and 90 days of ComputedAt.
	Expiring30 int64
	Expiring90 int64
}

// analyser holds the parameters of one run, resolved against its time.
type analyser struct {
	now         time.Time
	windowStart time.Time
	recentStart time.Time // the last quarter of the window starts here
	newSince    time.Time // enrolled after this: new
	churnSince  time.Time // last purchase before this: churned
	minSpan     time.Duration

	margin, pointCost, horizon           float64 // pointCost in minor units
	growth, decline, churnMult, riskMult float64
	topShare                             decimal.Decimal
}

// minObservation is the shortest span a yearly rate is drawn from even when
// new_within is zero, so a purchase a second ago is not a yearly fortune.
const minObservation = 24 * time.Hour

// year is the span rates are annualised over.
const year = 365 * 24 * time.Hour

func newAnalyser(prog *rules.Program, now time.Time) *analyser {
	a := prog.Analytics
	local := now.In(prog.Location)
	ws := a.Window.SubtractFrom(local).UTC()
	an := &analyser{
		now:         now,
		windowStart: ws,
		recentStart: now.Add(-now.Sub(ws) / 4),
		newSince:    a.NewWithin.SubtractFrom(local).UTC(),
		churnSince:  a.ChurnAfter.SubtractFrom(local).UTC(),
		margin:      a.Margin.InexactFloat64(),
		pointCost:   a.PointCost.Shift(int32(prog.CurrencyDigits)).InexactFloat64(),
		horizon:     a.Horizon.InexactFloat64(),
		growth:      a.Growth.InexactFloat64(),
		decline:     a.Decline.InexactFloat64(),
		churnMult:   a.ChurnMultiple.InexactFloat64(),
		riskMult:    a.RiskMultiple.InexactFloat64(),
		topShare:    a.TopShare,
	}
	an.minSpan = max(now.Sub(an.newSince), minObservation)
	return an
}

// Lifecycle stages by index, so the first pass keeps one byte per member.
var lifecycles = [...]string{LifecycleNew, LifecycleGrowing, LifecycleMature, LifecycleDeclining, LifecycleChurned}

const (
	stageNew uint8 = iota
	stageGrowing
	stageMature
	stageDeclining
	stageChurned
)

// figures is what the first pass learns of one member: everything that
// depends on the member alone. Scores and segments need the whole
// population and are settled in the second pass. It is kept small because
// a run holds one per member.
type figures struct {
	id        string
	monetary  int64
	realised  int64
	clv       int64
	interval  time.Duration
	recency   int32 // whole days since the last purchase; -1: never
	frequency int32
	stage     uint8
	risk      bool
	bzc       bool
}

func (f *figures) active() bool { return f.frequency > 0 }

// referrals is what a referrer's referees add up to.
type referrals struct {
	count, spend int64
}

// tally is a member's purchases in the window. Entries at one instant are
// one purchase and its refunds (refunds are dated at the purchase), so they
// are netted first: a fully refunded purchase is no visit.
type tally struct {
	visits, spend             int64
	baseVisits, baseSpend     int64 // before the recent quarter
	recentVisits, recentSpend int64
	instants                  int64 // with net visits above zero
	firstInstant, lastInstant time.Time
}

func (an *analyser) tally(entries []MetricEntry) tally {
	var t tally
	for i := 0; i < len(entries); {
		at := entries[i].At
		var v, s int64
		for ; i < len(entries) && entries[i].At.Equal(at); i++ {
			v += entries[i].Visits
			s += entries[i].Spend
		}
		v = max(v, 0)
		t.visits, t.spend = t.visits+v, t.spend+s
		if at.Before(an.recentStart) {
			t.baseVisits, t.baseSpend = t.baseVisits+v, t.baseSpend+s
		} else {
			t.recentVisits, t.recentSpend = t.recentVisits+v, t.recentSpend+s
		}
		if v > 0 {
			if t.instants == 0 {
				t.firstInstant = at
			}
			t.lastInstant = at
			t.instants++
		}
	}
	return t
}

// measure computes a member's own figures from the metric entries since
// the window start (in time order), as docs/ANALYTICS.md defines them.
func (an *analyser) measure(m *Member, entries []MetricEntry) figures {
	t := an.tally(entries)
	f := figures{id: m.ID, recency: -1, frequency: int32(min(t.visits, math.MaxInt32)), monetary: max(t.spend, 0)}
	if t.instants >= 2 {
		f.interval = t.lastInstant.Sub(t.firstInstant) / time.Duration(t.instants-1)
	}

	// Observation starts with the window, or with the member when they
	// joined later, unless purchases (backdated ones) came earlier still.
	obs := an.windowStart
	if m.EnrolledAt.After(obs) {
		obs = m.EnrolledAt
	}
	if t.instants > 0 && t.firstInstant.Before(obs) {
		obs = t.firstInstant
	}

	span := max(an.now.Sub(obs), an.minSpan)
	yearly := float64(f.monetary) * float64(year) / float64(span)
	cost := float64(max(m.Points, 0)) * an.pointCost
	f.clv = round(yearly*an.horizon*an.margin - cost)
	f.realised = round(an.margin * float64(m.LifetimeSpend))
	spent := float64(max(m.PointsRedeemed, 0))*an.pointCost + float64(m.RefundedSpend)
	f.bzc = spent > an.margin*float64(m.LifetimeSpend)

	var elapsed time.Duration
	purchased := !m.LastPurchaseAt.IsZero()
	if purchased {
		elapsed = max(an.now.Sub(m.LastPurchaseAt), 0)
		f.recency = int32(min(elapsed/(24*time.Hour), math.MaxInt32))
	}
	overdue := func(mult float64) bool {
		return f.interval > 0 && float64(elapsed) > mult*float64(f.interval)
	}
	f.stage = an.stage(m, &t, obs, purchased, overdue)
	f.risk = f.stage == stageDeclining || f.stage == stageChurned || overdue(an.riskMult)
	return f
}

// stage places a member in their lifecycle; the first stage that applies
// wins. overdue tells whether the time since the last purchase exceeds a
// multiple of the usual interval.
func (an *analyser) stage(m *Member, t *tally, obs time.Time, purchased bool, overdue func(float64) bool) uint8 {
	base := an.recentStart.Sub(obs)
	recent := an.now.Sub(an.recentStart)
	rate := func(n int64, d time.Duration) float64 { return float64(n) / float64(d) }
	switch {
	case m.EnrolledAt.After(an.newSince),
		m.PurchaseCount <= 1 && (!purchased || !m.LastPurchaseAt.Before(an.churnSince)):
		return stageNew
	case purchased && (m.LastPurchaseAt.Before(an.churnSince) || overdue(an.churnMult)):
		return stageChurned
	case base > 0 && t.baseVisits >= 2 &&
		(rate(t.recentVisits, recent) < an.decline*rate(t.baseVisits, base) ||
			rate(t.recentSpend, recent) < an.decline*rate(t.baseSpend, base)):
		return stageDeclining
	case base > 0 && t.recentSpend > 0 && rate(t.recentSpend, recent) > an.growth*rate(t.baseSpend, base):
		return stageGrowing
	}
	return stageMature
}

// maxFigure bounds the figures analytics computes in floating point (CLV,
// realised value), so that the difference of two still fits an int64.
const maxFigure = math.MaxInt64 / 4

// round rounds a figure to a whole number, within ±maxFigure: converting a
// float beyond the int64 range would give an arbitrary value.
func round(x float64) int64 {
	r := math.Round(x)
	switch {
	case math.IsNaN(r):
		return 0
	case r >= maxFigure:
		return maxFigure
	case r <= -maxFigure:
		return -maxFigure
	}
	return int64(r)
}

// addCapped adds to a program-wide sum. Each member's figure is bounded
// (limits.go) but a sum over every member need not fit, so it stops at
// the int64 range instead of wrapping.
func addCapped(a, b int64) int64 {
	s, ok := addInt64(a, b)
	switch {
	case ok:
		return s
	case b > 0:
		return math.MaxInt64
	}
	return math.MinInt64
}

// quintile scores v among sorted values (ascending) as 1–5 by its
// percentile rank, ties counted at their midpoint: 1 + ⌊5 × (below +
// equal/2) / n⌋. The rank stays below n, so the score never passes 5; a
// lone member, or a population that is all alike, scores 3.
func quintile[T int32 | int64](sorted []T, v T) int {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	below := sort.Search(n, func(i int) bool { return sorted[i] >= v })
	atOrBelow := sort.Search(n, func(i int) bool { return sorted[i] > v })
	return 1 + 5*(below+atOrBelow)/(2*n)
}

// topCount is how many of n members make the top share.
func (an *analyser) topCount(n int) int {
	return int(an.topShare.Mul(decimal.NewFromInt(int64(n))).Ceil().IntPart())
}

// population is what the second pass needs from the first: the sorted
// distributions scores and segments are cut from.
type population struct {
	recency, frequency []int32 // of active members
	monetary           []int64 // of active members
	realised           []int64 // of members with realised value above zero
	potential          []int64 // of the same members
	realisedCut        int64   // realised value at or above which a member is mvc
	potentialCut       int64   // potential at or above which a member is mgc
}

func (an *analyser) population(figs []figures) *population {
	p := &population{}
	for i := range figs {
		f := &figs[i]
		if f.active() {
			p.recency = append(p.recency, -f.recency) // fewer days is better
			p.frequency = append(p.frequency, f.frequency)
			p.monetary = append(p.monetary, f.monetary)
		}
		if f.realised > 0 {
			p.realised = append(p.realised, f.realised)
			p.potential = append(p.potential, f.clv-f.realised)
		}
	}
	for _, s := range [][]int32{p.recency, p.frequency} {
		slices.Sort(s)
	}
	for _, s := range [][]int64{p.monetary, p.realised, p.potential} {
		slices.Sort(s)
	}
	p.realisedCut, p.potentialCut = math.MaxInt64, math.MaxInt64
	if n := len(p.realised); n > 0 {
		k := min(an.topCount(n), n)
		p.realisedCut = p.realised[n-k]
		p.potentialCut = max(p.potential[n-k], 1)
	}
	return p
}

// settle scores a member and picks their segment against the population.
func (an *analyser) settle(f *figures, p *population, refs referrals) *Analytics {
	a := &Analytics{
		ComputedAt:     an.now,
		Lifecycle:      lifecycles[f.stage],
		ChurnRisk:      f.risk,
		CLV:            f.clv,
		RecencyDays:    int64(f.recency),
		Frequency:      int64(f.frequency),
		Monetary:       f.monetary,
		UsualInterval:  f.interval,
		RealisedValue:  f.realised,
		PotentialValue: f.clv - f.realised,
		Referrals:      refs.count,
		ReferredSpend:  refs.spend,
	}
	if f.active() {
		a.RScore = quintile(p.recency, -f.recency)
		a.FScore = quintile(p.frequency, f.frequency)
		a.MScore = quintile(p.monetary, f.monetary)
		a.RFM = strconv.Itoa(a.RScore*100 + a.FScore*10 + a.MScore)
	}
	switch {
	case f.bzc:
		a.Segment = SegmentBZC
	case f.realised > 0 && f.realised >= p.realisedCut:
		a.Segment = SegmentMVC
	case f.realised > 0 && a.PotentialValue >= p.potentialCut:
		a.Segment = SegmentMGC
	default:
		a.Segment = SegmentRegular
	}
	return a
}

// analytics is the analytics job. The first pass reads every member and
// their window of metric entries in read transactions and keeps a few
// figures per member; the second scores them against the whole population
// and writes them in bounded write transactions. Everything is computed as
// of now, so a late run catches up in one go and a second run refreshes.
func (e *Engine) analytics(ctx context.Context, live *liveRules, now time.Time) (int64, error) {
	prog := live.prog
	an := newAnalyser(prog, now)
	sum := &AnalyticsSummary{
		ComputedAt: now, Window: prog.Analytics.Window.String(),
		Segments:   map[string]int64{SegmentMVC: 0, SegmentMGC: 0, SegmentBZC: 0, SegmentRegular: 0},
		Lifecycles: map[string]int64{},
	}
	for _, l := range lifecycles {
		sum.Lifecycles[l] = 0
	}
	began := time.Now()
	figs, refs, err := e.readFigures(ctx, an, sum)
	if err != nil {
		return 0, err
	}
	// Wall time, not engine time: this tells operators how long the pass
	// took, which a test clock would hide.
	e.log.Info("analytics: members read", "members", len(figs), "took", time.Since(began).Round(time.Millisecond))
	pop := an.population(figs)
	sum.Members, sum.Active = int64(len(figs)), int64(len(pop.monetary))
	for _, v := range pop.monetary {
		sum.Revenue = addCapped(sum.Revenue, v)
	}
	top := min(an.topCount(len(pop.monetary)), len(pop.monetary))
	sum.TopMembers = int64(top)
	for _, v := range pop.monetary[len(pop.monetary)-top:] {
		sum.TopRevenue = addCapped(sum.TopRevenue, v)
	}
	sum.Liability = round(float64(sum.PointsOutstanding) * an.pointCost)

	processed, err := e.writeAnalytics(ctx, an, figs, pop, refs, sum)
	if err != nil {
		return processed, err
	}
	if err := e.expiringPoints(ctx, now, sum); err != nil {
		return processed, err
	}
	if err := e.store.Update(ctx, func(tx Tx) error { return tx.PutAnalyticsSummary(sum) }); err != nil {
		return processed, fmt.Errorf("analytics: write summary: %w", err)
	}
	return processed, nil
}

// counted tells whether analytics count a member: a merged member's
// history is the survivor's, and an erased member left.
func counted(m *Member) bool { return m.Status != StatusMerged && m.Status != StatusErased }

// readFigures is the first pass: every member's own figures in id order,
// what each referrer's referees add up to, and the outstanding points.
func (e *Engine) readFigures(ctx context.Context, an *analyser, sum *AnalyticsSummary) ([]figures, map[string]referrals, error) {
	var figs []figures
	refs := map[string]referrals{}
	_, err := e.sweepMembers(ctx, func(tx Tx, members []*Member) error {
		for _, m := range members {
			if !counted(m) {
				continue
			}
			entries, err := tx.Metrics(m.ID, an.windowStart)
			if err != nil {
				return err
			}
			figs = append(figs, an.measure(m, entries))
			if m.ReferrerID != "" {
				r := refs[m.ReferrerID]
				refs[m.ReferrerID] = referrals{count: r.count + 1, spend: addCapped(r.spend, m.LifetimeSpend)}
			}
			sum.PointsOutstanding = addCapped(sum.PointsOutstanding, max(m.Points, 0))
		}
		return nil
	}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("analytics: read members: %w", err)
	}
	return figs, refs, nil
}

// writeAnalytics is the second pass: it settles each member's analytics,
// counts them into the summary and writes them a chunk per transaction.
// Each member is re-read inside the write and only its analytics change,
// so a purchase made since the first pass is kept (and counted next run).
func (e *Engine) writeAnalytics(ctx context.Context, an *analyser, figs []figures, pop *population, refs map[string]referrals, sum *AnalyticsSummary) (int64, error) {
	var processed int64
	for start := 0; start < len(figs); start += e.jobChunk {
		if err := ctx.Err(); err != nil {
			return processed, err
		}
		chunk := figs[start:min(start+e.jobChunk, len(figs))]
		as := make([]*Analytics, len(chunk))
		for i := range chunk {
			a := an.settle(&chunk[i], pop, refs[chunk[i].id])
			as[i] = a
			sum.Segments[a.Segment]++
			sum.Lifecycles[a.Lifecycle]++
			if a.ChurnRisk {
				sum.ChurnRisk++
			}
		}
		var written int64
		err := e.store.Update(ctx, func(tx Tx) error {
			written = 0
			for i := range chunk {
				m, err := tx.Member(chunk[i].id)
				if err != nil {
					return err
				}
				if m == nil {
					continue
				}
				a := *as[i]
				changed := analyticsChanges(m.Analytics, &a)
				m.Analytics = &a
				if err := tx.PutMember(m); err != nil {
					return err
				}
				if len(changed) > 0 {
					if err := emit(tx, an.now, EventMemberAnalyticsChanged, m.ID, analyticsEventData{MemberID: m.ID, Changed: changed}); err != nil {
						return err
					}
				}
				written++
			}
			return nil
		})
		if err != nil {
			return processed, fmt.Errorf("analytics: write members: %w", err)
		}
		processed += written
	}
	return processed, nil
}

// expiringPoints adds up the points due to expire within 30 and 90 days,
// reading only the expiry index up to then, one chunk per transaction.
func (e *Engine) expiringPoints(ctx context.Context, now time.Time, sum *AnalyticsSummary) error {
	in30, in90 := now.Add(30*24*time.Hour), now.Add(90*24*time.Hour)
	var after *Lot
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int
		err := e.store.View(ctx, func(tx Tx) error {
			lots, err := tx.DueLots(in90, after, e.jobChunk)
			if err != nil {
				return err
			}
			n = len(lots)
			for _, l := range lots {
				after = l
				if expired(l, now) {
					continue
				}
				sum.Expiring90 = addCapped(sum.Expiring90, l.Remaining)
				if !l.ExpiresAt.After(in30) {
					sum.Expiring30 = addCapped(sum.Expiring30, l.Remaining)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("analytics: expiring points: %w", err)
		}
		if n < e.jobChunk {
			return nil
		}
	}
}
