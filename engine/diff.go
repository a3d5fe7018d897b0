package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/loyaltyhq/loyalty/rules"
)

// DiffPurchase is a purchase to replay, from a file rather than the
// database, with the member it was made by.
type DiffPurchase struct {
	PurchaseRequest
	Member *SimMember `json:"member,omitempty"`
}

// RuleDiff is what one rule paid before and after.
type RuleDiff struct {
	Rule   string `json:"rule"`
	Before int64  `json:"before"`
	After  int64  `json:"after"`
	Change int64  `json:"change"`
}

// TierDiff is what the purchases made at one tier earned before and after.
type TierDiff struct {
	Tier      string `json:"tier"`
	Purchases int    `json:"purchases"`
	Before    int64  `json:"before"`
	After     int64  `json:"after"`
	Change    int64  `json:"change"`
}

// MemberTierChange is a member who would qualify for another tier.
type MemberTierChange struct {
	MemberID   string `json:"member_id"`
	ExternalID string `json:"external_id,omitempty"`
	Before     string `json:"before"`
	After      string `json:"after"`
}

// DiffReport compares two versions of the rules over the same purchases.
type DiffReport struct {
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Purchases int       `json:"purchases"`
	Truncated bool      `json:"truncated,omitempty"`
	Before    int64     `json:"points_before"`
	After     int64     `json:"points_after"`
	Change    int64     `json:"points_change"`
	// The points valued at each program's analytics.point_cost: what the
	// change costs the business.
	CostBefore  string             `json:"cost_before"`
	CostAfter   string             `json:"cost_after"`
	CostChange  string             `json:"cost_change"`
	Rules       []RuleDiff         `json:"rules"`
	Tiers       []TierDiff         `json:"tiers"`
	TierChanges []MemberTierChange `json:"tier_changes"`
	// TierChangesTotal counts every member whose tier would change; the list
	// above stops at MaxTierChanges.
	TierChangesTotal int `json:"tier_changes_total"`
	// Rewards is what the catalogue gains, loses and changes.
	Rewards RewardsDiff `json:"rewards"`
	Notes   []string    `json:"notes,omitempty"`
}

// RewardsDiff compares two catalogues: rewards by name, and the rewards
// the bonuses and tier levels issue.
type RewardsDiff struct {
	Added   []string       `json:"added"`
	Removed []string       `json:"removed"`
	Changed []RewardChange `json:"changed"`
	// Issued lists changes of the rewards that bonuses and tier levels
	// issue ("bonuses.birthday.reward", "tiers.levels.gold.reward").
	Issued []FieldChange `json:"issued"`
}

// RewardChange is a reward whose terms differ.
type RewardChange struct {
	Reward  string        `json:"reward"`
	Changes []FieldChange `json:"changes"`
}

