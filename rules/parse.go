package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zones must load on machines without a zoneinfo database
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"
	"github.com/robfig/cron/v3"
	"github.com/shopspring/decimal"
	"go.yaml.in/yaml/v3"
)

// Keys each mapping of the file accepts.
var (
	topKeys      = []string{"program", "currency", "timezone", "points", "tiers", "earn", "bonuses", "rewards", "jobs", "analytics", "events", "limits"}
	pointsKeys   = []string{"rounding", "pending", "expiry"}
	expiryKeys   = []string{"after", "at", "notify_before"}
	tiersKeys    = []string{"metric", "window", "downgrade", "grace", "levels"}
	levelKeys    = []string{"name", "threshold", "multiplier", "reward"}
	ruleKeys     = []string{"name", "for_each", "when", "points", "active", "max_per_purchase", "max_per_member", "max_per_day", "max_per_month", "max_per_year"}
	activeKeys   = []string{"from", "until"}
	bonusKeys    = []string{"enrol", "referral", "birthday"}
	referKeys    = []string{"referrer", "referee", "after"}
	birthdayKeys = []string{"points", "reward"}
	limitsKeys   = []string{"steps", "memory"}
	eventsKeys   = []string{"retention"}
)

// Parse checks a rules file completely and compiles it. filename is only
// used in messages. On failure the error is Errors, holding every problem
// found, sorted by position.
func Parse(filename string, src []byte) (*Program, error) {
	p := &parser{file: filename, src: src}
	prog := p.parse()
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	return prog, nil
}

// parser walks the YAML tree, collecting errors instead of stopping at the
// first one.
type parser struct {
	file  string
	src   []byte
	lines []string // of src, made on demand to position inside scalars
	errs  Errors
	prog  *Program
	// rewardRefs are the places that name a reward, checked against the
	// catalogue once it is read.
	rewardRefs []rewardRef
}

func (p *parser) errorAt(line, col int, format string, args ...any) {
	p.errs = append(p.errs, Error{File: p.file, Line: line, Column: col, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errorAt(n.Line, n.Column, format, args...)
}

// HashOf is the hash a Program of src would carry, so a refused text can be
// named the same way as an accepted one.
func HashOf(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:])
}

func (p *parser) parse() *Program {
	prog := &Program{
		Location: time.UTC,
		Points: Points{
			Rounding: RoundFloor,
			Expiry:   Expiry{NotifyBefore: Duration{Fixed: 30 * 24 * time.Hour}},
		},
		Tiers: Tiers{
			Metric:    MetricSpend,
			Window:    Duration{Months: 12},
			Downgrade: "one_step",
		},
		Bonuses: Bonuses{Referral: ReferralBonus{After: "first_purchase"}},
		Limits:  DefaultLimits,
		Source:  bytes.Clone(p.src),
		Hash:    HashOf(p.src),
		file:    p.file,
	}
	p.prog = prog

	var doc yaml.Node
	if err := yaml.Unmarshal(p.src, &doc); err != nil {
		p.yamlError(err)
		return nil
	}
	if len(doc.Content) == 0 {
		p.errorAt(1, 1, "the rules file is empty; it needs at least a currency")
		return nil
	}
	root := resolve(doc.Content[0])
	f := p.fields(root, "the rules file", topKeys)
	if f == nil {
		return nil
	}

	if n := f["program"]; n != nil {
		prog.Name, _ = p.str(n, "program")
	}
	p.currency(root, f["currency"])
	p.timezone(f["timezone"])
	p.points(f["points"])
	p.tiers(f["tiers"])
	prog.tier = newTierShape(prog.Tiers.Levels)
	p.earn(f["earn"])
	p.bonuses(f["bonuses"])
	p.rewards(f["rewards"])
	p.references()
	p.jobs(f["jobs"])
	p.analytics(f["analytics"])
	p.limits(f["limits"])
	p.events(f["events"])
	prog.states = &sync.Pool{New: func() any { return prog.newState() }}
	return prog
}

var yamlErrorLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError positions a syntax error. The YAML library reports only a line,
// so the column is a guess: the first tab on the line when tabs are the
// likely cause, else where the line's content starts.
func (p *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlErrorLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	col := 1
	if text, ok := p.line(line); ok {
		indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
		if i := strings.IndexByte(indent, '\t'); i >= 0 {
			col = i + 1
			if !strings.Contains(msg, "tab") {
				msg += " (tabs cannot be used for indentation)"
			}
		} else {
			col = len(indent) + 1
		}
	}
	p.errorAt(line, col, "%s", msg)
}

// line returns line n (1-based) of the source without its line ending.
func (p *parser) line(n int) (string, bool) {
	if p.lines == nil {
		p.lines = strings.Split(string(p.src), "\n")
	}
	if n < 1 || n > len(p.lines) {
		return "", false
	}
	return strings.TrimSuffix(p.lines[n-1], "\r"), true
}

// resolve follows aliases, so a value can be shared with an anchor.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "an unknown node"
}

// fields checks that n is a mapping with only known keys and returns its
// non-null values by key; nil when n is not a mapping.
func (p *parser) fields(n *yaml.Node, what string, known []string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping, got %s", what, describe(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	for k, v := range p.pairs(n) {
		if !contains(known, k.Value) {
			p.unknownKey(k, known)
			continue
		}
		if v.ShortTag() != "!!null" {
			out[k.Value] = v
		}
	}
	return out
}

// pairs yields a mapping's keys and resolved values, reporting keys that are
// not names or are repeated.
func (p *parser) pairs(n *yaml.Node) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
			if k.Kind != yaml.ScalarNode {
				p.errorf(k, "keys must be names, got %s", describe(k))
				continue
			}
			if line, dup := seen[k.Value]; dup {
				p.errorf(k, "duplicate key %q (first at line %d)", k.Value, line)
				continue
			}
			seen[k.Value] = k.Line
			if !yield(k, v) {
				return
			}
		}
	}
}

func (p *parser) unknownKey(k *yaml.Node, known []string) {
	if h := hint(k.Value, known); h != "" {
		p.errorf(k, "unknown key %q%s", k.Value, h)
		return
	}
	p.errorf(k, "unknown key %q; expected one of %s", k.Value, oneOf(known))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str reads a scalar as text; numbers and booleans are taken as written.
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be text, got %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

// enum reads a scalar that must be one of values.
func (p *parser) enum(n *yaml.Node, what string, values []string) (string, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return "", false
	}
	if !contains(values, s) {
		p.errorf(n, "%s must be %s, got %q%s", what, oneOf(values), s, hint(s, values))
		return "", false
	}
	return s, true
}

// integer reads a whole number that is at least least: 0 or 1.
func (p *parser) integer(n *yaml.Node, what string, least int64) (int64, bool) {
	var v int64
	var err error
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		v, err = strconv.ParseInt(n.Value, 0, 64)
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil {
		p.errorf(n, "%s must be a whole number, got %s", what, describe(n))
		return 0, false
	}
	if v < least {
		if least == 1 {
			p.errorf(n, "%s must be at least 1, got %d", what, v)
		} else {
			p.errorf(n, "%s must not be negative, got %d", what, v)
		}
		return 0, false
	}
	return v, true
}

// number reads a non-negative decimal, exactly as written.
func (p *parser) number(n *yaml.Node, what string) (decimal.Decimal, bool) {
	var d decimal.Decimal
	var err error
	tag := n.ShortTag()
	isNum := n.Kind == yaml.ScalarNode && (tag == "!!int" || tag == "!!float")
	if isNum {
		d, err = decimal.NewFromString(strings.ReplaceAll(n.Value, "_", ""))
	}
	if !isNum || err != nil {
		p.errorf(n, "%s must be a number, got %s", what, describe(n))
		return d, false
	}
	if d.IsNegative() {
		p.errorf(n, "%s must not be negative, got %s", what, n.Value)
		return d, false
	}
	return p.bounded(n, what, d)
}

// bounded refuses a number that expressions could not compute with.
func (p *parser) bounded(n *yaml.Node, what string, d decimal.Decimal) (decimal.Decimal, bool) {
	b, err := boundDecimal(d)
	if err != nil {
		p.errorf(n, "%s: %v", what, err)
		return d, false
	}
	return b, true
}

