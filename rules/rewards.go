package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// Period is the span a reward's per-member limit counts coupons in, in the
// program's zone.
type Period string

// Periods a rules file may name.
const (
	PerDay   Period = "day"
	PerWeek  Period = "week" // Monday to Sunday
	PerMonth Period = "month"
	PerYear  Period = "year"
	PerEver  Period = "ever"
)

var periods = []string{string(PerDay), string(PerWeek), string(PerMonth), string(PerYear), string(PerEver)}

// DefaultCouponLifetime is how long a coupon stays usable when the reward
// does not say.
var DefaultCouponLifetime = Duration{Fixed: 30 * 24 * time.Hour}

// Reward is one entry of the catalogue: what a member can spend points on,
// for a coupon the till checks and burns.
type Reward struct {
	Name  string // [a-z0-9-], unique
	Title string
	Cost  int64 // points, 0 allowed
	// When is the eligibility expression as written; "" lets every member
	// take the reward.
	When string
	// ValidFrom and ValidTo are dates in the program's zone, both
	// inclusive; zero leaves that end open.
	ValidFrom, ValidTo time.Time
	// Stock, when StockLimited, caps the coupons ever issued, less those
	// cancelled.
	Stock        int64
	StockLimited bool
	// PerMemberMax caps the coupons one member takes per PerMemberPer;
	// 0 is no cap.
	PerMemberMax   int64
	PerMemberPer   Period
	CouponLifetime Duration
	// RefundOnExpiry gives the points back when a coupon expires unused.
	RefundOnExpiry bool

	when     *vm.Program
	whenAt   exprSite
	whenCost int64
}

// Rewards' names are written in URLs and reports as they are.
var rewardName = regexp.MustCompile(`^[a-z0-9-]+$`)

const maxRewardName = 64

// Reward returns the reward of that name, or nil.
func (p *Program) Reward(name string) *Reward { return p.rewardByName[name] }

// ValidAt reports whether the reward is on offer at t: on or after the
// start of ValidFrom and before the end of ValidTo, in the program's zone.
func (r *Reward) ValidAt(t time.Time) bool {
	if !r.ValidFrom.IsZero() && t.Before(r.ValidFrom) {
		return false
	}
	return r.ValidTo.IsZero() || t.Before(r.ValidTo.AddDate(0, 0, 1))
}

// PeriodStart returns when the period of per that holds t began, in the
// program's zone; the zero time for PerEver.
func (p *Program) PeriodStart(per Period, t time.Time) time.Time {
	loc := p.location()
	y, m, d := t.In(loc).Date()
	switch per {
	case PerDay:
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case PerWeek:
		day := time.Date(y, m, d, 0, 0, 0, 0, loc)
		back := (int(day.Weekday()) + 6) % 7 // days since Monday
		return day.AddDate(0, 0, -back)
	case PerMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	case PerYear:
		return time.Date(y, 1, 1, 0, 0, 0, 0, loc)
	}
	return time.Time{}
}

// Eligible runs the reward's when for member m at at, under the program's
// limits. A when that fails (a division by zero, the budget) is a
// *RuleError naming the reward: the member is then neither refused nor
// given the reward silently.
func (p *Program) Eligible(r *Reward, m Member, at time.Time) (bool, error) {
	if r.when == nil {
		return true, nil
	}
	s := p.state()
	defer p.release(s)
	in := EarnInput{Purchase: Purchase{OccurredAt: at}, Member: m}
	p.fill(s, &in)
	ok, err := p.evalWhen(s, r)
	if err != nil {
		return false, p.rewardError(r, err)
	}
	return ok, nil
}

func (p *Program) evalWhen(s *evalState, r *Reward) (bool, error) {
	if err := s.meter.step(r.whenCost); err != nil {
		return false, &exprFailure{site: &r.whenAt, err: err}
	}
	out, err := s.vm.Run(r.when, s.env)
	if err != nil {
		return false, p.runError(&r.whenAt, err)
	}
	ok, isBool := out.(bool)
	if !isBool {
		return false, &exprFailure{site: &r.whenAt, err: fmt.Errorf("must be true or false, got %T", out)}
	}
	return ok, nil
}

// rewardError positions a failure of the when of reward r.
func (p *Program) rewardError(r *Reward, err error) *RuleError {
	re := &RuleError{Rule: r.Name, Reward: true, Line: r.whenAt.line, Column: r.whenAt.column, Err: err}
	if f, ok := err.(*exprFailure); ok && f.site.line > 0 {
		re.Line, re.Column = p.position(f.site, f.offset)
	}
	return re
}

// Keys of a reward and of its parts.
var (
	rewardKeys    = []string{"name", "title", "cost", "when", "valid", "stock", "per_member", "coupon", "refund_on_expiry"}
	validKeys     = []string{"from", "to"}
	perMemberKeys = []string{"max", "per"}
	couponKeys    = []string{"expires_after"}
)

// rewardRef is a place that names a reward (a level's reward, the
// birthday bonus's), checked once the catalogue is read.
type rewardRef struct {
	node *yaml.Node
	name string
}

func (p *parser) rewards(n *yaml.Node) {
	p.prog.rewardByName = map[string]*Reward{}
	if n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "rewards must be a list, got %s", describe(n))
		return
	}
	c := newCompiler(p.prog.Location, p.prog.tier)
	lines := map[string]int{}
	for _, rn := range n.Content {
		r, nameNode := p.reward(c, resolve(rn))
		if r == nil {
			continue
		}
		if line, dup := lines[r.Name]; dup {
			p.errorf(nameNode, "duplicate reward name %q (first at line %d)", r.Name, line)
			continue
		}
		lines[r.Name] = nameNode.Line
		p.prog.Rewards = append(p.prog.Rewards, r)
		p.prog.rewardByName[r.Name] = r
	}
}

