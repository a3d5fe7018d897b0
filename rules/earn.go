package rules

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/shopspring/decimal"
)

// evalState is the environment of one evaluation. It is pooled: the env map
// permanently points at the structs below, so a purchase only overwrites
// their fields, and the VM keeps its stack between runs.
type evalState struct {
	vm       vm.VM
	meter    meter
	env      map[string]any
	purchase purchaseEnv
	member   memberEnv
	items    []itemEnv
	ptrs     []*itemEnv
	itemPts  []int64
}

func (p *Program) newState() *evalState {
	s := &evalState{}
	s.env = map[string]any{"purchase": &s.purchase, "member": &s.member, "tier": nil, "item": nil, meterVar: &s.meter}
	return s
}

// RuleError is an earn rule that failed on a purchase: an expression that
// failed at run time (a division by zero), ran out of the budget or
// yielded what cannot be points. Line and Column are where, in the rules
// file, the expression that failed starts, or the part of it that failed
// when known.
type RuleError struct {
	Rule string
	// Reward is set when Rule names a reward, whose when failed.
	Reward bool
	Line   int
	Column int
	Err    error
}

func (e *RuleError) Error() string {
	if e.Reward {
		return fmt.Sprintf("reward %q: %v", e.Rule, e.Err)
	}
	return fmt.Sprintf("rule %q: %v", e.Rule, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// Earn evaluates the earn rules against a purchase and returns what each
// rule earned. A rule is skipped outside its active dates and once the
// member has reached one of its caps. An expression failing at run time,
// such as a division by zero, or the rules together going over the
// program's Limits, is a *RuleError naming the rule: the purchase must
// not silently earn less than the rules say.
func (p *Program) Earn(in EarnInput) (Breakdown, error) {
	b, _, err := p.earn(in)
	return b, err
}

// earn is Earn that also tells what the evaluation used of the budget.
func (p *Program) earn(in EarnInput) (Breakdown, meter, error) {
	s := p.state()
	defer p.release(s)
	p.fill(s, &in)
	b, err := p.earnRules(s, &in)
	return b, s.meter, err
}

func (p *Program) earnRules(s *evalState, in *EarnInput) (Breakdown, error) {
	var b Breakdown
	for _, r := range p.Rules {
		if r.points == nil || !r.ActiveAt(in.Purchase.OccurredAt) {
			continue
		}
		if r.Capped() && in.Uses != nil && r.capReached(in.Uses(r.Name)) {
			continue
		}
		res, err := p.evalRule(s, r)
		if err != nil {
			return Breakdown{}, p.ruleError(r, err)
		}
		if res.Points == 0 {
			continue
		}
		if b.Total > math.MaxInt64-res.Points {
			return Breakdown{}, p.ruleError(r, errTooMany)
		}
		b.Total += res.Points
		b.Rules = append(b.Rules, res)
	}
	return b, nil
}

func (p *Program) state() *evalState {
	var s *evalState
	if p.states != nil {
		s = p.states.Get().(*evalState)
	} else {
		s = p.newState()
	}
	l := p.limits()
	s.meter.reset(l)
	// The machine's own limit counts the elements of the lists and maps it
	// builds, per run; a word each is what the memory budget buys.
	s.vm.MemoryBudget = uint(l.Memory / 8)
	return s
}

func (p *Program) release(s *evalState) {
	if p.states != nil {
		p.states.Put(s)
	}
}

func (p *Program) limits() Limits {
	if p.Limits == (Limits{}) {
		return DefaultLimits
	}
	return p.Limits
}

// fill copies the input into the pooled environment, converting money to
// decimals in major units and the time to the program's zone.
func (p *Program) fill(s *evalState, in *EarnInput) {
	loc := p.location()
	exp := -int32(p.CurrencyDigits)
	at := in.Purchase.OccurredAt.In(loc)

	pe := &s.purchase
	pe.Amount = decimal.New(in.Purchase.Amount, exp)
	pe.Currency = in.Purchase.Currency
	pe.StoreID = in.Purchase.StoreID
	pe.TerminalID = in.Purchase.TerminalID
	pe.OccurredAt = at
	pe.Weekday = weekdays[at.Weekday()]
	pe.Hour, pe.Day, pe.Month = at.Hour(), at.Day(), int(at.Month())

	n := len(in.Purchase.Items)
	if cap(s.items) < n {
		s.items = make([]itemEnv, n)
		s.ptrs = make([]*itemEnv, n)
		s.itemPts = make([]int64, n)
		for i := range s.ptrs {
			s.ptrs[i] = &s.items[i]
		}
	}
	for i, it := range in.Purchase.Items {
		s.items[i] = itemEnv{SKU: it.SKU, Category: it.Category, Quantity: int(it.Quantity), Amount: decimal.New(it.Amount, exp)}
	}
	pe.Items = s.ptrs[:n]

	m := &in.Member
	s.member = memberEnv{
		ID:            m.ID,
		Tier:          m.Tier,
		EnrolledAt:    m.EnrolledAt,
		DaysEnrolled:  daysBetween(m.EnrolledAt, at, loc),
		PurchaseCount: int(m.PurchaseCount),
		LifetimeSpend: decimal.New(m.LifetimeSpend, exp),
		BirthdayMonth: m.BirthdayMonth,
		Attributes:    m.Attributes,
		Segment:       m.Segment,
		Lifecycle:     m.Lifecycle,
		ChurnRisk:     m.ChurnRisk,
		CLV:           decimal.New(m.CLV, exp),
		RFM:           m.RFM,
	}

	if p.tier != nil {
		i := p.Tiers.Index(m.Tier)
		if i < 0 {
			i = 0
		}
		s.env["tier"] = p.tier.levels[i]
	}
}

// daysBetween counts calendar days in loc from one instant to a later one;
// 0 when from is unknown or later.
func daysBetween(from, to time.Time, loc *time.Location) int {
	if from.IsZero() {
		return 0
	}
	fy, fm, fd := from.In(loc).Date()
	ty, tm, td := to.In(loc).Date()
	d := time.Date(ty, tm, td, 0, 0, 0, 0, time.UTC).Sub(time.Date(fy, fm, fd, 0, 0, 0, 0, time.UTC))
	return max(0, int(d/(24*time.Hour)))
}

// ActiveAt reports whether the rule applies at t: on or after ActiveFrom and
// before the end of the ActiveUntil day, in the program's zone.
func (r *EarnRule) ActiveAt(t time.Time) bool {
	if !r.ActiveFrom.IsZero() && t.Before(r.ActiveFrom) {
		return false
	}
	return r.ActiveUntil.IsZero() || t.Before(r.ActiveUntil.AddDate(0, 0, 1))
}

// Capped reports whether the rule has a per-member cap, the only case in
// which the engine needs to count the rule's uses.
func (r *EarnRule) Capped() bool {
	return r.MaxPerMember > 0 || r.MaxPerDay > 0 || r.MaxPerMonth > 0 || r.MaxPerYear > 0
}

func (r *EarnRule) capReached(u RuleUses) bool {
	reached := func(cap, used int64) bool { return cap > 0 && used >= cap }
	return reached(r.MaxPerMember, u.Total) || reached(r.MaxPerDay, u.Day) ||
		reached(r.MaxPerMonth, u.Month) || reached(r.MaxPerYear, u.Year)
}

// evalRule runs one rule, per item for a for_each rule, and applies
// max_per_purchase.
func (p *Program) evalRule(s *evalState, r *EarnRule) (RuleResult, error) {
	res := RuleResult{Rule: r.Name}
	if !r.ForEachItem {
		s.env["item"] = nil
		pts, err := p.evalOnce(s, r)
		if err != nil {
			return res, err
		}
		res.Points = capPoints(pts, r.MaxPerPurchase)
		return res, nil
	}

	items := s.itemPts[:len(s.purchase.Items)]
	var sum int64
	for i, it := range s.purchase.Items {
		s.env["item"] = it
		pts, err := p.evalOnce(s, r)
		if err != nil {
			return res, fmt.Errorf("item %d: %w", i+1, err)
		}
		if sum > math.MaxInt64-pts {
			return res, errTooMany
		}
		items[i] = pts
		sum += pts
	}
	s.env["item"] = nil
	if sum == 0 {
		return res, nil
	}
	if r.MaxPerPurchase > 0 && sum > r.MaxPerPurchase {
		// Take the excess from the last items, so earlier lines of the
		// receipt keep what they earned.
		excess := sum - r.MaxPerPurchase
		for i := len(items) - 1; i >= 0 && excess > 0; i-- {
			cut := min(items[i], excess)
			items[i] -= cut
			excess -= cut
		}
		sum = r.MaxPerPurchase
	}
	res.Points = sum
	res.ItemPoints = append([]int64(nil), items...)
	return res, nil
}

func capPoints(pts, limit int64) int64 {
	if limit > 0 && pts > limit {
		return limit
	}
	return pts
}

// evalOnce evaluates when and points for the current environment and
// returns the rounded points, never below zero.
func (p *Program) evalOnce(s *evalState, r *EarnRule) (int64, error) {
	if r.when != nil {
		if err := s.meter.step(r.whenCost); err != nil {
			return 0, &exprFailure{site: &r.whenAt, err: err}
		}
		out, err := s.vm.Run(r.when, s.env)
		if err != nil {
			return 0, p.runError(&r.whenAt, err)
		}
		ok, isBool := out.(bool)
		if !isBool {
			return 0, &exprFailure{site: &r.whenAt, err: fmt.Errorf("must be true or false, got %T", out)}
		}
		if !ok {
			return 0, nil
		}
	}
	if err := s.meter.step(r.pointsCost); err != nil {
		return 0, &exprFailure{site: &r.pointsAt, err: err}
	}
	out, err := s.vm.Run(r.points, s.env)
	if err != nil {
		return 0, p.runError(&r.pointsAt, err)
	}
	pts, err := p.round(out)
	if err != nil {
		return 0, &exprFailure{site: &r.pointsAt, err: err}
	}
	return pts, nil
}

// exprFailure is a when or points expression that failed, with where in
// it when the machine knows.
type exprFailure struct {
	site   *exprSite
	offset int // in characters of the expression
	err    error
}

func (e *exprFailure) Error() string { return e.site.what + ": " + e.err.Error() }

func (e *exprFailure) Unwrap() error { return e.err }

// runError shortens an expression's run-time error to one line: the VM's
// error carries a source snippet meant for a terminal, not a log line.
func (p *Program) runError(site *exprSite, err error) error {
	f := &exprFailure{site: site, err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		f.offset = fe.From
		if prev := fe.Unwrap(); prev != nil {
			f.err = prev
		} else {
			f.err = errors.New(fe.Message)
		}
	}
	if be, ok := budgetOf(f.err, p.limits()); ok {
		f.err = be
	}
	return f
}

// ruleError positions a failure of rule r in the rules file.
func (p *Program) ruleError(r *EarnRule, err error) *RuleError {
	re := &RuleError{Rule: r.Name, Line: r.line, Column: r.column, Err: err}
	var f *exprFailure
	if errors.As(err, &f) && f.site.line > 0 {
		re.Line, re.Column = p.position(f.site, f.offset)
	}
	return re
}

var (
	errTooMany   = errors.New("points do not fit in 64 bits")
	maxPointsDec = decimal.NewFromInt(math.MaxInt64)
)

// round turns an expression's result into whole points with the program's
// rounding mode; results below zero count as zero.
func (p *Program) round(out any) (int64, error) {
	var d decimal.Decimal
	switch x := out.(type) {
	case int:
		return max(0, int64(x)), nil
	case int64:
		return max(0, x), nil
	case decimal.Decimal:
		d = x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("must be a number, got %v", x)
		}
		d = decimal.NewFromFloat(x)
	default:
		// Other integer types come from methods, like time.Month.
		v := reflect.ValueOf(out)
		switch {
		case v.CanInt():
			return max(0, v.Int()), nil
		case v.CanUint():
			return int64(min(v.Uint(), math.MaxInt64)), nil
		case v.CanFloat():
			return p.round(v.Float())
		}
		return 0, fmt.Errorf("must be a number, got %T", out)
	}
	switch p.Points.Rounding {
	case RoundCeil:
		d = d.Ceil()
	case RoundNearest:
		d = d.Round(0)
	default:
		d = d.Floor()
	}
	if d.Sign() <= 0 {
		return 0, nil
	}
	if d.GreaterThan(maxPointsDec) {
		return 0, errTooMany
	}
	return d.IntPart(), nil
}