func (p *parser) duration(n *yaml.Node, what string) (Duration, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return Duration{}, false
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.errorf(n, "%s: invalid duration %q: %v", what, s, err)
		return Duration{}, false
	}
	return d, true
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func (p *parser) currency(root, n *yaml.Node) {
	p.prog.CurrencyDigits = 2
	if n == nil {
		p.errorf(root, "currency is required: an ISO 4217 code like USD")
		return
	}
	s, ok := p.str(n, "currency")
	if !ok {
		return
	}
	if !currencyCode.MatchString(s) {
		p.errorf(n, "currency must be an ISO 4217 code of three capital letters like USD, got %q", s)
		return
	}
	p.prog.Currency = s
	p.prog.CurrencyDigits = digitsOf(s)
}

func (p *parser) timezone(n *yaml.Node) {
	if n == nil {
		return
	}
	s, ok := p.str(n, "timezone")
	if !ok {
		return
	}
	// "" and "Local" load, but mean the machine's zone, which would make
	// the program behave differently on each server.
	loc, err := time.LoadLocation(s)
	if s == "" || s == "Local" || err != nil {
		p.errorf(n, "unknown timezone %q: expected an IANA zone like America/New_York or UTC", s)
		return
	}
	p.prog.Location = loc
}

func (p *parser) points(n *yaml.Node) {
	if n == nil {
		return
	}
	f := p.fields(n, "points", pointsKeys)
	pts := &p.prog.Points
	if v := f["rounding"]; v != nil {
		if s, ok := p.enum(v, "rounding", []string{"floor", "nearest", "ceil"}); ok {
			pts.Rounding = Rounding(s)
		}
	}
	if v := f["pending"]; v != nil {
		pts.Pending, _ = p.duration(v, "pending")
	}
	e := f["expiry"]
	if e == nil {
		return
	}
	ef := p.fields(e, "expiry", expiryKeys)
	if v := ef["after"]; v != nil {
		pts.Expiry.After, _ = p.duration(v, "after")
	}
	if v := ef["at"]; v != nil {
		pts.Expiry.At, _ = p.enum(v, "at", []string{EndOfMonth, EndOfQuarter, EndOfYear})
	}
	if v := ef["notify_before"]; v != nil {
		pts.Expiry.NotifyBefore, _ = p.duration(v, "notify_before")
	}
}

func (p *parser) tiers(n *yaml.Node) {
	t := &p.prog.Tiers
	if n == nil {
		t.Levels = []Level{{Name: "member", Multiplier: decimal.NewFromInt(1)}}
		return
	}
	f := p.fields(n, "tiers", tiersKeys)
	if f == nil {
		t.Levels = []Level{{Name: "member", Multiplier: decimal.NewFromInt(1)}}
		return
	}
	if v := f["metric"]; v != nil {
		if s, ok := p.enum(v, "metric", []string{"spend", "points", "visits"}); ok {
			t.Metric = Metric(s)
		}
	}
	if v := f["window"]; v != nil {
		p.window(v)
	}
	if v := f["downgrade"]; v != nil {
		if s, ok := p.enum(v, "downgrade", []string{"one_step", "to_qualified"}); ok {
			t.Downgrade = s
		}
	}
	if v := f["grace"]; v != nil {
		t.Grace, _ = p.duration(v, "grace")
	}
	p.levels(n, f["levels"])
	if len(t.Levels) == 0 {
		// Keep checking the rest of the file against a usable tier.
		t.Levels = []Level{{Name: "member", Multiplier: decimal.NewFromInt(1)}}
	}
}

func (p *parser) window(n *yaml.Node) {
	t := &p.prog.Tiers
	if n.Kind == yaml.ScalarNode && n.Value == "calendar_year" {
		t.CalendarYear, t.Window = true, Duration{}
		return
	}
	s, ok := p.str(n, "window")
	if !ok {
		return
	}
	d, err := ParseDuration(s)
	switch {
	case err != nil:
		p.errorf(n, "invalid window %q: expected calendar_year or a duration like 30d, 12mo, 1y or 36h", s)
	case d.IsZero():
		p.errorf(n, "window must be longer than zero")
	default:
		t.Window = d
	}
}