// reward reads one reward; nil when it has no usable name.
func (p *parser) reward(c *exprCompiler, n *yaml.Node) (*Reward, *yaml.Node) {
	f := p.fields(n, "a reward", rewardKeys)
	if f == nil {
		return nil, nil
	}
	r := &Reward{CouponLifetime: DefaultCouponLifetime}
	named := false
	if v := f["name"]; v != nil {
		if r.Name, named = p.str(v, "name"); named {
			switch {
			case len(r.Name) > maxRewardName:
				p.errorf(v, "a reward's name is at most %d characters, got %d", maxRewardName, len(r.Name))
				named = false
			case !rewardName.MatchString(r.Name):
				p.errorf(v, "a reward's name is lower-case letters, digits and dashes (like free-coffee), got %q", r.Name)
				named = false
			}
		}
	} else {
		p.errorf(n, "a reward needs a name")
	}
	label := "a reward"
	if named {
		label = fmt.Sprintf("reward %q", r.Name)
	}
	if v := f["title"]; v != nil {
		if r.Title, _ = p.str(v, "title"); strings.TrimSpace(r.Title) == "" {
			p.errorf(v, "title must not be empty")
		}
	} else {
		p.errorf(n, "%s needs a title: what the member and the till see", label)
	}
	if v := f["cost"]; v != nil {
		r.Cost, _ = p.integer(v, "cost", 0)
	} else {
		p.errorf(n, "%s needs a cost in points (0 for a free one)", label)
	}
	if v := f["when"]; v != nil {
		p.rewardWhen(c, r, v)
	}
	if v := f["valid"]; v != nil {
		p.valid(r, v)
	}
	if v := f["stock"]; v != nil {
		r.Stock, r.StockLimited = p.integer(v, "stock", 0)
	}
	if v := f["per_member"]; v != nil {
		p.perMember(r, v)
	}
	if v := f["coupon"]; v != nil {
		cf := p.fields(v, "coupon", couponKeys)
		if x := cf["expires_after"]; x != nil {
			if d, ok := p.duration(x, "expires_after"); ok {
				if d.IsZero() {
					p.errorf(x, "expires_after must be longer than zero")
				} else {
					r.CouponLifetime = d
				}
			}
		}
	}
	if v := f["refund_on_expiry"]; v != nil {
		r.RefundOnExpiry, _ = p.boolean(v, "refund_on_expiry")
	}
	if !named {
		return nil, nil
	}
	return r, f["name"]
}

// rewardWhen compiles a reward's when over the member, positioning any
// error inside the YAML scalar.
func (p *parser) rewardWhen(c *exprCompiler, r *Reward, n *yaml.Node) {
	r.whenAt = exprSite{what: "when", line: n.Line, column: n.Column, style: n.Style, value: n.Value}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "when must be an expression, got %s", describe(n))
		return
	}
	if strings.TrimSpace(n.Value) == "" {
		p.errorf(n, "when must not be empty")
		return
	}
	prog, _, err := c.compile(n.Value, kindBool, scopeMember)
	if err != nil {
		line, col := p.scalarPos(n, err.offset)
		p.errorAt(line, col, "%s", err.message)
		return
	}
	r.When, r.when, r.whenCost = n.Value, prog, programCost(prog)
}

func (p *parser) valid(r *Reward, n *yaml.Node) {
	f := p.fields(n, "valid", validKeys)
	if f == nil {
		return
	}
	from, to := f["from"], f["to"]
	if from == nil && to == nil {
		p.errorf(n, "valid needs from, to or both")
		return
	}
	if from != nil {
		r.ValidFrom, _ = p.date(from, "from")
	}
	if to != nil {
		r.ValidTo, _ = p.date(to, "to")
	}
	if !r.ValidFrom.IsZero() && !r.ValidTo.IsZero() && r.ValidTo.Before(r.ValidFrom) {
		p.errorf(to, "to %s is before from %s", to.Value, from.Value)
	}
}

func (p *parser) perMember(r *Reward, n *yaml.Node) {
	f := p.fields(n, "per_member", perMemberKeys)
	if f == nil {
		return
	}
	v := f["max"]
	if v == nil {
		p.errorf(n, "per_member needs max: how many coupons one member may take")
		return
	}
	r.PerMemberMax, _ = p.integer(v, "max", 1)
	r.PerMemberPer = PerEver
	if x := f["per"]; x != nil {
		if s, ok := p.enum(x, "per", periods); ok {
			r.PerMemberPer = Period(s)
		}
	}
}

// boolean reads true or false.
func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.errorf(n, "%s must be true or false, got %s", what, describe(n))
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(n.Value))
	if err != nil {
		p.errorf(n, "%s must be true or false, got %s", what, describe(n))
		return false, false
	}
	return b, true
}

// references checks that every reward named elsewhere in the file is in
// the catalogue.
func (p *parser) references() {
	names := make([]string, 0, len(p.prog.Rewards))
	for _, r := range p.prog.Rewards {
		names = append(names, r.Name)
	}
	for _, ref := range p.rewardRefs {
		if p.prog.rewardByName[ref.name] != nil {
			continue
		}
		if len(names) == 0 {
			p.errorf(ref.node, "no reward named %q: the rules file has no rewards section", ref.name)
			continue
		}
		p.errorf(ref.node, "no reward named %q in rewards%s", ref.name, hint(ref.name, names))
	}
}

// rewardRef reads the name of a reward given at n, to check once the
// catalogue is read.
func (p *parser) rewardRef(n *yaml.Node) string {
	s, ok := p.str(n, "reward")
	if !ok {
		return ""
	}
	p.rewardRefs = append(p.rewardRefs, rewardRef{node: n, name: s})
	return s
}
