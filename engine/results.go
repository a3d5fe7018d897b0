package engine

import "time"

// The answer types below are what the API returns. They carry their JSON
// names because the engine stores the first answer to every idempotent write
// and a retry must get it back byte for byte. Being stored, their fields
// keep their names (see types.go); files written before the binary encoding
// hold them under these JSON names, so a changed json tag keeps the old one
// for the store with `store:"json=old_name"`.

// BalanceSummary is the short balance shown on members and write answers.
type BalanceSummary struct {
	Available int64 `json:"available"`
	Pending   int64 `json:"pending"`
}

// RuleLine is one line of a purchase's breakdown.
type RuleLine struct {
	Rule   string `json:"rule"`
	Points int64  `json:"points"`
}

// TierChange tells a till the member's tier after a write.
type TierChange struct {
	Name    string `json:"name"`
	Changed bool   `json:"changed"`
}

// PurchaseResult is the answer to a purchase.
type PurchaseResult struct {
	ID           string         `json:"id"`
	MemberID     string         `json:"member_id"`
	Points       int64          `json:"points"`
	Breakdown    []RuleLine     `json:"breakdown"`
	RulesVersion int            `json:"rules_version"`
	Balance      BalanceSummary `json:"balance"`
	Tier         TierChange     `json:"tier"`
	Bonuses      []RuleLine     `json:"bonuses,omitempty"`
	// Coupons are those the purchase's promotion to a tier issued.
	Coupons []CouponView `json:"coupons,omitempty"`
}

// RefundResult is the answer to a refund.
type RefundResult struct {
	ID         string         `json:"id"`
	PurchaseID string         `json:"purchase_id"`
	Amount     string         `json:"amount"`
	Points     int64          `json:"points"`
	Balance    BalanceSummary `json:"balance"`
	// Bonuses lists bonuses the refund took back (a referral bonus, when
	// it refunds in full the purchase that paid it), as negative points.
	Bonuses []RuleLine `json:"bonuses,omitempty"`
}

// RedemptionResult is the answer to a redemption or its cancellation.
type RedemptionResult struct {
	ID        string         `json:"id"`
	Points    int64          `json:"points"`
	Reward    string         `json:"reward,omitempty"`
	Cancelled bool           `json:"cancelled,omitempty"`
	Balance   BalanceSummary `json:"balance"`
}

// AdjustmentResult is the answer to an adjustment.
type AdjustmentResult struct {
	ID      string         `json:"id"`
	Points  int64          `json:"points"`
	Reason  string         `json:"reason"`
	Balance BalanceSummary `json:"balance"`
}

// CouponView is a coupon as the API shows it.
type CouponView struct {
	Code     string `json:"code"` // grouped with dashes: K7QM-4XRT-PW
	Reward   string `json:"reward"`
	Title    string `json:"title"`
	MemberID string `json:"member_id"`
	Status   string `json:"status"`
	Source   string `json:"source"`
	// Points were spent on it.
	Points      int64     `json:"points"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	UsedAt      time.Time `json:"used_at,omitzero"`
	StoreID     string    `json:"store_id,omitempty"`
	PurchaseID  string    `json:"purchase_id,omitempty"`
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
	ExpiredAt   time.Time `json:"expired_at,omitzero"`
}

// RewardResult is the answer to taking a reward.
type RewardResult struct {
	Coupon  CouponView     `json:"coupon"`
	Points  int64          `json:"points"` // spent, as a negative number
	Balance BalanceSummary `json:"balance"`
}
