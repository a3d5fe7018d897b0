package engine

// The largest amounts, quantities and points the engine accepts and keeps.
// A request that carries more is refused with EINVALID naming the field; a
// write that would take a member's totals past MaxMemberTotal is refused
// with EUNPROCESSABLE. They are far beyond any real shop and far enough
// below the int64 range that the sums and products the engine computes
// from them (a purchase's lines, refunds in proportion, a member's totals,
// a window of tier metric) fit with room to spare. docs/API.md states them.
const (
	// MaxAmount is the largest amount of money, in the currency's minor
	// units, that a purchase, one of its lines or a refund may carry:
	// 100,000,000,000.00 in a currency with two decimals.
	MaxAmount int64 = 10_000_000_000_000

	// MaxQuantity is the largest quantity of one purchase line.
	MaxQuantity int64 = 1_000_000

	// MaxPoints is the most points one request or event may move: a
	// redemption, an adjustment (either way), what a purchase earns in
	// total and by each rule, a bonus of the rules file.
	MaxPoints int64 = 10_000_000_000_000

	// MaxMemberTotal bounds what a member accumulates, in points or minor
	// units: the balance (either way), the debt, lifetime points earned
	// and redeemed, lifetime spend and refunded spend. It is 10,000 of the
	// largest purchases, and 92 such totals still fit an int64.
	MaxMemberTotal int64 = 100_000_000_000_000_000
)
