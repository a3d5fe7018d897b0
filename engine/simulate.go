package engine

import (
	"context"
	"sort"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// SimMember is a hypothetical member for a simulation: the fields rules can
// see. Money is a decimal string.
type SimMember struct {
	Tier          string            `json:"tier,omitempty"`
	EnrolledAt    string            `json:"enrolled_at,omitempty"`
	Birthday      string            `json:"birthday,omitempty"`
	PurchaseCount int64             `json:"purchase_count,omitempty"`
	LifetimeSpend string            `json:"lifetime_spend,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	Segment       string            `json:"segment,omitempty"`
	Lifecycle     string            `json:"lifecycle,omitempty"`
	ChurnRisk     bool              `json:"churn_risk,omitempty"`
	CLV           string            `json:"clv,omitempty"`
	RFM           string            `json:"rfm,omitempty"`
}

// SimulateRequest asks what a purchase would earn, under the live rules or
// the rules text given, for a stored member or a hypothetical one.
type SimulateRequest struct {
	Rules    string          `json:"rules,omitempty"`
	MemberID string          `json:"member_id,omitempty"`
	Member   *SimMember      `json:"member,omitempty"`
	Purchase PurchaseRequest `json:"purchase"`
}

// simMemberID names the hypothetical member inside a simulation.
const simMemberID = "simulated-member"

// Simulate answers exactly as Purchase would, through the same code, but
// stores nothing: writes go to an overlay on a read transaction.
func (e *Engine) Simulate(ctx context.Context, req SimulateRequest) (*PurchaseResult, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	if req.Rules != "" {
		prog, err := e.CheckRules(ctx, "rules", []byte(req.Rules))
		if err != nil {
			return nil, err
		}
		live = &liveRules{prog: prog}
	}
	prog := live.prog
	var hypo *Member
	switch {
	case req.Member != nil && req.MemberID != "":
		return nil, Errorf(EINVALID, "give member_id or member, not both")
	case req.Member != nil:
		if hypo, err = simMember(prog, req.Member, now); err != nil {
			return nil, err
		}
		req.Purchase.MemberID, req.Purchase.MemberExternalID = simMemberID, ""
	case req.MemberID != "":
		req.Purchase.MemberID, req.Purchase.MemberExternalID = req.MemberID, ""
	}
	if req.Purchase.ID == "" {
		req.Purchase.ID = "simulation"
	}
	d, err := e.checkPurchase(&req.Purchase, prog, now)
	if err != nil {
		return nil, err
	}
	var res *PurchaseResult
	err = e.store.View(ctx, func(base Tx) error {
		tx := newDryTx(base, hypo)
		m, err := e.purchaseMember(tx, &req.Purchase)
		if err != nil {
			return err
		}
		res, err = e.applyPurchase(writer{tx: tx, now: now, live: live}, m, &req.Purchase, d, "", newIDs(now, 6), nil)
		return err
	})
	return res, err
}

func simMember(prog *rules.Program, sm *SimMember, now time.Time) (*Member, error) {
	m := &Member{
		ID: simMemberID, Status: StatusActive, Tier: sm.Tier, EnrolledAt: now, TierSince: now,
		Birthday: sm.Birthday, PurchaseCount: sm.PurchaseCount, Attributes: sm.Attributes,
		Analytics: &Analytics{Segment: sm.Segment, Lifecycle: sm.Lifecycle, ChurnRisk: sm.ChurnRisk, RFM: sm.RFM},
	}
	if m.Tier == "" {
		m.Tier = prog.Tiers.Levels[0].Name
	} else if prog.Tiers.Index(m.Tier) < 0 {
		return nil, FieldErrorf(EINVALID, "member.tier", "no tier named %q", m.Tier)
	}
	var err error
	if m.EnrolledAt, err = parseTime("member.enrolled_at", sm.EnrolledAt, now); err != nil {
		return nil, err
	}
	if sm.LifetimeSpend != "" {
		if m.LifetimeSpend, err = parseMoney(prog, "member.lifetime_spend", sm.LifetimeSpend, MaxMemberTotal); err != nil {
			return nil, err
		}
	}
	if sm.CLV != "" {
		if m.Analytics.CLV, err = parseMoney(prog, "member.clv", sm.CLV, MaxMemberTotal); err != nil {
			return nil, err
		}
	}
	return m, checkBirthday(sm.Birthday, now)
}

// dryTx lets a purchase run against a read transaction: what it writes is
// kept in memory and read back, and nothing reaches the store.
type dryTx struct {
	Tx
	members map[string]*Member
	lots    map[string]*Lot
	metrics map[string][]MetricEntry
}

func newDryTx(base Tx, hypo *Member) *dryTx {
	d := &dryTx{Tx: base, members: map[string]*Member{}, lots: map[string]*Lot{}, metrics: map[string][]MetricEntry{}}
	if hypo != nil {
		d.members[hypo.ID] = hypo
	}
	return d
}

func (d *dryTx) Member(id string) (*Member, error) {
	if m, ok := d.members[id]; ok {
		return m.clone(), nil
	}
	return d.Tx.Member(id)
}

func (d *dryTx) PutMember(m *Member) error {
	d.members[m.ID] = m.clone()
	return nil
}

func (d *dryTx) PutLot(l *Lot) error {
	c := *l
	d.lots[l.ID] = &c
	return nil
}

func (d *dryTx) OpenLots(memberID string) ([]*Lot, error) {
	var out []*Lot
	if memberID != simMemberID {
		base, err := d.Tx.OpenLots(memberID)
		if err != nil {
			return nil, err
		}
		for _, l := range base {
			if _, changed := d.lots[l.ID]; !changed {
				out = append(out, l)
			}
		}
	}
	for _, l := range d.lots {
		if l.MemberID == memberID && l.Remaining > 0 {
			c := *l
			out = append(out, &c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return lotBefore(out[i], out[j]) })
	return out, nil
}

// lotBefore orders lots as the store does: soonest expiry first, lots that
// never expire last.
func lotBefore(a, b *Lot) bool {
	switch {
	case a.ExpiresAt.IsZero():
		return false
	case b.ExpiresAt.IsZero():
		return true
	}
	return a.ExpiresAt.Before(b.ExpiresAt)
}

func (d *dryTx) AddMetric(memberID string, e MetricEntry) error {
	d.metrics[memberID] = append(d.metrics[memberID], e)
	return nil
}

func (d *dryTx) Metrics(memberID string, since time.Time) ([]MetricEntry, error) {
	var out []MetricEntry
	if memberID != simMemberID {
		base, err := d.Tx.Metrics(memberID, since)
		if err != nil {
			return nil, err
		}
		out = base
	}
	for _, e := range d.metrics[memberID] {
		if !e.At.Before(since) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (d *dryTx) RuleUses(memberID, rule, period string) (int64, error) {
	if memberID == simMemberID {
		return 0, nil
	}
	return d.Tx.RuleUses(memberID, rule, period)
}

func (d *dryTx) AddRuleUse(string, string, string, int64) error { return nil }
func (d *dryTx) AppendLedger(*LedgerEntry) error                { return nil }
func (d *dryTx) PutPurchase(*Purchase) error                    { return nil }
func (d *dryTx) Mark(string) error                              { return nil }
func (d *dryTx) PutCoupon(*Coupon) error                        { return nil }
func (d *dryTx) PutRewardCount(*RewardCount) error              { return nil }
func (d *dryTx) AppendEvent(*Event) error                       { return nil }
