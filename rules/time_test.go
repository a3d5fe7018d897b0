package rules

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		str  string
	}{
		{"30d", Duration{Fixed: 30 * 24 * time.Hour}, "30d"},
		{"12mo", Duration{Months: 12}, "12mo"},
		{"1y", Duration{Months: 12}, "12mo"},
		{"36h", Duration{Fixed: 36 * time.Hour}, "36h"},
		{"48h", Duration{Fixed: 48 * time.Hour}, "2d"},
		{"0d", Duration{}, "0d"},
		{"007d", Duration{Fixed: 7 * 24 * time.Hour}, "7d"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.str {
			t.Errorf("%q: String() = %q, want %q", tt.in, s, tt.str)
		}
	}
	for _, in := range []string{"", "d", "-1d", "12x", "1.5d", "1 d", "+1d", "1D", "12m", "30s", "1y2mo", "101y", "99999999999999999999d"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %+v, want an error", in, d)
		}
	}
	if _, err := ParseDuration("12x"); err == nil || err.Error() != "expected a duration like 30d, 12mo, 1y or 36h" {
		t.Errorf("message = %v", err)
	}
	if s := (Duration{Months: 1, Fixed: 90 * time.Minute}).String(); s != "1mo1h30m0s" {
		t.Errorf("mixed String() = %q", s)
	}
}

func TestDurationAddTo(t *testing.T) {
	start := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		d    Duration
		want time.Time
	}{
		{Duration{}, start},
		{Duration{Fixed: 36 * time.Hour}, time.Date(2026, 2, 1, 22, 0, 0, 0, time.UTC)},
		{Duration{Months: 12}, time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC)},
		{Duration{Months: 1, Fixed: 24 * time.Hour}, time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}, // Feb 31 is Mar 3
	}
	for _, tt := range tests {
		if got := tt.d.AddTo(start); !got.Equal(tt.want) {
			t.Errorf("%v.AddTo = %v, want %v", tt.d, got, tt.want)
		}
	}
	if !(Duration{}).IsZero() || (Duration{Months: 1}).IsZero() {
		t.Error("IsZero")
	}
}

func expiryProgram(t *testing.T, zone, expiry string) *Program {
	t.Helper()
	return mustParse(t, "currency: USD\ntimezone: "+zone+"\npoints:\n  expiry: "+expiry+"\n")
}

func TestExpiresAt(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	tests := []struct {
		name   string
		zone   string
		expiry string
		earned time.Time
		want   time.Time
	}{
		{"never", "UTC", "{}", saturday, time.Time{}},
		{"12mo", "America/New_York", "{after: 12mo}", time.Date(2026, 3, 5, 10, 0, 0, 0, ny), time.Date(2027, 3, 5, 10, 0, 0, 0, ny)},
		{"30d", "UTC", "{after: 30d}", time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC), time.Date(2026, 4, 4, 10, 0, 0, 0, time.UTC)},
		{"end of year after 12mo", "America/New_York", "{after: 12mo, at: end_of_year}", time.Date(2026, 3, 5, 10, 0, 0, 0, ny), time.Date(2028, 1, 1, 0, 0, 0, 0, ny)},
		{"end of year only", "America/New_York", "{at: end_of_year}", time.Date(2026, 3, 5, 10, 0, 0, 0, ny), time.Date(2027, 1, 1, 0, 0, 0, 0, ny)},
		{"end of year in zone", "America/New_York", "{at: end_of_year}", time.Date(2027, 1, 1, 3, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, ny)},
		{"end of quarter", "UTC", "{at: end_of_quarter}", time.Date(2026, 3, 31, 16, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"end of quarter across zones", "Asia/Tokyo", "{at: end_of_quarter}", time.Date(2026, 3, 31, 16, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, tokyo)},
		{"end of last quarter", "UTC", "{after: 3mo, at: end_of_quarter}", time.Date(2026, 8, 15, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"end of month", "UTC", "{after: 1mo, at: end_of_month}", time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)},
		{"start of a period ends it", "UTC", "{at: end_of_month}", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := expiryProgram(t, tt.zone, tt.expiry)
			if got := p.ExpiresAt(tt.earned); !got.Equal(tt.want) {
				t.Errorf("ExpiresAt(%v) = %v, want %v", tt.earned, got, tt.want)
			}
		})
	}
}

func TestAvailableAt(t *testing.T) {
	p := mustParse(t, "currency: USD\npoints:\n  pending: 14d\n")
	if got := p.AvailableAt(saturday); !got.Equal(saturday.Add(14 * 24 * time.Hour)) {
		t.Errorf("AvailableAt = %v", got)
	}
}

func TestWindowStart(t *testing.T) {
	rolling := mustParse(t, "currency: USD\ntimezone: America/New_York\ntiers:\n  window: 6mo\n  levels: [{name: a, threshold: 0}]\n")
	if got, want := rolling.WindowStart(saturday), time.Date(2025, 9, 7, 15, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("rolling = %v, want %v", got, want)
	}
	hours := mustParse(t, "currency: USD\ntiers:\n  window: 36h\n  levels: [{name: a, threshold: 0}]\n")
	if got, want := hours.WindowStart(saturday), saturday.Add(-36*time.Hour); !got.Equal(want) {
		t.Errorf("36h = %v, want %v", got, want)
	}
	cal := mustParse(t, "currency: USD\ntimezone: America/New_York\ntiers:\n  window: calendar_year\n  levels: [{name: a, threshold: 0}]\n")
	if got, want := cal.WindowStart(saturday), time.Date(2026, 1, 1, 0, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("calendar = %v, want %v", got, want)
	}
	// New Year in London is still 2025 in New York.
	if got, want := cal.WindowStart(time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)), time.Date(2025, 1, 1, 0, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("calendar across zones = %v, want %v", got, want)
	}
}

func TestZoneDate(t *testing.T) {
	p := mustParse(t, "currency: USD\ntimezone: America/New_York\n")
	y, m, d := p.ZoneDate(time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC))
	if y != 2025 || m != time.December || d != 31 {
		t.Errorf("ZoneDate = %d-%d-%d", y, m, d)
	}
}

func TestTiers(t *testing.T) {
	p := mustParse(t, `currency: USD
tiers:
  levels:
    - {name: green, threshold: "0"}
    - {name: gold, threshold: "500.00"}
    - {name: platinum, threshold: "2000.00"}
`)
	tiers := &p.Tiers
	for name, want := range map[string]int{"green": 0, "gold": 1, "platinum": 2, "bronze": -1, "": -1} {
		if got := tiers.Index(name); got != want {
			t.Errorf("Index(%q) = %d, want %d", name, got, want)
		}
	}
	for value, want := range map[int64]int{-100: 0, 0: 0, 49999: 0, 50000: 1, 199999: 1, 200000: 2, 1 << 60: 2} {
		if got := tiers.Qualified(value); got != want {
			t.Errorf("Qualified(%d) = %d, want %d", value, got, want)
		}
	}
}
