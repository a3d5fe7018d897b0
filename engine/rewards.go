package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// Why a member cannot take a reward now, or a coupon cannot be used: the
// words of details.reason (docs/API.md).
const (
	ReasonNotInWindow        = "not_in_window"
	ReasonNotEligible        = "not_eligible"
	ReasonOutOfStock         = "out_of_stock"
	ReasonLimitReached       = "limit_reached"
	ReasonInsufficientPoints = "insufficient_points"

	ReasonUsed      = "used"
	ReasonExpired   = "expired"
	ReasonCancelled = "cancelled"
	ReasonBlocked   = "blocked"
)

// RewardView is a reward of the catalogue as the API shows it.
type RewardView struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Cost  int64  `json:"cost"`
	// StockLeft is null for a reward without a stock.
	StockLeft          *int64         `json:"stock_left"`
	ValidFrom          string         `json:"valid_from,omitempty"`
	ValidTo            string         `json:"valid_to,omitempty"`
	PerMember          *PerMemberView `json:"per_member,omitempty"`
	CouponExpiresAfter string         `json:"coupon_expires_after"`
}

// PerMemberView is a reward's per-member limit.
type PerMemberView struct {
	Max int64  `json:"max"`
	Per string `json:"per"`
}

// RewardOffer is a reward as one member sees it: whether they can take it
// now, and if not why.
type RewardOffer struct {
	RewardView
	Available bool    `json:"available"`
	Reason    *string `json:"reason"`
}

// RewardRequest takes a reward for a member.
type RewardRequest struct {
	ID     string `json:"id"`
	Reward string `json:"reward"`
}

func rewardView(r *rules.Reward, count *RewardCount) RewardView {
	v := RewardView{Name: r.Name, Title: r.Title, Cost: r.Cost, CouponExpiresAfter: r.CouponLifetime.String()}
	if r.StockLimited {
		left := stockLeft(r, count)
		v.StockLeft = &left
	}
	if !r.ValidFrom.IsZero() {
		v.ValidFrom = r.ValidFrom.Format(dateLayout)
	}
	if !r.ValidTo.IsZero() {
		v.ValidTo = r.ValidTo.Format(dateLayout)
	}
	if r.PerMemberMax > 0 {
		v.PerMember = &PerMemberView{Max: r.PerMemberMax, Per: string(r.PerMemberPer)}
	}
	return v
}

// stockLeft is what a reward with a stock can still issue: the stock less
// the coupons issued and not cancelled, never below zero (a stock lowered
// under what was issued leaves none).
func stockLeft(r *rules.Reward, count *RewardCount) int64 {
	if count == nil {
		return r.Stock
	}
	return max(r.Stock-(count.Issued-count.Cancelled), 0)
}

// Rewards lists the catalogue of the live rules. With a member id each
// reward says whether that member can take it now and, if not, why; a
// reward whose when fails for the member shows as not eligible, and the
// failure is logged.
func (e *Engine) Rewards(ctx context.Context, memberID string) (catalogue []RewardView, offers []RewardOffer, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, nil, err
	}
	prog := live.prog
	err = e.store.View(ctx, func(tx Tx) error {
		counts := map[string]*RewardCount{}
		for _, r := range prog.Rewards {
			c, err := tx.RewardCount(r.Name)
			if err != nil {
				return err
			}
			counts[r.Name] = c
		}
		if memberID == "" {
			catalogue = make([]RewardView, 0, len(prog.Rewards))
			for _, r := range prog.Rewards {
				catalogue = append(catalogue, rewardView(r, counts[r.Name]))
			}
			return nil
		}
		m, err := getMember(tx, memberID)
		if err != nil {
			return err
		}
		st, err := loadTakeState(tx, m, now)
		if err != nil {
			return err
		}
		offers = make([]RewardOffer, 0, len(prog.Rewards))
		for _, r := range prog.Rewards {
			if err := ctx.Err(); err != nil {
				return err
			}
			eligible, err := prog.Eligible(r, ruleMember(m), now)
			if err != nil {
				e.log.Warn("a reward's when failed on a member, who sees it as not eligible", "reward", r.Name, "member", m.ID, "err", err)
				eligible = false
			}
			o := RewardOffer{RewardView: rewardView(r, counts[r.Name]), Available: true}
			if reason := st.refusal(prog, r, counts[r.Name], eligible, now); reason != "" {
				o.Available, o.Reason = false, &reason
			}
			offers = append(offers, o)
		}
		return nil
	})
	return catalogue, offers, err
}

// takeState is what decides, with a reward and its counts, whether a
// member can take it now.
type takeState struct {
	member    *Member
	available int64
	coupons   []*Coupon
}