func (p *parser) levels(tiers, n *yaml.Node) {
	if n == nil {
		p.errorf(tiers, "tiers needs levels: at least one, with threshold 0")
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "levels must be a list, got %s", describe(n))
		return
	}
	if len(n.Content) == 0 {
		p.errorf(n, "levels needs at least one level, with threshold 0")
		return
	}
	names := map[string]int{}
	var prev *Level
	for i, ln := range n.Content {
		l, thr := p.level(resolve(ln))
		if l == nil {
			continue
		}
		if line, dup := names[l.Name]; dup && l.Name != "" {
			p.errorf(l.nameNode, "duplicate tier name %q (first at line %d)", l.Name, line)
		}
		names[l.Name] = l.nameNode.Line
		if thr {
			switch {
			case i == 0 && l.Threshold != 0:
				p.errorf(l.thresholdNode, "the first tier's threshold must be 0, got %s", p.formatThreshold(l.Threshold))
			case prev != nil && l.Threshold <= prev.Threshold:
				p.errorf(l.thresholdNode, "threshold %s is not above the previous tier %s (%s)",
					p.formatThreshold(l.Threshold), prev.Name, p.formatThreshold(prev.Threshold))
			}
			prev = &l.Level
		}
		p.prog.Tiers.Levels = append(p.prog.Tiers.Levels, l.Level)
	}
}

func (p *parser) formatThreshold(v int64) string {
	if p.prog.Tiers.Metric == MetricSpend {
		return formatMinor(v, p.prog.CurrencyDigits)
	}
	return strconv.FormatInt(v, 10)
}

// parsedLevel keeps the nodes a level is checked against its neighbours by.
type parsedLevel struct {
	Level
	nameNode, thresholdNode *yaml.Node
}

// level reads one level; thrOK reports whether its threshold is usable for
// the ordering checks.
func (p *parser) level(n *yaml.Node) (l *parsedLevel, thrOK bool) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "a tier level must be a mapping with name and threshold, got %s", describe(n))
		return nil, false
	}
	l = &parsedLevel{Level: Level{Multiplier: decimal.NewFromInt(1)}, nameNode: n}
	for k, v := range p.pairs(n) {
		if v.ShortTag() == "!!null" {
			continue
		}
		switch k.Value {
		case "name":
			l.nameNode = v
			if name, ok := p.str(v, "name"); ok {
				l.Name = name
				if strings.TrimSpace(name) == "" {
					p.errorf(v, "name must not be empty")
				}
			}
		case "threshold":
			l.thresholdNode = v
			l.Threshold, thrOK = p.threshold(v)
		case "multiplier":
			if d, ok := p.number(v, "multiplier"); ok {
				l.Multiplier = d
			}
		case "reward":
			l.Reward = p.rewardRef(v)
		default:
			// Other keys are the marketer's own (benefits, colour...), but
			// one a letter away from a known key is a typo, not a new field.
			if suggest(k.Value, levelKeys) != "" {
				p.unknownKey(k, levelKeys)
				continue
			}
			x, ok := p.extra(v, k.Value)
			if !ok {
				continue
			}
			if l.Extra == nil {
				l.Extra = map[string]any{}
			}
			l.Extra[k.Value] = x
		}
	}
	if l.nameNode == n {
		p.errorf(n, "a tier level needs a name")
	}
	if l.thresholdNode == nil {
		p.errorf(n, "tier %q needs a threshold", l.Name)
	}
	return l, thrOK
}

// threshold reads a level's threshold in the unit of the tier metric.
func (p *parser) threshold(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "threshold must be a number, got %s", describe(n))
		return 0, false
	}
	if p.prog.Tiers.Metric == MetricSpend {
		// Quoted or not, the text is exact: no float is involved.
		v, err := parseMinor(n.Value, p.prog.CurrencyDigits)
		if err != nil {
			p.errorf(n, "threshold %q %v", n.Value, err)
			return 0, false
		}
		return v, true
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || v < 0 {
		p.errorf(n, "threshold must be a whole number of %s, got %s", p.prog.Tiers.Metric, describe(n))
		return 0, false
	}
	return v, true
}

