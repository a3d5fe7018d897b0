package postgres

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
)

// couponDetail is what a coupon keeps in its detail column: every field
// of engine.Coupon without a column of its own.
type couponDetail struct {
	Title          string              `json:"title"`
	Source         string              `json:"source"`
	Draws          []engine.LotDraw    `json:"draws"`
	RefundOnExpiry bool                `json:"refund_on_expiry"`
	RulesVersion   int                 `json:"rules_version"`
	RequestHash    string              `json:"request_hash"`
	Result         engine.RewardResult `json:"result"`
	UsedAt         time.Time           `json:"used_at"`
	UseID          string              `json:"use_id"`
	UseHash        string              `json:"use_hash"`
	StoreID        string              `json:"store_id"`
	PurchaseID     string              `json:"purchase_id"`
	UseResult      engine.CouponView   `json:"use_result"`
	EndedAt        time.Time           `json:"ended_at"`
	Refunded       bool                `json:"refunded"`
}

const couponCols = `code, id, member_id, reward, status, issued_at, expires_at, points, detail`

func (t *tx) coupons(what, sql string, args ...any) ([]*engine.Coupon, error) {
	var out []*engine.Coupon
	err := t.query(what, sql, args, func(rows pgx.Rows) error {
		var c engine.Coupon
		var detail []byte
		if err := rows.Scan(&c.Code, &c.ID, &c.MemberID, &c.Reward, &c.Status, &c.IssuedAt, &c.ExpiresAt, &c.Points, &detail); err != nil {
			return err
		}
		c.IssuedAt, c.ExpiresAt = c.IssuedAt.UTC(), c.ExpiresAt.UTC()
		var d couponDetail
		if err := fromJSON(detail, &d); err != nil {
			return fmt.Errorf("coupon %s: detail: %w", c.Code, err)
		}
		c.Title, c.Source, c.Draws, c.RefundOnExpiry, c.RulesVersion = d.Title, d.Source, d.Draws, d.RefundOnExpiry, d.RulesVersion
		c.RequestHash, c.Result, c.UsedAt, c.UseID, c.UseHash = d.RequestHash, d.Result, d.UsedAt.UTC(), d.UseID, d.UseHash
		c.StoreID, c.PurchaseID, c.UseResult, c.EndedAt, c.Refunded = d.StoreID, d.PurchaseID, d.UseResult, d.EndedAt.UTC(), d.Refunded
		out = append(out, &c)
		return nil
	})
	return out, err
}

func (t *tx) coupon(what, sql string, args ...any) (*engine.Coupon, error) {
	cs, err := t.coupons(what, sql, args...)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	return cs[0], nil
}

// Coupon implements engine.Tx.
func (t *tx) Coupon(code string) (*engine.Coupon, error) {
	return t.coupon("coupon "+code, `SELECT `+couponCols+` FROM coupons WHERE code = $1`, code)
}

// CouponByID implements engine.Tx.
func (t *tx) CouponByID(id string) (*engine.Coupon, error) {
	return t.coupon("coupon by id "+id, `SELECT `+couponCols+` FROM coupons WHERE id = $1`, id)
}

