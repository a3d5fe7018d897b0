/*
Package rules parses, checks and evaluates a loyalty program's rules file.

The file is YAML, edited by a marketer, so Parse checks all of it before it
goes live and reports every problem it finds, each as FILE:LINE:COL: message.
A Program that Parse returns is immutable and safe for concurrent use.

# Grammar

Keys marked * are required; everything else has the default shown.

	program:  TEXT                       display name
	currency: CODE *                     ISO 4217, three capital letters
	timezone: ZONE                       IANA name; default UTC
	points:
	  rounding: floor|nearest|ceil       default floor; nearest rounds half away from zero
	  pending: DURATION                  default 0d
	  expiry:
	    after: DURATION                  default none (with no at: never expire)
	    at: end_of_month|end_of_quarter|end_of_year
	    notify_before: DURATION          default 30d
	tiers:                               default: one level {name: member, threshold: 0}
	  metric: spend|points|visits        default spend
	  window: DURATION|calendar_year     default 12mo
	  downgrade: one_step|to_qualified   default one_step
	  grace: DURATION                    default 0d
	  levels: *                          at least one, thresholds strictly ascending
	    - name: TEXT *                   unique
	      threshold: AMOUNT|COUNT *      money for spend ("500.00"), whole number otherwise; the first is 0
	      multiplier: NUMBER             default 1
	      reward: NAME                   a reward of rewards, issued once per promotion to the level
	      KEY: VALUE                     any other key: a number, text, boolean or list, seen as tier.KEY
	earn:                                rules in evaluation order
	  - name: TEXT *                     unique
	    for_each: item                   evaluate once per purchase item
	    when: EXPR                       yields true or false; default true
	    points: EXPR *                   yields a number
	    active: {from: DATE, until: DATE}   YYYY-MM-DD in the program's zone, both inclusive
	    max_per_purchase: N              N >= 1; caps the points of one purchase
	    max_per_member: N                caps the purchases the rule earns on, ever
	    max_per_day: N                   ... per day, month and year in the program's zone
	    max_per_month: N
	    max_per_year: N
	bonuses:
	  enrol: N
	  referral: {referrer: N, referee: N, after: first_purchase}
	  birthday: {points: N, reward: NAME}   points, a reward's coupon or both, once a year
	rewards:                             the catalogue, in the order members see it
	  - name: NAME *                     unique; lower-case letters, digits and dashes
	    title: TEXT *                    what the member and the till see
	    cost: N *                        points, 0 allowed
	    when: EXPR                       over member and tier: who may take it; default everyone
	    valid: {from: DATE, to: DATE}    YYYY-MM-DD in the program's zone, both inclusive
	    stock: N                         coupons ever issued, less those cancelled; default no limit
	    per_member: {max: N, per: day|week|month|year|ever}   coupons one member takes; per defaults to ever
	    coupon: {expires_after: DURATION}   default 30d
	    refund_on_expiry: true|false     default false: the points come back when a coupon expires unused
	jobs:                                cron specs: 5 fields or a descriptor like @daily
	  expire-points: SPEC                default "@daily"
	  evaluate-tiers: SPEC               default "30 2 * * *"
	  notify-expiring: SPEC              default "0 9 * * MON"
	  birthday-bonus: SPEC               default "0 6 * * *"
	  analytics: SPEC                    default "0 3 * * *"
	  expire-coupons: SPEC               default "@hourly"
	  backup: SPEC                       default "0 4 * * *"; a verified copy into serve's --backup-dir
	  prune-events: SPEC                 default "30 4 * * *"; deletes events past events.retention
	analytics:                           parameters of the analytics job; docs/ANALYTICS.md
	  window: DURATION                   default 12mo; must be longer than zero
	  margin: NUMBER                     default 0.3; share of spend that is profit, 0 to 1
	  point_cost: AMOUNT                 default "0.01"; may be finer than the currency
	  horizon: NUMBER                    default 3; expected remaining years, 0 to 100
	  top_share: NUMBER                  default 0.2; above 0, at most 1
	  new_within: DURATION               default 90d
	  growth: NUMBER                     default 1.5; at least 1
	  decline: NUMBER                    default 0.5; 0 to 1
	  churn_multiple: NUMBER             default 3; above 0
	  churn_after: DURATION              default 180d; must be longer than zero
	  risk_multiple: NUMBER              default 2; above 0
	events:                              the events feed and webhooks (docs/API.md)
	  retention: DURATION                default 30d; older events that every enabled endpoint got are pruned
	limits:                              the budget of the earn rules on one purchase
	  steps: N                           default 1000000, at most 50000000
	  memory: N                          bytes; default 1048576, at most 67108864

A DURATION is a whole number and a unit: 36h, 30d (30 × 24h), 12mo
(calendar months) or 1y (12 calendar months). Money may be quoted or not;
either way it is read from its text, never through a float.

# Expressions

EXPR is github.com/expr-lang/expr syntax over these variables:

	purchase  amount, currency, store_id, terminal_id, occurred_at, weekday
	          ("Mon".."Sun"), hour, day, month, items (list of item)
	item      sku, category, quantity, amount (for_each rules only)
	member    id, tier, enrolled_at, days_enrolled (calendar days), purchase_count,
	          lifetime_spend, birthday_month, attributes (map of text),
	          segment, lifecycle, churn_risk, clv, rfm
	tier      name, multiplier and the level's other keys

A reward's when is about the member alone: it sees member and tier, not
purchase or item.

Money (amount, lifetime_spend, clv) and tier.multiplier are decimals in
major units, and so are number literals with a fraction: arithmetic on
them is exact, so 0.29 * 100 is 29; comparisons and "in" compare decimals
by value. Dividing two integers gives a decimal (7 / 2 is 3.5). The numeric
built-ins (abs, round, min, max, int, float...) take integers only, so
passing them a decimal is an error when the file is loaded. Times and the weekday, hour, day and month are in the
program's zone; now() is not available, so replaying a purchase always earns
the same. Each rule's result is rounded, then capped; below zero is zero.
Integer arithmetic that overflows is an error, and decimals hold at most 32
digits before the point and 32 after (finer digits are rounded away). The
methods of values other than times are not available, nor is $env.

# Budget

All the rules of one purchase share a budget (limits: above) of steps and
bytes. A step is about one instruction of the expression machine; a call of
a function or a decimal operation costs 50, reading or making 2 bytes of
text or list costs one, and a loop (map, filter, reduce...) pays for all its
turns when it starts: its length times its body. The functions whose result
can dwarf their arguments (repeat, replace, join, the + of two texts, the ..
of a range) refuse a result the budget cannot pay for before making it. An
evaluation that reaches the budget fails with a BudgetError.

Trial runs the rules on sample purchases, such as EdgeCases at the limits
of a request, before they go live: a rule that fails there is reported as a
positioned Error naming the rule.

# Errors

Parse reports, among others:

	unknown key "mutliplier"; did you mean "multiplier"?
	    a key the format does not have at that place (a level may carry
	    keys of its own, unless one looks like a typo of a known key)
	duplicate key "currency" (first at line 2)
	X must be a mapping / a list / a whole number / a number / text, got Y
	    a value of the wrong kind
	currency is required: an ISO 4217 code like USD
	currency must be an ISO 4217 code of three capital letters like USD
	unknown timezone "Europe/Pariss"
	after: invalid duration "12x": expected a duration like 30d, 12mo, 1y or 36h
	rounding must be floor, nearest or ceil, got "flor"; did you mean "floor"?
	the first tier's threshold must be 0, got 10.00
	threshold 400.00 is not above the previous tier gold (500.00)
	threshold "9.999" has more than 2 decimals
	    a spend threshold finer than the currency's minor unit
	duplicate rule name "base" (first at line 27)
	until 2026-11-01 is before from 2026-12-01
	invalid schedule "61 * * * *" for analytics: ...
	unknown name "membr"; did you mean "member"?
	tier has no field "multiplyer"; did you mean "multiplier"?
	item is only available in rules with "for_each: item"
	invalid operation: > (mismatched types string and int)
	    an expression that cannot be typed; the position is inside it
	when must be true or false, got decimal
	points must be a number, got string
	found character that cannot start any token
	    a YAML syntax error; the YAML library gives only the line, so
	    the column is a best guess (the first tab, or the line's start)
	steps must be at most 50000000 steps, got 99999999999
	decimal has no method "Shift"
	number too large: more than 32 digits before the point
	a reward's name is lower-case letters, digits and dashes (like free-coffee), got "Free Coffee"
	duplicate reward name "free-coffee" (first at line 40)
	no reward named "birthday-cak" in rewards; did you mean "birthday-cake"?
	    a level's or the birthday bonus's reward that the catalogue lacks
	purchase is not available in a reward's when, which is about the member (member, tier)

Earn returns a *RuleError, and no points, when an expression fails at run
time (a division by zero, an overflow, the budget), naming the rule and
where in the file it failed:

	rule "zero": points: division by zero
	rule "slow": points: exceeds the budget of 1000000 steps per purchase (limits.steps)

Eligible runs a reward's when for a member under the same budget, and
Trial runs it on every sample's member; a failure is a *RuleError with
Reward set:

	reward "vip": when: division by zero
*/
package rules