// extra converts a marketer's own level value into what expressions see:
// numbers as decimals, text, booleans and lists of those.
func (p *parser) extra(n *yaml.Node, key string) (any, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			d, err := decimal.NewFromString(strings.ReplaceAll(n.Value, "_", ""))
			if err != nil {
				p.errorf(n, "%s: %q is not a decimal number", key, n.Value)
				return nil, false
			}
			d, ok := p.bounded(n, key, d)
			return d, ok
		case "!!bool":
			b, _ := strconv.ParseBool(n.Value)
			return b, true
		case "!!null":
			// Only reachable inside a list: an empty value of a level is
			// skipped like any other.
			p.errorf(n, "%s: a list cannot hold an empty value", key)
			return nil, false
		}
		return n.Value, true
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind == yaml.AliasNode {
				// An alias could refer to the list holding it.
				p.errorf(c, "%s: aliases are not allowed inside a list", key)
				return nil, false
			}
			x, ok := p.extra(c, key)
			if !ok {
				return nil, false
			}
			list = append(list, x)
		}
		return list, true
	}
	p.errorf(n, "%s must be a number, text, true/false or a list, got %s", key, describe(n))
	return nil, false
}

func (p *parser) earn(n *yaml.Node) {
	if n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "earn must be a list of rules, got %s", describe(n))
		return
	}
	c := newCompiler(p.prog.Location, p.prog.tier)
	names := map[string]int{}
	p.prog.byName = map[string]*EarnRule{}
	for _, rn := range n.Content {
		rn = resolve(rn)
		r := p.rule(c, rn)
		if r == nil {
			continue
		}
		if line, dup := names[r.rule.Name]; dup {
			p.errorf(r.nameNode, "duplicate rule name %q (first at line %d)", r.rule.Name, line)
			continue
		}
		names[r.rule.Name] = r.nameNode.Line
		p.prog.Rules = append(p.prog.Rules, r.rule)
		p.prog.byName[r.rule.Name] = r.rule
		p.prog.cost.add(r.rule)
	}
	p.prog.literals = c.literals.list
}

type parsedRule struct {
	rule     *EarnRule
	nameNode *yaml.Node
}

// rule reads one earn rule; nil when it has no usable name.
func (p *parser) rule(c *exprCompiler, n *yaml.Node) *parsedRule {
	f := p.fields(n, "an earn rule", ruleKeys)
	if f == nil {
		return nil
	}
	r := &EarnRule{line: n.Line, column: n.Column}
	var named bool
	if v := f["name"]; v != nil {
		r.Name, named = p.str(v, "name")
		if named && strings.TrimSpace(r.Name) == "" {
			p.errorf(v, "name must not be empty")
			named = false
		}
	} else {
		p.errorf(n, "an earn rule needs a name")
	}
	if v := f["for_each"]; v != nil {
		if _, ok := p.enum(v, "for_each", []string{"item"}); ok {
			r.ForEachItem = true
		}
	}
	if v := f["when"]; v != nil {
		r.when, r.whenAt, r.whenCost = p.expression(c, r, v, "when", kindBool)
	}
	if v := f["points"]; v != nil {
		r.points, r.pointsAt, r.pointsCost = p.expression(c, r, v, "points", kindNumber)
	} else {
		p.errorf(n, "%s needs points: an expression that yields a number", ruleLabel(r.Name))
	}
	if v := f["active"]; v != nil {
		p.active(r, v)
	}
	caps := []struct {
		key string
		dst *int64
	}{
		{"max_per_purchase", &r.MaxPerPurchase},
		{"max_per_member", &r.MaxPerMember},
		{"max_per_day", &r.MaxPerDay},
		{"max_per_month", &r.MaxPerMonth},
		{"max_per_year", &r.MaxPerYear},
	}
	for _, cp := range caps {
		if v := f[cp.key]; v != nil {
			*cp.dst, _ = p.integer(v, cp.key, 1)
		}
	}
	if !named {
		return nil
	}
	return &parsedRule{rule: r, nameNode: f["name"]}
}