func loadTakeState(tx Tx, m *Member, now time.Time) (*takeState, error) {
	bal, err := balanceSummary(tx, m, now)
	if err != nil {
		return nil, err
	}
	coupons, err := tx.MemberCoupons(m.ID)
	if err != nil {
		return nil, err
	}
	return &takeState{member: m, available: bal.Available, coupons: coupons}, nil
}

// refusal returns why the member cannot take r now, or "". The reasons
// are tried in this order: outside the validity window, not eligible (the
// when, or a blocked member), out of stock, the per-member limit reached,
// too few points.
func (st *takeState) refusal(prog *rules.Program, r *rules.Reward, count *RewardCount, eligible bool, now time.Time) string {
	switch {
	case !r.ValidAt(now):
		return ReasonNotInWindow
	case !eligible || st.member.Status != StatusActive:
		return ReasonNotEligible
	case r.StockLimited && stockLeft(r, count) <= 0:
		return ReasonOutOfStock
	case r.PerMemberMax > 0 && st.taken(r.Name, prog.PeriodStart(r.PerMemberPer, now)) >= r.PerMemberMax:
		return ReasonLimitReached
	case r.Cost > st.available:
		return ReasonInsufficientPoints
	}
	return ""
}

// taken counts the coupons of reward the member took since from and did
// not cancel; coupons that bonuses issued do not count.
func (st *takeState) taken(reward string, from time.Time) int64 {
	var n int64
	for _, c := range st.coupons {
		if c.Reward == reward && c.Source == CouponTaken && c.Status != CouponCancelled && !c.IssuedAt.Before(from) {
			n++
		}
	}
	return n
}

// refuseTake is the error of a refusal reason: not enough points is
// insufficient_points, like a redemption; the rest unprocessable. Both
// carry the reason.
func refuseTake(r *rules.Reward, reason string) error {
	messages := map[string]string{
		ReasonNotInWindow:        "reward %q is not on offer now",
		ReasonNotEligible:        "the member may not take reward %q",
		ReasonOutOfStock:         "reward %q is out of stock",
		ReasonLimitReached:       "the member has taken reward %q as often as it allows for now",
		ReasonInsufficientPoints: "the member has too few points available for reward %q",
	}
	code := EUNPROCESSABLE
	if reason == ReasonInsufficientPoints {
		code = EINSUFFICIENT
	}
	return ReasonErrorf(code, reason, messages[reason], r.Name)
}

// rewardFailed makes the failure of a reward's when an unprocessable
// *Error naming the reward and where its when is.
func rewardFailed(err error) error {
	var re *rules.RuleError
	if !errors.As(err, &re) {
		return err
	}
	return &Error{Code: EUNPROCESSABLE, cause: re,
		Message: fmt.Sprintf("reward %q: its when failed for this member, who cannot take it: %v", re.Rule, re.Err),
		Details: []Detail{{Rule: "reward " + re.Rule, Line: re.Line, Column: re.Column, Message: re.Error()}}}
}

