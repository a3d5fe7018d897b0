package engine

import (
	"context"
	"math"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// analyticsView shows a member's analytics; nil before the first run.
func analyticsView(prog *rules.Program, a *Analytics) *AnalyticsView {
	if a == nil {
		return nil
	}
	v := &AnalyticsView{
		ComputedAt: a.ComputedAt, Segment: a.Segment, Lifecycle: a.Lifecycle, ChurnRisk: a.ChurnRisk,
		Frequency: a.Frequency, Monetary: prog.FormatMoney(a.Monetary),
		RScore: a.RScore, FScore: a.FScore, MScore: a.MScore, RFM: a.RFM,
		CLV: prog.FormatMoney(a.CLV), RealisedValue: prog.FormatMoney(a.RealisedValue),
		PotentialValue: prog.FormatMoney(a.PotentialValue),
		Referrals:      a.Referrals, ReferredSpend: prog.FormatMoney(a.ReferredSpend),
	}
	if a.RecencyDays >= 0 {
		d := a.RecencyDays
		v.RecencyDays = &d
	}
	if a.UsualInterval > 0 {
		d := math.Round(a.UsualInterval.Hours()/24*100) / 100
		v.UsualIntervalDays = &d
	}
	return v
}

// AnalyticsSummaryView is the summary of the last analytics run as the API
// shows it.
type AnalyticsSummaryView struct {
	ComputedAt time.Time        `json:"computed_at"`
	Window     string           `json:"window"`
	Members    int64            `json:"members"`
	Active     int64            `json:"active"`
	Segments   map[string]int64 `json:"segments"`
	Lifecycle  map[string]int64 `json:"lifecycle"`
	ChurnRisk  int64            `json:"churn_risk"`
	Revenue    RevenueView      `json:"revenue"`
	Points     LiabilityView    `json:"points"`
	// Rewards are the coupons of each reward as of now, not of the run:
	// RewardsReport.
	Rewards []RewardReport `json:"rewards"`
}

// RevenueView is how concentrated the window's revenue is: the share the
// top members by spend bring.
type RevenueView struct {
	Total      string `json:"total"`
	TopMembers int64  `json:"top_members"`
	Top        string `json:"top"`
	// TopShare is Top / Total, 0 when there is no revenue.
	TopShare float64 `json:"top_share"`
}

// LiabilityView is the points the program owes and what expires soon.
type LiabilityView struct {
	Outstanding int64  `json:"outstanding"`
	Liability   string `json:"liability"`
	Expiring30d int64  `json:"expiring_30d"`
	Expiring90d int64  `json:"expiring_90d"`
}

// AnalyticsSummary returns the summary of the last analytics run, with
// the rewards' coupons as of now.
func (e *Engine) AnalyticsSummary(ctx context.Context) (*AnalyticsSummaryView, error) {
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	var s *AnalyticsSummary
	err = e.store.View(ctx, func(tx Tx) error {
		s, err = tx.LatestAnalyticsSummary()
		return err
	})
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, Errorf(ENOTFOUND, "no analytics yet: the %s job has not run", JobAnalytics)
	}
	prog := live.prog
	v := &AnalyticsSummaryView{
		ComputedAt: s.ComputedAt, Window: s.Window, Members: s.Members, Active: s.Active,
		Segments: s.Segments, Lifecycle: s.Lifecycles, ChurnRisk: s.ChurnRisk,
		Revenue: RevenueView{Total: prog.FormatMoney(s.Revenue), TopMembers: s.TopMembers, Top: prog.FormatMoney(s.TopRevenue)},
		Points: LiabilityView{
			Outstanding: s.PointsOutstanding, Liability: prog.FormatMoney(s.Liability),
			Expiring30d: s.Expiring30, Expiring90d: s.Expiring90,
		},
	}
	if s.Revenue > 0 {
		v.Revenue.TopShare = math.Round(float64(s.TopRevenue)/float64(s.Revenue)*1e4) / 1e4
	}
	if v.Rewards, err = e.RewardsReport(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// AnalyticsFilter selects members by their analytics; empty fields match
// every member that has analytics.
type AnalyticsFilter struct {
	Segment   string
	Lifecycle string
	ChurnRisk *bool
}

// Validate checks the filter's values, so a bad filter is refused before
// an export starts streaming.
func (f AnalyticsFilter) Validate() error {
	if f.Segment != "" && !oneOf(f.Segment, SegmentMVC, SegmentMGC, SegmentBZC, SegmentRegular) {
		return FieldErrorf(EINVALID, "segment", "must be mvc, mgc, bzc or regular")
	}
	if f.Lifecycle != "" && !oneOf(f.Lifecycle, lifecycles[:]...) {
		return FieldErrorf(EINVALID, "lifecycle", "must be new, growing, mature, declining or churned")
	}
	return nil
}

func oneOf(s string, values ...string) bool {
	for _, v := range values {
		if s == v {
			return true
		}
	}
	return false
}

func (f AnalyticsFilter) match(a *Analytics) bool {
	return a != nil &&
		(f.Segment == "" || a.Segment == f.Segment) &&
		(f.Lifecycle == "" || a.Lifecycle == f.Lifecycle) &&
		(f.ChurnRisk == nil || a.ChurnRisk == *f.ChurnRisk)
}

// AnalyticsMember is a member as analytics lists show it: whom to contact
// for a campaign, and why.
type AnalyticsMember struct {
	ID         string         `json:"id"`
	ExternalID string         `json:"external_id,omitempty"`
	Email      string         `json:"email,omitempty"`
	Phone      string         `json:"phone,omitempty"`
	Name       string         `json:"name,omitempty"`
	Status     string         `json:"status"`
	Tier       string         `json:"tier"`
	Points     int64          `json:"points"`
	Analytics  *AnalyticsView `json:"analytics"`
}

// AnalyticsPage is a page of members selected by their analytics.
type AnalyticsPage struct {
	Members    []AnalyticsMember `json:"members"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// analyticsScan bounds how many members one page reads looking for
// matches, so a rare filter over millions of members answers in bounded
// time: the page may then be short, with a cursor to go on.
const analyticsScan = 20_000

// analyticsRead is how many members one read transaction of a list takes.
const analyticsRead = 1000

// AnalyticsMembers returns a page of members matching f, in id order. The
// cursor is the one a previous page returned.
func (e *Engine) AnalyticsMembers(ctx context.Context, f AnalyticsFilter, cursor string, limit int) (*AnalyticsPage, error) {
	limit, err := PageSize(limit)
	if err != nil {
		return nil, err
	}
	page := &AnalyticsPage{Members: []AnalyticsMember{}}
	// One match past the page tells whether another page exists.
	last, more, err := e.scanAnalytics(ctx, f, cursor, analyticsScan, func(m AnalyticsMember) bool {
		page.Members = append(page.Members, m)
		return len(page.Members) <= limit
	})
	switch {
	case err != nil:
		return nil, err
	case len(page.Members) > limit:
		page.Members = page.Members[:limit]
		page.NextCursor = page.Members[limit-1].ID
	case more:
		page.NextCursor = last
	}
	return page, nil
}

// EachAnalyticsMember calls fn for every member matching f, in id order.
// fn runs outside any transaction, so a slow reader holds no snapshot.
func (e *Engine) EachAnalyticsMember(ctx context.Context, f AnalyticsFilter, fn func(AnalyticsMember) error) error {
	var fnErr error
	_, _, err := e.scanAnalytics(ctx, f, "", 0, func(m AnalyticsMember) bool {
		fnErr = fn(m)
		return fnErr == nil
	})
	if err != nil {
		return err
	}
	return fnErr
}

// scanAnalytics reads members after cursor, a bounded number per read
// transaction, and passes those matching f to yield until it returns false
// or budget members were read (0: no bound). It returns where the scan
// stopped, as a cursor, and whether members may remain after it.
func (e *Engine) scanAnalytics(ctx context.Context, f AnalyticsFilter, cursor string, budget int, yield func(AnalyticsMember) bool) (last string, more bool, err error) {
	if err := f.Validate(); err != nil {
		return "", false, err
	}
	live, err := e.mustProgram()
	if err != nil {
		return "", false, err
	}
	last = cursor
	read := 0
	for {
		if err := ctx.Err(); err != nil {
			return last, false, err
		}
		n := analyticsRead
		if budget > 0 {
			n = min(n, budget-read)
		}
		var matched []AnalyticsMember
		var got int
		var lastRead string
		err := e.store.View(ctx, func(tx Tx) error {
			members, err := tx.Members(last, n)
			if err != nil {
				return err
			}
			got = len(members)
			for _, m := range members {
				lastRead = m.ID
				if counted(m) && f.match(m.Analytics) {
					matched = append(matched, AnalyticsMember{
						ID: m.ID, ExternalID: m.ExternalID, Email: m.Email, Phone: m.Phone, Name: m.Name,
						Status: m.Status, Tier: m.Tier, Points: m.Points, Analytics: analyticsView(live.prog, m.Analytics),
					})
				}
			}
			return nil
		})
		if err != nil {
			return last, false, err
		}
		read += got
		for _, m := range matched {
			if !yield(m) {
				return m.ID, true, nil
			}
		}
		if got > 0 {
			last = lastRead
		}
		if got < n {
			return last, false, nil
		}
		if budget > 0 && read >= budget {
			return last, true, nil
		}
	}
}