// ruleLabel names a rule in a message, even one whose name is missing.
func ruleLabel(name string) string {
	if name == "" {
		return "an earn rule"
	}
	return fmt.Sprintf("rule %q", name)
}

func (p *parser) active(r *EarnRule, n *yaml.Node) {
	f := p.fields(n, "active", activeKeys)
	if f == nil {
		return
	}
	from, until := f["from"], f["until"]
	if from == nil && until == nil {
		p.errorf(n, "active needs from, until or both")
		return
	}
	if from != nil {
		r.ActiveFrom, _ = p.date(from, "from")
	}
	if until != nil {
		r.ActiveUntil, _ = p.date(until, "until")
	}
	if !r.ActiveFrom.IsZero() && !r.ActiveUntil.IsZero() && r.ActiveUntil.Before(r.ActiveFrom) {
		p.errorf(until, "until %s is before from %s", until.Value, from.Value)
	}
}

// date reads a YYYY-MM-DD date as midnight in the program's zone.
func (p *parser) date(n *yaml.Node, what string) (time.Time, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(time.DateOnly, s, p.prog.Location)
	if err != nil {
		p.errorf(n, "%s must be a date like 2026-12-31, got %q", what, s)
		return time.Time{}, false
	}
	return t, true
}

// expression compiles a when or points value of rule r, positioning any
// error inside the YAML scalar. It returns where the expression is, for
// the errors it may raise when it runs, and what a run costs outside its
// loops.
func (p *parser) expression(c *exprCompiler, r *EarnRule, n *yaml.Node, what string, kind exprKind) (*vm.Program, exprSite, int64) {
	site := exprSite{what: what, line: n.Line, column: n.Column, style: n.Style, value: n.Value}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be an expression, got %s", what, describe(n))
		return nil, site, 0
	}
	if strings.TrimSpace(n.Value) == "" {
		p.errorf(n, "%s must not be empty", what)
		return nil, site, 0
	}
	sc := scopePurchase
	if r.ForEachItem {
		sc = scopeItem
	}
	prog, metered, err := c.compile(n.Value, kind, sc)
	if err != nil {
		line, col := p.scalarPos(n, err.offset)
		p.errorAt(line, col, "%s", err.message)
		return nil, site, 0
	}
	r.metered = r.metered || metered
	return prog, site, programCost(prog)
}

// DefaultRetention is how long events are kept when the file says not.
var DefaultRetention = Duration{Fixed: 30 * 24 * time.Hour}

// Events configures the events feed.
type Events struct {
	// Retention is how long events are kept: the prune-events job deletes
	// older ones that every enabled webhook endpoint has had.
	Retention Duration
}

// events reads the events section.
func (p *parser) events(n *yaml.Node) {
	p.prog.Events = Events{Retention: DefaultRetention}
	if n == nil {
		return
	}
	f := p.fields(n, "events", eventsKeys)
	if v := f["retention"]; v != nil {
		if d, ok := p.duration(v, "retention"); ok {
			if d.IsZero() {
				p.errorf(v, "retention must be longer than zero")
				return
			}
			p.prog.Events.Retention = d
		}
	}
}

// limits reads the budget of an evaluation; a rules file may lower it or
// raise it up to the ceilings.
func (p *parser) limits(n *yaml.Node) {
	if n == nil {
		return
	}
	f := p.fields(n, "limits", limitsKeys)
	l := &p.prog.Limits
	for _, lim := range []struct {
		key      string
		dst      *int64
		ceiling  int64
		unitName string
	}{
		{"steps", &l.Steps, MaxSteps, "steps"},
		{"memory", &l.Memory, MaxMemory, "bytes"},
	} {
		v := f[lim.key]
		if v == nil {
			continue
		}
		x, ok := p.integer(v, lim.key, 1)
		if !ok {
			continue
		}
		if x > lim.ceiling {
			p.errorf(v, "%s must be at most %d %s, got %d", lim.key, lim.ceiling, lim.unitName, x)
			continue
		}
		*lim.dst = x
	}
}

