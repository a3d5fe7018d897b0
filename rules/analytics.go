package rules

import (
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"go.yaml.in/yaml/v3"
)

// Analytics holds the parameters of the analytics job: every threshold that
// turns a member's history into value, segment, lifecycle stage and churn
// risk. docs/ANALYTICS.md defines each figure in terms of these.
type Analytics struct {
	// Window is the history the figures look at: RFM, spend rates, CLV and
	// the lifecycle comparisons.
	Window Duration
	// Margin is the share of spend that is profit, from 0 to 1.
	Margin decimal.Decimal
	// PointCost is what one point costs the business, in major units of the
	// currency; it may be finer than the currency ("0.005").
	PointCost decimal.Decimal
	// Horizon is the expected remaining membership, in years.
	Horizon decimal.Decimal
	// TopShare is the share of members that counts as the top: for mvc and
	// mgc, and for the revenue concentration of the summary.
	TopShare decimal.Decimal
	// NewWithin is how recently a member must have enrolled to be new; it is
	// also the shortest history a yearly rate is extrapolated from.
	NewWithin Duration
	// Growth is the factor by which the spend rate of the last quarter of
	// the window must exceed the earlier rate for a member to be growing.
	Growth decimal.Decimal
	// Decline is the factor below which the last quarter's visit or spend
	// rate must fall, against the earlier rate, for a member to be declining.
	Decline decimal.Decimal
	// ChurnMultiple of the usual interval without a purchase makes a member
	// churned.
	ChurnMultiple decimal.Decimal
	// ChurnAfter without a purchase makes a member churned, whatever their
	// interval.
	ChurnAfter Duration
	// RiskMultiple of the usual interval without a purchase puts a member at
	// risk of churning.
	RiskMultiple decimal.Decimal
}

// analyticsKeys are the keys of the analytics section, in the order the
// example and the docs list them.
var analyticsKeys = []string{
	"window", "margin", "point_cost", "horizon", "top_share", "new_within",
	"growth", "decline", "churn_multiple", "churn_after", "risk_multiple",
}

// DefaultAnalytics returns the parameters used for keys the file leaves out.
func DefaultAnalytics() Analytics {
	day := 24 * time.Hour
	return Analytics{
		Window:        Duration{Months: 12},
		Margin:        decimal.RequireFromString("0.3"),
		PointCost:     decimal.RequireFromString("0.01"),
		Horizon:       decimal.NewFromInt(3),
		TopShare:      decimal.RequireFromString("0.2"),
		NewWithin:     Duration{Fixed: 90 * day},
		Growth:        decimal.RequireFromString("1.5"),
		Decline:       decimal.RequireFromString("0.5"),
		ChurnMultiple: decimal.NewFromInt(3),
		ChurnAfter:    Duration{Fixed: 180 * day},
		RiskMultiple:  decimal.NewFromInt(2),
	}
}

// numberRange is the values a parameter allows: from min (above it when
// minOpen) up to max, when max is set.
type numberRange struct {
	min     string
	minOpen bool
	max     string
}

func (r numberRange) allows(d decimal.Decimal) bool {
	lo := decimal.RequireFromString(r.min)
	if d.LessThan(lo) || r.minOpen && d.Equal(lo) {
		return false
	}
	return r.max == "" || !d.GreaterThan(decimal.RequireFromString(r.max))
}

// String says which values the range allows: "from 0 to 1", "above 0",
// "at least 1".
func (r numberRange) String() string {
	switch {
	case r.minOpen && r.max != "":
		return "above " + r.min + " and at most " + r.max
	case r.max != "":
		return "from " + r.min + " to " + r.max
	case r.minOpen:
		return "above " + r.min
	default:
		return "at least " + r.min
	}
}

func (p *parser) analytics(n *yaml.Node) {
	a := &p.prog.Analytics
	*a = DefaultAnalytics()
	if n == nil {
		return
	}
	f := p.fields(n, "analytics", analyticsKeys)
	durations := []struct {
		key      string
		dst      *Duration
		positive bool
	}{
		{"window", &a.Window, true},
		{"new_within", &a.NewWithin, false},
		{"churn_after", &a.ChurnAfter, true},
	}
	for _, d := range durations {
		v := f[d.key]
		if v == nil {
			continue
		}
		x, ok := p.duration(v, d.key)
		if !ok {
			continue
		}
		if d.positive && x.IsZero() {
			p.errorf(v, "%s must be longer than zero", d.key)
			continue
		}
		*d.dst = x
	}
	numbers := []struct {
		key   string
		dst   *decimal.Decimal
		rng   numberRange
		means string
	}{
		{"margin", &a.Margin, numberRange{min: "0", max: "1"}, "a share of spend"},
		{"point_cost", &a.PointCost, numberRange{min: "0"}, "money per point"},
		{"horizon", &a.Horizon, numberRange{min: "0", max: "100"}, "years"},
		{"top_share", &a.TopShare, numberRange{min: "0", minOpen: true, max: "1"}, "a share of members"},
		{"growth", &a.Growth, numberRange{min: "1"}, "a factor"},
		{"decline", &a.Decline, numberRange{min: "0", max: "1"}, "a factor"},
		{"churn_multiple", &a.ChurnMultiple, numberRange{min: "0", minOpen: true}, "a multiple of the usual interval"},
		{"risk_multiple", &a.RiskMultiple, numberRange{min: "0", minOpen: true}, "a multiple of the usual interval"},
	}
	for _, x := range numbers {
		v := f[x.key]
		if v == nil {
			continue
		}
		if d, ok := p.analyticsNumber(v, x.key, x.rng, x.means); ok {
			*x.dst = d
		}
	}
}

// analyticsNumber reads a decimal, quoted or not (point_cost is money,
// which the file usually quotes), and checks it against its range.
func (p *parser) analyticsNumber(n *yaml.Node, what string, rng numberRange, means string) (decimal.Decimal, bool) {
	var d decimal.Decimal
	var err error
	tag := n.ShortTag()
	ok := n.Kind == yaml.ScalarNode && (tag == "!!int" || tag == "!!float" || tag == "!!str")
	if ok {
		// Exponents are valid YAML floats but no way to write money.
		d, err = decimal.NewFromString(strings.ReplaceAll(n.Value, "_", ""))
		ok = err == nil && !strings.ContainsAny(n.Value, "eE")
	}
	if !ok {
		p.errorf(n, "%s must be a number (%s), got %s", what, means, describe(n))
		return d, false
	}
	if !rng.allows(d) {
		p.errorf(n, "%s must be %s, got %s", what, rng, n.Value)
		return d, false
	}
	return d, true
}
