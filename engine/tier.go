package engine

import (
	"sort"
	"strconv"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// series is a member's tier-metric history, sorted by time, with prefix
// sums so the metric over any window is two binary searches.
type series struct {
	prog *rules.Program
	at   []time.Time
	cum  []int64 // cum[i] = sum of the first i values
	// overflow is set when the prefix sums do not fit an int64; they stop
	// growing there, and loadSeries refuses the series.
	overflow bool
}

func loadSeries(tx Tx, prog *rules.Program, memberID string, since time.Time) (*series, error) {
	entries, err := tx.Metrics(memberID, since)
	if err != nil {
		return nil, err
	}
	s := newSeries(prog, entries)
	if s.overflow {
		return nil, Errorf(EUNPROCESSABLE, "member %s: the tier metric's history does not fit in 64 bits", memberID)
	}
	return s, nil
}

// newSeries builds a series from entries in any order.
func newSeries(prog *rules.Program, entries []MetricEntry) *series {
	entries = append([]MetricEntry(nil), entries...)
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].At.Before(entries[j].At) })
	s := &series{prog: prog, at: make([]time.Time, len(entries)), cum: make([]int64, len(entries)+1)}
	for i, e := range entries {
		s.at[i] = e.At
		sum, ok := addInt64(s.cum[i], metricValue(e, prog.Tiers.Metric))
		if !ok {
			s.overflow, sum = true, s.cum[i]
		}
		s.cum[i+1] = sum
	}
	return s
}

func metricValue(e MetricEntry, m rules.Metric) int64 {
	switch m {
	case rules.MetricPoints:
		return e.Points
	case rules.MetricVisits:
		return e.Visits
	default:
		return e.Spend
	}
}

// value is the metric as of t: the entries inside the window that ends at t.
func (s *series) value(t time.Time) int64 {
	from := s.prog.WindowStart(t)
	lo := sort.Search(len(s.at), func(i int) bool { return !s.at[i].Before(from) })
	hi := sort.Search(len(s.at), func(i int) bool { return s.at[i].After(t) })
	if hi < lo {
		return 0
	}
	return s.cum[hi] - s.cum[lo]
}