// PutCoupon implements engine.Tx. The partial index coupons_due follows
// the status by itself; an id another coupon holds fails the unique index
// at commit.
func (t *tx) PutCoupon(c *engine.Coupon) error {
	if c.Code == "" || c.ID == "" || c.MemberID == "" {
		return fmt.Errorf("postgres: put coupon: %w", errEmptyID)
	}
	detail, err := jsonOf(couponDetail{
		Title: c.Title, Source: c.Source, Draws: c.Draws, RefundOnExpiry: c.RefundOnExpiry, RulesVersion: c.RulesVersion,
		RequestHash: c.RequestHash, Result: c.Result, UsedAt: c.UsedAt, UseID: c.UseID, UseHash: c.UseHash,
		StoreID: c.StoreID, PurchaseID: c.PurchaseID, UseResult: c.UseResult, EndedAt: c.EndedAt, Refunded: c.Refunded,
	})
	if err != nil {
		return fmt.Errorf("postgres: put coupon %s: %w", c.Code, err)
	}
	return t.exec("put coupon "+c.Code, `INSERT INTO coupons (`+couponCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (code) DO UPDATE SET id = excluded.id, member_id = excluded.member_id, reward = excluded.reward,
			status = excluded.status, issued_at = excluded.issued_at, expires_at = excluded.expires_at,
			points = excluded.points, detail = excluded.detail`,
		c.Code, c.ID, c.MemberID, c.Reward, c.Status, c.IssuedAt, c.ExpiresAt, c.Points, detail)
}

// MemberCoupons implements engine.Tx; like every read of a member's
// records in an Update, it locks the member.
func (t *tx) MemberCoupons(memberID string) ([]*engine.Coupon, error) {
	t.lockMember(memberID)
	return t.coupons("coupons of "+memberID, `SELECT `+couponCols+` FROM coupons WHERE member_id = $1 ORDER BY issued_at, code`, memberID)
}

// DueCoupons implements engine.Tx.
func (t *tx) DueCoupons(until time.Time, after *engine.Coupon, limit int) ([]*engine.Coupon, error) {
	const q = `SELECT ` + couponCols + ` FROM coupons WHERE status = 'issued' AND expires_at <= $1`
	const order = ` ORDER BY expires_at, code LIMIT $2`
	switch {
	case after == nil:
		return t.coupons("due coupons", q+order, floorMicro(until), limitOf(limit))
	case !ceilMicro(after.ExpiresAt).Equal(after.ExpiresAt):
		// No stored stamp equals a finer one: everything after it starts
		// at the next microsecond.
		return t.coupons("due coupons", q+` AND expires_at >= $3`+order, floorMicro(until), limitOf(limit), ceilMicro(after.ExpiresAt))
	}
	return t.coupons("due coupons", q+` AND (expires_at, code) > ($3, $4)`+order,
		floorMicro(until), limitOf(limit), after.ExpiresAt, after.Code)
}

const rewardCountCols = `reward, issued, used, expired, cancelled, points`

func (t *tx) rewardCounts(what, sql string, args ...any) ([]*engine.RewardCount, error) {
	var out []*engine.RewardCount
	err := t.query(what, sql, args, func(rows pgx.Rows) error {
		var c engine.RewardCount
		if err := rows.Scan(&c.Reward, &c.Issued, &c.Used, &c.Expired, &c.Cancelled, &c.Points); err != nil {
			return err
		}
		out = append(out, &c)
		return nil
	})
	return out, err
}

// RewardCount implements engine.Tx.
func (t *tx) RewardCount(reward string) (*engine.RewardCount, error) {
	cs, err := t.rewardCounts("counts of reward "+reward, `SELECT `+rewardCountCols+` FROM reward_counts WHERE reward = $1`, reward)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	return cs[0], nil
}

// PutRewardCount implements engine.Tx.
func (t *tx) PutRewardCount(c *engine.RewardCount) error {
	if c.Reward == "" {
		return fmt.Errorf("postgres: put reward counts: %w", errEmptyID)
	}
	return t.exec("put counts of reward "+c.Reward, `INSERT INTO reward_counts (`+rewardCountCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (reward) DO UPDATE SET issued = excluded.issued, used = excluded.used, expired = excluded.expired,
			cancelled = excluded.cancelled, points = excluded.points`,
		c.Reward, c.Issued, c.Used, c.Expired, c.Cancelled, c.Points)
}

// RewardCounts implements engine.Tx.
func (t *tx) RewardCounts() ([]*engine.RewardCount, error) {
	return t.rewardCounts("reward counts", `SELECT `+rewardCountCols+` FROM reward_counts ORDER BY reward`)
}
