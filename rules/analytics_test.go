package rules

import (
	"testing"
	"time"
)

func TestAnalyticsDefaults(t *testing.T) {
	p := mustParse(t, "currency: USD\n")
	a, d := p.Analytics, DefaultAnalytics()
	if a.Window != (Duration{Months: 12}) || a.NewWithin != (Duration{Fixed: 90 * 24 * time.Hour}) || a.ChurnAfter != (Duration{Fixed: 180 * 24 * time.Hour}) {
		t.Errorf("durations = %v, %v, %v", a.Window, a.NewWithin, a.ChurnAfter)
	}
	for _, c := range []struct{ name, got, want string }{
		{"margin", a.Margin.String(), "0.3"},
		{"point_cost", a.PointCost.String(), "0.01"},
		{"horizon", a.Horizon.String(), "3"},
		{"top_share", a.TopShare.String(), "0.2"},
		{"growth", a.Growth.String(), "1.5"},
		{"decline", a.Decline.String(), "0.5"},
		{"churn_multiple", a.ChurnMultiple.String(), "3"},
		{"risk_multiple", a.RiskMultiple.String(), "2"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	// The shipped example shows the defaults, so it must mean the same.
	ex := mustParse(t, string(Example)).Analytics
	if ex.Window != d.Window || ex.NewWithin != d.NewWithin || ex.ChurnAfter != d.ChurnAfter ||
		!ex.Margin.Equal(d.Margin) || !ex.PointCost.Equal(d.PointCost) || !ex.Horizon.Equal(d.Horizon) ||
		!ex.TopShare.Equal(d.TopShare) || !ex.Growth.Equal(d.Growth) || !ex.Decline.Equal(d.Decline) ||
		!ex.ChurnMultiple.Equal(d.ChurnMultiple) || !ex.RiskMultiple.Equal(d.RiskMultiple) {
		t.Errorf("example analytics %+v differ from the defaults %+v", ex, d)
	}
}

func TestAnalyticsSettings(t *testing.T) {
	p := mustParse(t, `currency: JPY
analytics:
  window: 6mo
  margin: 0.45
  point_cost: 0.5
  horizon: 2.5
  top_share: 0.1
  new_within: 30d
  growth: 2
  decline: 0
  churn_multiple: 4
  churn_after: 1y
  risk_multiple: 1.5
`)
	a := p.Analytics
	if a.Window != (Duration{Months: 6}) || a.NewWithin != (Duration{Fixed: 30 * 24 * time.Hour}) || a.ChurnAfter != (Duration{Months: 12}) {
		t.Errorf("durations = %v, %v, %v", a.Window, a.NewWithin, a.ChurnAfter)
	}
	got := []string{a.Margin.String(), a.PointCost.String(), a.Horizon.String(), a.TopShare.String(),
		a.Growth.String(), a.Decline.String(), a.ChurnMultiple.String(), a.RiskMultiple.String()}
	want := []string{"0.45", "0.5", "2.5", "0.1", "2", "0", "4", "1.5"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("parameter %d = %s, want %s", i, got[i], want[i])
		}
	}
}