// FieldChange is one setting before and after, as the rules file writes
// it ("" for unset).
type FieldChange struct {
	Field  string `json:"field"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// Diff limits, so a diff over a large database stays an interactive tool.
const (
	MaxDiffPurchases = 200_000
	MaxTierChanges   = 1000
)

// diffAcc accumulates a DiffReport.
type diffAcc struct {
	rep   *DiffReport
	rules map[string]*RuleDiff
	tiers map[string]*TierDiff
}

func (a *diffAcc) add(tier string, before, after rules.Breakdown) {
	a.rep.Purchases++
	a.rep.Before += before.Total
	a.rep.After += after.Total
	t := a.tiers[tier]
	if t == nil {
		t = &TierDiff{Tier: tier}
		a.tiers[tier] = t
	}
	t.Purchases++
	t.Before += before.Total
	t.After += after.Total
	for _, r := range before.Rules {
		a.rule(r.Rule).Before += r.Points
	}
	for _, r := range after.Rules {
		a.rule(r.Rule).After += r.Points
	}
}

func (a *diffAcc) rule(name string) *RuleDiff {
	r := a.rules[name]
	if r == nil {
		r = &RuleDiff{Rule: name}
		a.rules[name] = r
	}
	return r
}

func (a *diffAcc) finish(before, after *rules.Program) *DiffReport {
	rep := a.rep
	rep.Change = rep.After - rep.Before
	digits := int32(after.CurrencyDigits)
	cb := before.Analytics.PointCost.Mul(decimal.NewFromInt(rep.Before)).Round(digits)
	ca := after.Analytics.PointCost.Mul(decimal.NewFromInt(rep.After)).Round(digits)
	rep.CostBefore, rep.CostAfter = cb.StringFixed(digits), ca.StringFixed(digits)
	rep.CostChange = ca.Sub(cb).StringFixed(digits)
	rep.Rules, rep.Tiers = []RuleDiff{}, []TierDiff{}
	for _, r := range a.rules {
		r.Change = r.After - r.Before
		rep.Rules = append(rep.Rules, *r)
	}
	sort.Slice(rep.Rules, func(i, j int) bool { return rep.Rules[i].Rule < rep.Rules[j].Rule })
	for _, t := range a.tiers {
		t.Change = t.After - t.Before
		rep.Tiers = append(rep.Tiers, *t)
	}
	sort.Slice(rep.Tiers, func(i, j int) bool { return rep.Tiers[i].Tier < rep.Tiers[j].Tier })
	if rep.TierChanges == nil {
		rep.TierChanges = []MemberTierChange{}
	}
	rep.Rewards = diffRewards(before, after)
	return rep
}

// diffRewards compares the catalogues of two programs.
func diffRewards(before, after *rules.Program) RewardsDiff {
	d := RewardsDiff{Added: []string{}, Removed: []string{}, Changed: []RewardChange{}, Issued: []FieldChange{}}
	for _, r := range after.Rewards {
		old := before.Reward(r.Name)
		if old == nil {
			d.Added = append(d.Added, r.Name)
			continue
		}
		var changes []FieldChange
		a, b := rewardTerms(old), rewardTerms(r)
		for i := range a {
			if a[i].value != b[i].value {
				changes = append(changes, FieldChange{Field: a[i].field, Before: a[i].value, After: b[i].value})
			}
		}
		if len(changes) > 0 {
			d.Changed = append(d.Changed, RewardChange{Reward: r.Name, Changes: changes})
		}
	}
	for _, r := range before.Rewards {
		if after.Reward(r.Name) == nil {
			d.Removed = append(d.Removed, r.Name)
		}
	}
	issued := func(p *rules.Program) map[string]string {
		m := map[string]string{"bonuses.birthday.reward": p.Bonuses.BirthdayReward}
		for _, l := range p.Tiers.Levels {
			m["tiers.levels."+l.Name+".reward"] = l.Reward
		}
		return m
	}
	was, is := issued(before), issued(after)
	fields := map[string]bool{}
	for f := range was {
		fields[f] = true
	}
	for f := range is {
		fields[f] = true
	}
	for f := range fields {
		if was[f] != is[f] {
			d.Issued = append(d.Issued, FieldChange{Field: f, Before: was[f], After: is[f]})
		}
	}
	sort.Slice(d.Issued, func(i, j int) bool { return d.Issued[i].Field < d.Issued[j].Field })
	return d
}

type rewardTerm struct{ field, value string }

// rewardTerms writes a reward's terms as the rules file does, in the
// order of the file's keys.
func rewardTerms(r *rules.Reward) []rewardTerm {
	date := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(dateLayout)
	}
	stock, perMember := "", ""
	if r.StockLimited {
		stock = strconv.FormatInt(r.Stock, 10)
	}
	if r.PerMemberMax > 0 {
		perMember = fmt.Sprintf("%d per %s", r.PerMemberMax, r.PerMemberPer)
	}
	return []rewardTerm{
		{"title", r.Title},
		{"cost", strconv.FormatInt(r.Cost, 10)},
		{"when", r.When},
		{"valid.from", date(r.ValidFrom)},
		{"valid.to", date(r.ValidTo)},
		{"stock", stock},
		{"per_member", perMember},
		{"coupon.expires_after", r.CouponLifetime.String()},
		{"refund_on_expiry", strconv.FormatBool(r.RefundOnExpiry)},
	}
}

func newDiffAcc(from, to time.Time) *diffAcc {
	return &diffAcc{
		rep:   &DiffReport{From: from, To: to, Notes: []string{"per-member caps (max_per_member, per_day…) are not applied when replaying"}},
		rules: map[string]*RuleDiff{}, tiers: map[string]*TierDiff{},
	}
}

// DiffRules replays the purchases of the database that occurred since
// `since` through two programs and reports, per rule and per tier, the
// points before and after, and the members who would qualify for another
// tier. Members are seen as they are now.
func (e *Engine) DiffRules(ctx context.Context, before, after *rules.Program, since time.Time) (*DiffReport, error) {
	now := e.Now()
	acc := newDiffAcc(since, now)
	err := e.store.View(ctx, func(tx Tx) error {
		ps, err := tx.PurchasesBetween(since, now.Add(time.Nanosecond), MaxDiffPurchases+1)
		if err != nil {
			return err
		}
		if len(ps) > MaxDiffPurchases {
			ps, acc.rep.Truncated = ps[:MaxDiffPurchases], true
		}
		members := map[string]*Member{}
		for _, p := range ps {
			if err := ctx.Err(); err != nil {
				return err
			}
			m := members[p.MemberID]
			if m == nil {
				if m, err = getMember(tx, p.MemberID); err != nil {
					return err
				}
				members[p.MemberID] = m
			}
			rm := ruleMember(m)
			rm.Tier = p.EarnedAtTier
			in := rules.EarnInput{Purchase: rules.Purchase{
				Amount: p.Amount, Currency: p.Currency, StoreID: p.StoreID, TerminalID: p.TerminalID,
				OccurredAt: p.OccurredAt, Items: ruleItems(p.Items),
			}, Member: rm}
			if err := acc.replay(before, after, in, p.EarnedAtTier); err != nil {
				return err
			}
		}
		return tierChanges(ctx, tx, before, after, now, acc.rep)
	})
	if err != nil {
		return nil, err
	}
	return acc.finish(before, after), nil
}

func (a *diffAcc) replay(before, after *rules.Program, in rules.EarnInput, tier string) error {
	b, err := before.Earn(in)
	if err != nil {
		return Errorf(EUNPROCESSABLE, "old rules: %v", err)
	}
	c, err := after.Earn(in)
	if err != nil {
		return Errorf(EUNPROCESSABLE, "new rules: %v", err)
	}
	a.add(tier, b, c)
	return nil
}

// DiffPurchases replays purchases given as data (no database) through two
// programs.
func DiffPurchases(before, after *rules.Program, purchases []DiffPurchase, now time.Time) (*DiffReport, error) {
	acc := newDiffAcc(time.Time{}, now)
	for i := range purchases {
		p := &purchases[i]
		if p.ID == "" {
			p.ID = "replay"
		}
		if p.MemberID == "" && p.MemberExternalID == "" {
			p.MemberID = simMemberID
		}
		d, err := (&Engine{}).checkPurchase(&p.PurchaseRequest, before, now)
		if err != nil {
			return nil, err
		}
		sm := p.Member
		if sm == nil {
			sm = &SimMember{}
		}
		m, err := simMember(before, sm, now)
		if err != nil {
			return nil, err
		}
		in := rules.EarnInput{Purchase: rules.Purchase{
			Amount: d.amount, Currency: p.Currency, StoreID: p.StoreID, TerminalID: p.TerminalID,
			OccurredAt: d.occurredAt, Items: ruleItems(d.items),
		}, Member: ruleMember(m)}
		if err := acc.replay(before, after, in, m.Tier); err != nil {
			return nil, err
		}
	}
	return acc.finish(before, after), nil
}

// tierChanges lists members whose metric qualifies them for a different
// tier under the new rules than under the old.
func tierChanges(ctx context.Context, tx Tx, before, after *rules.Program, now time.Time, rep *DiffReport) error {
	since := before.WindowStart(now)
	if s := after.WindowStart(now); s.Before(since) {
		since = s
	}
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		members, err := tx.Members(last, 1000)
		if err != nil {
			return err
		}
		for _, m := range members {
			last = m.ID
			entries, err := tx.Metrics(m.ID, since)
			if err != nil {
				return err
			}
			b := before.Tiers.Levels[before.Tiers.Qualified(newSeries(before, entries).value(now))].Name
			a := after.Tiers.Levels[after.Tiers.Qualified(newSeries(after, entries).value(now))].Name
			if a == b {
				continue
			}
			rep.TierChangesTotal++
			if len(rep.TierChanges) < MaxTierChanges {
				rep.TierChanges = append(rep.TierChanges, MemberTierChange{MemberID: m.ID, ExternalID: m.ExternalID, Before: b, After: a})
			}
		}
		if len(members) < 1000 {
			return nil
		}
	}
}