func (p *parser) bonuses(n *yaml.Node) {
	if n == nil {
		return
	}
	f := p.fields(n, "bonuses", bonusKeys)
	b := &p.prog.Bonuses
	if v := f["enrol"]; v != nil {
		b.Enrol, _ = p.integer(v, "enrol", 0)
	}
	if v := f["referral"]; v != nil {
		rf := p.fields(v, "referral", referKeys)
		if x := rf["referrer"]; x != nil {
			b.Referral.Referrer, _ = p.integer(x, "referrer", 0)
		}
		if x := rf["referee"]; x != nil {
			b.Referral.Referee, _ = p.integer(x, "referee", 0)
		}
		if x := rf["after"]; x != nil {
			p.enum(x, "after", []string{"first_purchase"})
		}
	}
	if v := f["birthday"]; v != nil {
		bf := p.fields(v, "birthday", birthdayKeys)
		if x := bf["points"]; x != nil {
			b.Birthday, _ = p.integer(x, "points", 0)
		}
		if x := bf["reward"]; x != nil {
			b.BirthdayReward = p.rewardRef(x)
		}
	}
}

func (p *parser) jobs(n *yaml.Node) {
	jobs := append([]Job(nil), defaultJobs...)
	p.prog.Jobs = jobs
	if n == nil {
		return
	}
	f := p.fields(n, "jobs", JobNames())
	for i, j := range jobs {
		v := f[j.Name]
		if v == nil {
			continue
		}
		s, ok := p.str(v, j.Name)
		if !ok {
			continue
		}
		if err := checkSchedule(s); err != nil {
			p.errorf(v, "invalid schedule %q for %s: %v", s, j.Name, err)
			continue
		}
		jobs[i].Schedule = s
	}
}

// checkSchedule accepts what cron.ParseStandard does, except a TZ= prefix:
// jobs run in the program's zone.
func checkSchedule(s string) error {
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return fmt.Errorf("jobs run in the program's timezone; remove the TZ= prefix")
	}
	if _, err := cron.ParseStandard(s); err != nil {
		return fmt.Errorf("%v (expected 5 fields like \"30 2 * * *\" or a descriptor like @daily)", err)
	}
	return nil
}

// scalarPos maps a character offset in the value of scalar n to a file
// position. It is exact for single-line scalars and literal blocks and a
// close guess for folded ones, where line breaks became spaces.
func (p *parser) scalarPos(n *yaml.Node, offset int) (line, col int) {
	value := []rune(n.Value)
	offset = max(0, min(offset, len(value)))
	if n.Style&yaml.LiteralStyle != 0 {
		// Each line of the value is a line of the block, less the block's
		// indentation.
		row, c := 0, offset
		for i := 0; i < offset; i++ {
			if value[i] == '\n' {
				row, c = row+1, offset-i-1
			}
		}
		text, ok := p.line(n.Line + 1 + row)
		if !ok {
			return n.Line, n.Column
		}
		indent := p.blockIndent(n.Line + 1)
		if text == "" {
			return n.Line + 1 + row, 1
		}
		return n.Line + 1 + row, indent + c + 1
	}
	line, col = n.Line, n.Column
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		col++
	}
	if n.Style&yaml.FoldedStyle != 0 {
		line++
		text, _ := p.line(line)
		col = utf8.RuneCountInString(text) - utf8.RuneCountInString(strings.TrimLeft(text, " ")) + 1
	}
	// Walk the source lines the value was folded from, each contributing its
	// trimmed text and one separator.
	rest := offset
	for {
		text, ok := p.line(line)
		if !ok {
			return line - 1, col
		}
		runes := []rune(text)
		start := min(col-1, len(runes))
		seg := strings.TrimRight(string(runes[start:]), " \t")
		n := utf8.RuneCountInString(seg)
		if rest <= n {
			return line, col + rest
		}
		rest -= n + 1
		line++
		next, _ := p.line(line)
		col = utf8.RuneCountInString(next) - utf8.RuneCountInString(strings.TrimLeft(next, " \t")) + 1
	}
}

// blockIndent is the indentation of the first non-blank line from line on.
func (p *parser) blockIndent(line int) int {
	for {
		text, ok := p.line(line)
		if !ok {
			return 0
		}
		if trimmed := strings.TrimLeft(text, " "); trimmed != "" {
			return len(text) - len(trimmed)
		}
		line++
	}
}