// exits lists the last instants at which entries still count, in (from, to],
// ascending: the only moments after which the metric can fall.
func (s *series) exits(from, to time.Time) []time.Time {
	var out []time.Time
	if s.prog.Tiers.CalendarYear {
		loc := s.prog.Location
		for y := from.In(loc).Year(); y <= to.In(loc).Year(); y++ {
			c := time.Date(y+1, 1, 1, 0, 0, 0, 0, loc).Add(-time.Nanosecond)
			if c.After(from) && !c.After(to) {
				out = append(out, c)
			}
		}
		return out
	}
	for _, at := range s.at {
		c := s.prog.Tiers.Window.AddTo(at)
		if c.After(from) && !c.After(to) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// lastAtOrAbove returns the latest moment in [from, to] at which the metric
// was at least threshold, and false when it never was.
func (s *series) lastAtOrAbove(threshold int64, from, to time.Time) (time.Time, bool) {
	if s.value(to) >= threshold {
		return to, true
	}
	ex := s.exits(from, to)
	for i := len(ex) - 1; i >= 0; i-- {
		if s.value(ex[i]) >= threshold {
			return ex[i], true
		}
	}
	if s.value(from) >= threshold {
		return from, true
	}
	return time.Time{}, false
}

// promote moves m up to the highest tier its metric qualifies for now. Tiers
// only go up here; going down is the evaluate-tiers job's, after grace.
func promote(tx Tx, prog *rules.Program, m *Member, now time.Time) (bool, error) {
	v, ok, err := windowMetric(tx, prog, m.ID, now)
	if err != nil {
		return false, err
	}
	if !ok {
		s, err := loadSeries(tx, prog, m.ID, prog.WindowStart(now))
		if err != nil {
			return false, err
		}
		v = s.value(now)
	}
	q := prog.Tiers.Qualified(v)
	cur := prog.Tiers.Index(m.Tier)
	if q <= cur {
		return false, nil
	}
	m.Tier, m.TierSince, m.TierByPromotion = prog.Tiers.Levels[q].Name, now, true
	return true, nil
}

// tierDecision is what evaluate-tiers would do with a member now.
type tierDecision struct {
	target     int // level index the member should hold
	keepsUntil time.Time
	value      int64
}

// decideTier applies the tier policy: promotion at once, demotion after the
// member has been below the tier's threshold for the grace period. A member
// whose qualifying purchases were refunded never qualified, so no grace.
func decideTier(tx Tx, prog *rules.Program, m *Member, now time.Time) (tierDecision, error) {
	t := prog.Tiers
	cur := t.Index(m.Tier)
	since := m.TierSince
	if since.After(now) {
		since = now
	}
	s, err := loadSeries(tx, prog, m.ID, prog.WindowStart(since))
	if err != nil {
		return tierDecision{}, err
	}
	d := tierDecision{value: s.value(now)}
	q := t.Qualified(d.value)
	switch {
	case cur < 0 || q >= cur:
		d.target = max(q, cur)
		if d.target > 0 {
			d.keepsUntil = t.Grace.AddTo(s.fallsBelow(t.Levels[d.target].Threshold, now))
		}
		return d, nil
	}
	d.target = cur
	last, ok := s.lastAtOrAbove(t.Levels[cur].Threshold, since, now)
	if !ok && m.TierByPromotion {
		d.keepsUntil = now
	} else {
		if !ok {
			last = since
		}
		d.keepsUntil = t.Grace.AddTo(last)
	}
	if !now.Before(d.keepsUntil) {
		if t.Downgrade == "to_qualified" {
			d.target = q
		} else {
			d.target = cur - 1
		}
	}
	return d, nil
}

// fallsBelow returns the moment, after now, at which the metric drops below
// threshold if the member buys nothing more.
func (s *series) fallsBelow(threshold int64, now time.Time) time.Time {
	far := now.AddDate(2, 0, 0)
	if s.prog.Tiers.CalendarYear {
		loc := s.prog.Location
		return time.Date(now.In(loc).Year()+1, 1, 1, 0, 0, 0, 0, loc)
	}
	for _, c := range s.exits(now, far) {
		if s.value(c.Add(time.Nanosecond)) < threshold {
			return c.Add(time.Nanosecond)
		}
	}
	return far
}

// TierStatus is a member's tier as the balance shows it.
type TierStatus struct {
	Name        string     `json:"name"`
	Since       time.Time  `json:"since"`
	Metric      string     `json:"metric"`
	Value       string     `json:"value"`
	WindowStart time.Time  `json:"window_start"`
	Next        *NextTier  `json:"next,omitempty"`
	KeepsUntil  *time.Time `json:"keeps_until,omitempty"`
}

// NextTier tells how far the member is from the next tier.
type NextTier struct {
	Name      string `json:"name"`
	Remaining string `json:"remaining"`
}

func formatMetric(prog *rules.Program, v int64) string {
	if prog.Tiers.Metric == rules.MetricSpend {
		return prog.FormatMoney(v)
	}
	return strconv.FormatInt(v, 10)
}

func tierStatus(tx Tx, prog *rules.Program, m *Member, now time.Time) (TierStatus, error) {
	// In the lowest tier there is nothing to keep, so the balance needs
	// only the metric, which a running sum gives without the series.
	var d tierDecision
	summed := false
	var err error
	if prog.Tiers.Index(m.Tier) <= 0 {
		d.value, summed, err = windowMetric(tx, prog, m.ID, now)
	}
	if err == nil && !summed {
		d, err = decideTier(tx, prog, m, now)
	}
	if err != nil {
		return TierStatus{}, err
	}
	ts := TierStatus{
		Name: m.Tier, Since: m.TierSince, Metric: string(prog.Tiers.Metric),
		Value: formatMetric(prog, d.value), WindowStart: prog.WindowStart(now),
	}
	cur := prog.Tiers.Index(m.Tier)
	if next := cur + 1; cur >= 0 && next < len(prog.Tiers.Levels) {
		l := prog.Tiers.Levels[next]
		ts.Next = &NextTier{Name: l.Name, Remaining: formatMetric(prog, max(l.Threshold-d.value, 0))}
	}
	if cur > 0 && !d.keepsUntil.IsZero() {
		k := d.keepsUntil
		ts.KeepsUntil = &k
	}
	return ts, nil
}
