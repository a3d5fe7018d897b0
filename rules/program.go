package rules

import (
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/shopspring/decimal"
	"go.yaml.in/yaml/v3"
)

// Program is a compiled, validated rules file. It is immutable once built, so
// the engine can share one pointer between concurrent purchases and swap it
// atomically when a new version is published.
type Program struct {
	Name           string
	Currency       string // ISO 4217 code, upper case
	CurrencyDigits int    // minor-unit exponent: 2 for USD/EUR, 0 for JPY
	Location       *time.Location

	Points Points
	Tiers  Tiers
	// Rules is the earn list in file order. It is not called Earn because
	// that is the method that evaluates it.
	Rules   []*EarnRule
	Bonuses Bonuses
	// Rewards is the catalogue in file order.
	Rewards []*Reward
	// Jobs has an entry for every known job, defaulted if absent, in the
	// order of JobNames, so listings do not depend on how the file is
	// written.
	Jobs []Job
	// Analytics parameterises the analytics job, defaulted if absent.
	Analytics Analytics
	// Events configures the feed, defaulted if absent.
	Events Events
	// Limits bound the work of the earn rules on one purchase; DefaultLimits
	// unless the file has a limits section.
	Limits Limits

	Source []byte // the file as given
	Hash   string // hex sha256 of Source

	file   string               // the name Parse was given, for positioned errors
	tier   *tierShape           // the tier variable of expressions, one value per level
	states *sync.Pool           // of *evalState, so Earn does not allocate its environment
	byName map[string]*EarnRule // Rules by name
	// rewardByName holds Rewards by name.
	rewardByName map[string]*Reward
	// literals are texts the expressions compare with ("coffee"), for
	// the edge cases to use.
	literals []string
	cost     fixedCost
}

// fixedCost sums what the rules cost when no expression is metered: once
// per purchase, and once per item for for_each rules.
type fixedCost struct {
	once, perItem int64
	metered       bool
}

func (c *fixedCost) add(r *EarnRule) {
	n := r.whenCost + r.pointsCost
	if r.ForEachItem {
		c.perItem += n
	} else {
		c.once += n
	}
	c.metered = c.metered || r.metered
}

// FixedCost returns the most steps the earn rules can take on a purchase
// of that many items, and true, when that is known before they run: when
// no expression has a loop or an operation whose cost grows with its data.
func (p *Program) FixedCost(items int) (int64, bool) {
	if p.cost.metered {
		return 0, false
	}
	return p.cost.once + p.cost.perItem*int64(items), true
}

// Rule returns the earn rule of that name, or nil.
func (p *Program) Rule(name string) *EarnRule { return p.byName[name] }

// Rounding says how a rule's fractional result becomes whole points.
type Rounding string

// Roundings a rules file may name.
const (
	RoundFloor   Rounding = "floor"
	RoundNearest Rounding = "nearest" // half away from zero
	RoundCeil    Rounding = "ceil"
)

// Duration is a span written as 30d, 12mo, 1y or 36h. Months and years are
// calendar months, so they are kept apart from the fixed part.
type Duration struct {
	Months int
	Fixed  time.Duration
}

// Points holds rounding, the pending period and expiry.
type Points struct {
	Rounding Rounding
	Pending  Duration
	Expiry   Expiry
}

// Expiry says when earned points expire. A zero After with an empty At means
// points never expire.
type Expiry struct {
	After        Duration
	At           string // "", "end_of_month", "end_of_quarter" or "end_of_year"
	NotifyBefore Duration
}

// Metric is what tier qualification sums over the window.
type Metric string

// Metrics a rules file may name.
const (
	MetricSpend  Metric = "spend"  // purchase amounts, in minor units
	MetricPoints Metric = "points" // points earned
	MetricVisits Metric = "visits" // number of purchases
)

// Tiers describes levels and how members move between them.
type Tiers struct {
	Metric       Metric
	Window       Duration // rolling window; zero when CalendarYear
	CalendarYear bool
	Downgrade    string // "one_step" or "to_qualified"
	Grace        Duration
	Levels       []Level // ascending thresholds; Levels[0].Threshold is 0
}

