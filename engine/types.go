package engine

import (
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// The records below, AnalyticsSummary and every struct they hold (the
// answer types of results.go, rules.RuleResult) are what the store keeps on
// disk, each field under its Go name. Renaming a field would read it as zero
// in every existing database: keep the old stored name with a struct tag,
//
//	TotalSpend int64 `store:"name=LifetimeSpend"`
//
// and removing a field or changing its type needs a store migration. After
// adding a field, record it: go test ./store -run TestFormat -update (the
// test fails until then, and on a rename without the tag). store/doc.go
// has the details.

// Member statuses.
const (
	StatusActive  = "active"
	StatusBlocked = "blocked"
	// StatusMerged is a member merged into another (MergedInto): their
	// identifiers find the survivor, who holds their points.
	StatusMerged = "merged"
	// StatusErased is a member whose personal data was erased: the
	// record stays so that the books add up, and nothing finds it by a
	// card, an email or a phone.
	StatusErased = "erased"
)

// Member is a member of the program as stored. Money is in minor units.
type Member struct {
	ID         string
	ExternalID string
	Email      string
	Phone      string
	Name       string
	Birthday   string // YYYY-MM-DD, or empty
	ReferrerID string
	Status     string
	EnrolledAt time.Time
	Attributes map[string]string
	// MergedInto is the member this one was merged into (StatusMerged).
	MergedInto string

	Tier      string
	TierSince time.Time
	// TierByPromotion is set when the member reached the tier by qualifying
	// for it; grace protects such members only while the purchases that
	// qualified them still stand (a refund undoes the qualification).
	TierByPromotion bool

	// Points is the balance: the sum of the ledger. It equals the sum of the
	// remaining points of the member's lots minus Debt.
	Points int64
	// Debt is points taken back (by refunds) that no lot could cover; the
	// next earnings repay it before they create lots.
	Debt           int64
	LifetimeEarned int64
	LifetimeSpend  int64 // net of refunds
	PurchaseCount  int64
	LastPurchaseAt time.Time
	// LedgerSeq is the sequence number of the member's newest ledger entry.
	LedgerSeq uint64
	// PointsRedeemed (net of cancellations) and RefundedSpend let the
	// analytics job weigh what a member costs without reading the ledger.
	PointsRedeemed int64
	RefundedSpend  int64

	Analytics *Analytics
}

// Segments and lifecycle stages of Analytics; docs/ANALYTICS.md defines them.
const (
	SegmentMVC     = "mvc" // most valuable: top share by realised value
	SegmentMGC     = "mgc" // most growable: top share by potential value
	SegmentBZC     = "bzc" // below zero: costs more than their margin
	SegmentRegular = "regular"

	LifecycleNew       = "new"
	LifecycleGrowing   = "growing"
	LifecycleMature    = "mature"
	LifecycleDeclining = "declining"
	LifecycleChurned   = "churned"
)

// Analytics is the customer-value picture of a member as of ComputedAt,
// computed by the analytics job. Money is in minor units.
type Analytics struct {
	ComputedAt time.Time
	Segment    string
	Lifecycle  string
	ChurnRisk  bool
	CLV        int64
	RFM        string // R, F and M scores as "545"; empty when not active
	// RecencyDays is whole days since the last purchase; -1 for never.
	RecencyDays int64
	Frequency   int64 // purchases in the window
	Monetary    int64 // spend in the window, net of refunds
	// RScore, FScore and MScore are quintiles 1–5 among active members; 0
	// for a member with no purchase in the window.
	RScore, FScore, MScore int
	// UsualInterval is the mean time between purchases in the window; zero
	// when there are fewer than two.
	UsualInterval  time.Duration
	RealisedValue  int64
	PotentialValue int64
	Referrals      int64 // members who name this one as referrer
	ReferredSpend  int64 // their lifetime spend, net of refunds
}

// Ledger entry types.
const (
	LedgerEarn         = "earn"
	LedgerBonus        = "bonus"
	LedgerRedeem       = "redeem"
	LedgerRedeemCancel = "redeem_cancel"
	LedgerRefund       = "refund"
	LedgerExpire       = "expire"
	LedgerAdjust       = "adjust"
	// LedgerReward spends points on a reward's coupon; Ref is the code.
	LedgerReward = "reward"
	// LedgerRewardRefund gives them back: the coupon was cancelled, or
	// expired unused from a reward with refund_on_expiry. Ref is the code.
	LedgerRewardRefund = "reward_refund"
	// LedgerTransferOut and LedgerTransferIn move points between members;
	// Ref is the transfer's id.
	LedgerTransferOut = "transfer_out"
	LedgerTransferIn  = "transfer_in"
	// LedgerMergeOut and LedgerMergeIn move a merged member's balance to
	// the survivor; Ref is the other member's id.
	LedgerMergeOut = "merge_out"
	LedgerMergeIn  = "merge_in"
	// LedgerErase forfeits the balance of an erased member.
	LedgerErase = "erase"
	// LedgerImport is the opening balance of an imported member.
	LedgerImport = "import"
)

// LedgerEntry is one change of a member's points. The ledger is append-only.
type LedgerEntry struct {
	ID           string
	MemberID     string
	Seq          uint64 // 1, 2, 3… per member, in time order
	Type         string
	Points       int64
	BalanceAfter int64
	At           time.Time
	Ref          string // purchase, refund, redemption or adjustment id
	RulesVersion int
	Note         string
}

// Lot is points from one earning (or positive adjustment) with their expiry.
type Lot struct {
	ID          string
	MemberID    string
	Points      int64
	Remaining   int64
	EarnedAt    time.Time
	AvailableAt time.Time // before this the points are pending
	ExpiresAt   time.Time // zero: never
	Ref         string
}

// MetricEntry is one contribution to the tier metric, dated when the
// purchase occurred so that it leaves the rolling window on time. Refunds
// add negative entries at the purchase's time.
type MetricEntry struct {
	At     time.Time
	Spend  int64
	Points int64
	Visits int64
}

// PurchaseItem is one line of a purchase.
type PurchaseItem struct {
	SKU      string
	Category string
	Quantity int64
	Amount   int64
}

// Purchase is a recorded purchase and the answer it was given.
type Purchase struct {
	ID           string
	MemberID     string
	StoreID      string
	TerminalID   string
	OccurredAt   time.Time
	RecordedAt   time.Time
	Currency     string
	Amount       int64
	Items        []PurchaseItem
	Points       int64
	Breakdown    []rules.RuleResult
	RulesVersion int
	// EarnedAtTier is the tier the purchase earned at (before any promotion
	// it caused), so a replay under other rules uses the same tier.
	EarnedAtTier string
	RequestHash  string
	Result       PurchaseResult

	RefundedAmount int64
	RefundedPoints int64
	Refunds        []string
	// What the refunds so far took back, so later refunds never take more
	// than was earned: points per rule, and per rule and line for per-item
	// rules; quantity and amount refunded per line.
	TakenByRule     map[string]int64
	TakenByLine     map[string][]int64
	RefundedQty     []int64
	RefundedLineAmt []int64

	// Referral is the referral bonus the purchase paid, if any, so that a
	// full refund of it takes the bonus back.
	Referral *ReferralGrant
}

// ReferralGrant is a referral bonus as a purchase of the referee paid it.
type ReferralGrant struct {
	ReferrerID     string
	RefereePoints  int64
	ReferrerPoints int64
	// TakenBack is set once a full refund of the purchase took both back.
	TakenBack bool
}

// Refund is a recorded refund of (part of) a purchase.
type Refund struct {
	ID          string
	PurchaseID  string
	MemberID    string
	At          time.Time
	Amount      int64
	Items       []PurchaseItem
	Points      int64 // taken back, as a negative number
	RequestHash string
	Result      RefundResult
}

// LotDraw records points taken from one lot, so a cancellation can give
// them back to the lot they came from.
type LotDraw struct {
	LotID  string
	Points int64
}

// Redemption is a recorded spending of points.
type Redemption struct {
	ID          string
	MemberID    string
	At          time.Time
	Points      int64 // spent, as a positive number
	Reward      string
	Draws       []LotDraw
	Cancelled   bool
	CancelledAt time.Time
	RequestHash string
	Result      RedemptionResult
}

// Adjustment is a recorded manual change of points by an operator.
type Adjustment struct {
	ID          string
	MemberID    string
	At          time.Time
	Points      int64
	Reason      string
	By          string
	RequestHash string
	Result      AdjustmentResult
}

// Transfer is a recorded move of points from one member to another.
type Transfer struct {
	ID           string
	FromMemberID string
	ToMemberID   string
	At           time.Time
	Points       int64
	Reason       string
	// Draws are the parts of the sender's lots that moved; each became a
	// lot of the receiver with the same expiry.
	Draws       []LotDraw
	RequestHash string
	Result      TransferResult
}

// RulesVersion is one accepted version of the rules file.
type RulesVersion struct {
	Version  int
	Hash     string
	Source   string
	LoadedAt time.Time
	By       string // API key name, or RulesByFile
}

// JobRun records one run of a scheduled job.
type JobRun struct {
	Name       string
	StartedAt  time.Time
	FinishedAt time.Time
	Processed  int64
	Error      string
}

// Event is one change that other systems follow, through the events feed
// and webhooks. It is written in the transaction of the change it
// reports, so it exists if and only if the change committed.
type Event struct {
	// ID is unique and stable ("evt_" and 32 hex digits): the webhook-id
	// of every delivery of the event.
	ID       string
	Seq      uint64 // assigned by the store, increasing (Store: Events)
	Type     string
	MemberID string    // the member it is about, if any
	At       time.Time // when the change happened, engine time
	// Payload is the event's data object as JSON, in the shape the
	// catalogue of docs/API.md gives for its type.
	Payload []byte
	// Notice is the data of an expiry notice written before events had a
	// payload (string values); read, never written.
	Notice map[string]string `json:"Data" store:"name=Data"`
}

// Coupon statuses. A coupon is issued, then used, expired or cancelled;
// an admin may cancel a used one too.
const (
	CouponIssued    = "issued"
	CouponUsed      = "used"
	CouponExpired   = "expired"
	CouponCancelled = "cancelled"
)

// How a coupon came to be.
const (
	CouponTaken    = "taken"    // the member took it, spending its cost
	CouponBirthday = "birthday" // the birthday bonus issued it
	CouponTier     = "tier"     // a promotion to a tier issued it
)

// Coupon is a reward issued to a member: a code the till checks and burns.
type Coupon struct {
	// Code is the canonical form: CodeLength characters of the code
	// alphabet, without dashes (FormatCode groups it).
	Code string
	// ID is the client id of the request that took it, or names the bonus
	// that issued it ("birthday:MEMBER:YEAR"); unique like the code.
	ID       string
	MemberID string
	Reward   string
	Title    string
	Source   string
	Status   string
	IssuedAt time.Time
	// ExpiresAt is when it stops being usable.
	ExpiresAt time.Time
	// Points were spent on it, from the lots Draws name.
	Points int64
	Draws  []LotDraw
	// RefundOnExpiry is the reward's promise when the coupon was issued:
	// the points come back if it expires unused.
	RefundOnExpiry bool
	RulesVersion   int
	RequestHash    string
	Result         RewardResult // the answer to the request that took it

	// The use: when, by which request, at which store and purchase, and
	// the answer it was given.
	UsedAt     time.Time
	UseID      string
	UseHash    string
	StoreID    string
	PurchaseID string
	UseResult  CouponView

	// EndedAt is when the coupon was cancelled or expired.
	EndedAt time.Time
	// Refunded is set once its points came back.
	Refunded bool
}

// RewardCount holds the running counts of one reward's coupons, kept with
// every change of a coupon. Issued counts every coupon ever issued; Used,
// Expired and Cancelled count those in that status now (a used coupon an
// admin cancels moves from Used to Cancelled). The stock left is the
// reward's stock less Issued and plus Cancelled.
type RewardCount struct {
	Reward    string
	Issued    int64
	Used      int64
	Expired   int64
	Cancelled int64
	// Points spent on its coupons, less the points that came back.
	Points int64
}