// TakeReward spends a member's points on a reward, like a redemption
// (soonest-expiring first), and issues a coupon with a code the till can
// check. It is idempotent by the request's id. Stock and the per-member
// limit are decided in the write, so concurrent takes never pass them;
// every refusal comes before the first write.
//
// The reward's when runs first in a read, outside the write lock, so that
// a slow one delays its own request only; the write runs it again only if
// the member as the rules see them changed in between.
func (e *Engine) TakeReward(ctx context.Context, memberID string, req RewardRequest) (res *RewardResult, replayed bool, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, false, err
	}
	if err := checkRecordID(req.ID); err != nil {
		return nil, false, err
	}
	if req.Reward == "" {
		return nil, false, FieldErrorf(EINVALID, "reward", "is required: the name of a reward of the catalogue")
	}
	if err := checkText("reward", req.Reward, MaxIDLen); err != nil {
		return nil, false, err
	}
	prog := live.prog
	hash := hashRequest(struct {
		Member string
		Req    RewardRequest
	}{memberID, req})
	// find answers a request already recorded from its record.
	find := func(tx Tx) (bool, error) {
		res, replayed = nil, false
		c, err := tx.CouponByID(req.ID)
		if err != nil || c == nil {
			return false, err
		}
		if c.Source != CouponTaken {
			return true, FieldErrorf(ECONFLICT, "id", "%q is the id of a coupon a bonus issued", req.ID)
		}
		res, err = replay("reward", req.ID, hash, c.RequestHash, c.Result)
		replayed = err == nil
		return true, err
	}
	r := prog.Reward(req.Reward)
	var seen rules.Member
	var eligible bool
	err = e.store.View(ctx, func(tx Tx) error {
		if done, err := find(tx); done || err != nil {
			return err
		}
		if r == nil {
			return FieldErrorf(ENOTFOUND, "reward", "no reward named %q%s", req.Reward, suggestName(req.Reward, prog))
		}
		m, err := getMember(tx, memberID)
		if err != nil {
			return err
		}
		seen = ruleMember(m)
		eligible, err = prog.Eligible(r, seen, now)
		return rewardFailed(err)
	})
	if err != nil || res != nil {
		return res, replayed, err
	}
	codes := newCouponCodes(couponCodeTries)
	entryID := newIDs(now, 1)[0]
	err = e.store.Update(ctx, func(tx Tx) error {
		if done, err := find(tx); done || err != nil {
			return err
		}
		m, err := getMember(tx, memberID)
		if err != nil {
			return err
		}
		eligible := eligible
		if rm := ruleMember(m); !sameRuleMember(rm, seen) {
			if eligible, err = prog.Eligible(r, rm, now); err != nil {
				return rewardFailed(err)
			}
		}
		st, err := loadTakeState(tx, m, now)
		if err != nil {
			return err
		}
		count, err := tx.RewardCount(r.Name)
		if err != nil {
			return err
		}
		if reason := st.refusal(prog, r, count, eligible, now); reason != "" {
			return refuseTake(r, reason)
		}
		if r.Cost > 0 {
			if err := checkSpend(tx, m, r.Cost, now); err != nil {
				return err
			}
		}
		w := writer{tx: tx, now: now, live: live}
		c, err := w.newCoupon(m, r, req.ID, CouponTaken, codes)
		if err != nil {
			return err
		}
		if r.Cost > 0 {
			if c.Draws, err = w.spend(m, r.Cost); err != nil {
				return err
			}
			c.Points = r.Cost
			if err := w.appendEntry(m, entryID, LedgerReward, -r.Cost, FormatCode(c.Code), "reward "+r.Name); err != nil {
				return err
			}
		}
		if err := tx.PutMember(m); err != nil {
			return err
		}
		bal, err := balanceSummary(tx, m, now)
		if err != nil {
			return err
		}
		c.RequestHash = hash
		c.Result = RewardResult{Coupon: c.view(), Points: -c.Points, Balance: bal}
		if err := w.recordIssue(c, count); err != nil {
			return err
		}
		res = &c.Result
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}

func suggestName(name string, prog *rules.Program) string {
	names := make([]string, len(prog.Rewards))
	for i, r := range prog.Rewards {
		names[i] = r.Name
	}
	return rules.Hint(name, names)
}

// RewardReport is what one reward's coupons came to.
type RewardReport struct {
	Reward    string `json:"reward"`
	Title     string `json:"title"`
	Issued    int64  `json:"issued"`
	Used      int64  `json:"used"`
	Expired   int64  `json:"expired"`
	Cancelled int64  `json:"cancelled"`
	// Outstanding are issued and not yet used, expired or cancelled.
	Outstanding int64 `json:"outstanding"`
	// PointsSpent on its coupons, less the points that came back.
	PointsSpent int64  `json:"points_spent"`
	StockLeft   *int64 `json:"stock_left"`
}

// RewardsReport tells, per reward, how many coupons were issued, used,
// expired and cancelled and the points spent on them, as of now: every
// reward of the live catalogue, and those no longer in it that issued
// coupons, by name.
func (e *Engine) RewardsReport(ctx context.Context) ([]RewardReport, error) {
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	var counts []*RewardCount
	err = e.store.View(ctx, func(tx Tx) error {
		counts, err = tx.RewardCounts()
		return err
	})
	if err != nil {
		return nil, err
	}
	byName := map[string]*RewardCount{}
	for _, c := range counts {
		byName[c.Reward] = c
	}
	out := []RewardReport{}
	for _, r := range live.prog.Rewards {
		rep := rewardReport(byName[r.Name], r.Name)
		rep.Title = r.Title
		if r.StockLimited {
			left := stockLeft(r, byName[r.Name])
			rep.StockLeft = &left
		}
		out = append(out, rep)
		delete(byName, r.Name)
	}
	for name, c := range byName {
		out = append(out, rewardReport(c, name))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Reward < out[j].Reward })
	return out, nil
}

func rewardReport(c *RewardCount, name string) RewardReport {
	rep := RewardReport{Reward: name}
	if c != nil {
		rep.Issued, rep.Used, rep.Expired, rep.Cancelled, rep.PointsSpent = c.Issued, c.Used, c.Expired, c.Cancelled, c.Points
		rep.Outstanding = c.Issued - c.Used - c.Expired - c.Cancelled
	}
	return rep
}