// Level is one tier. Threshold is in the metric's unit: minor units of money
// for spend, points for points, purchases for visits.
type Level struct {
	Name       string
	Threshold  int64
	Multiplier decimal.Decimal
	// Reward names the reward a member gets a coupon of when promoted to
	// the level; "" for none.
	Reward string
	Extra  map[string]any // other keys given on the level, for expressions
}

// Bonuses are points for events other than purchases.
type Bonuses struct {
	Enrol    int64
	Referral ReferralBonus
	Birthday int64
	// BirthdayReward names the reward a member gets a coupon of on their
	// birthday, besides or instead of the points; "" for none.
	BirthdayReward string
}

// ReferralBonus pays both sides once the referee has made a first purchase.
type ReferralBonus struct {
	Referrer int64
	Referee  int64
	After    string // "first_purchase"
}

// Job is a scheduled job and its cron spec (5 fields or @daily style).
type Job struct {
	Name     string
	Schedule string
}

// EarnRule is one compiled rule of the earn list.
type EarnRule struct {
	Name           string
	ForEachItem    bool
	ActiveFrom     time.Time // zero: no start; a date in the program's zone, inclusive
	ActiveUntil    time.Time // zero: no end; inclusive of the whole day
	MaxPerPurchase int64     // 0: no cap
	MaxPerMember   int64     // purchases the rule may earn on, ever; 0: no cap
	MaxPerDay      int64
	MaxPerMonth    int64
	MaxPerYear     int64

	when   *vm.Program // nil: always
	points *vm.Program
	// What a run of each expression costs outside its loops, in steps, and
	// whether either has loops or operations that pay as they run.
	whenCost, pointsCost int64
	metered              bool
	// Where the rule and its expressions are in the file.
	line, column     int
	whenAt, pointsAt exprSite
}

// exprSite is where an expression sits in the file: what scalarPos needs
// to turn an offset inside it into a line and column.
type exprSite struct {
	what         string // "when" or "points"
	line, column int
	style        yaml.Style
	value        string
}

// position returns the file position of a character offset inside the
// expression at site.
func (p *Program) position(site *exprSite, offset int) (line, col int) {
	pr := &parser{src: p.Source}
	return pr.scalarPos(&yaml.Node{Kind: yaml.ScalarNode, Line: site.line, Column: site.column, Style: site.style, Value: site.value}, offset)
}

// Purchase is what earn rules see of a purchase. Money is in minor units.
type Purchase struct {
	Amount     int64
	Currency   string
	StoreID    string
	TerminalID string
	OccurredAt time.Time
	Items      []Item
}

// Item is one line of a purchase.
type Item struct {
	SKU      string
	Category string
	Quantity int64
	Amount   int64
}

// Member is what earn rules see of a member. Money is in minor units.
type Member struct {
	ID            string
	Tier          string
	EnrolledAt    time.Time
	PurchaseCount int64
	LifetimeSpend int64
	BirthdayMonth int // 0 when unknown
	Attributes    map[string]string
	Segment       string
	Lifecycle     string
	ChurnRisk     bool
	CLV           int64
	RFM           string
}

// RuleUses counts the purchases a capped rule already earned on for one
// member: ever, and in the day, month and year (program zone) of the purchase.
type RuleUses struct {
	Total, Day, Month, Year int64
}

// EarnInput is everything one evaluation needs.
type EarnInput struct {
	Purchase Purchase
	Member   Member
	// Uses returns the past uses of a rule that has a per-member cap; it may
	// be nil when no rule has one.
	Uses func(rule string) RuleUses
}

// RuleResult is what one rule earned on a purchase. The store keeps it in
// every purchase, by field name: a renamed field keeps its stored name with
// a struct tag, `store:"name=OldName"` (store/doc.go).
type RuleResult struct {
	Rule   string
	Points int64
	// ItemPoints holds, for a for_each rule, the points each item earned
	// (indexed like Purchase.Items) after rounding and caps, summing to Points.
	ItemPoints []int64
}

// Breakdown is the result of evaluating all rules against one purchase.
type Breakdown struct {
	Total int64
	Rules []RuleResult // only rules that earned more than zero, in file order
}
