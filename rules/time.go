package rules

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Units of the duration syntax, with the largest count each accepts: about
// a century, which is far beyond any loyalty policy and keeps time.Duration
// from overflowing.
var durationUnits = []struct {
	suffix string
	max    int
	months int
	fixed  time.Duration
}{
	{"mo", 1200, 1, 0},
	{"y", 100, 12, 0},
	{"d", 36500, 0, 24 * time.Hour},
	{"h", 876000, 0, time.Hour},
}

// errDuration is the message for any malformed duration; it shows the forms
// rather than explaining the grammar.
var errDuration = errors.New("expected a duration like 30d, 12mo, 1y or 36h")

// ParseDuration reads a duration written as a whole number and a unit: d
// (24 hours), h, mo (calendar months) or y (12 calendar months).
func ParseDuration(s string) (Duration, error) {
	for _, u := range durationUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		if !allDigits(num) {
			return Duration{}, errDuration
		}
		n, err := strconv.Atoi(num)
		if err != nil || n > u.max {
			return Duration{}, errors.New("duration is too long (at most 100 years)")
		}
		return Duration{Months: n * u.months, Fixed: time.Duration(n) * u.fixed}, nil
	}
	return Duration{}, errDuration
}

// IsZero reports whether d is empty, which the rules file uses for "none".
func (d Duration) IsZero() bool {
	return d.Months == 0 && d.Fixed == 0
}

// AddTo returns t plus d: calendar months first, then the fixed part.
func (d Duration) AddTo(t time.Time) time.Time {
	if d.Months != 0 {
		t = t.AddDate(0, d.Months, 0)
	}
	return t.Add(d.Fixed)
}

// SubtractFrom returns t minus d: calendar months first, then the fixed
// part, so it undoes AddTo except at month ends.
func (d Duration) SubtractFrom(t time.Time) time.Time {
	if d.Months != 0 {
		t = t.AddDate(0, -d.Months, 0)
	}
	return t.Add(-d.Fixed)
}

// String writes d back in the rules file's syntax ("12mo", "30d", "36h").
func (d Duration) String() string {
	if d.IsZero() {
		return "0d"
	}
	var b strings.Builder
	if d.Months != 0 {
		b.WriteString(strconv.Itoa(d.Months) + "mo")
	}
	switch f := d.Fixed; {
	case f == 0:
	case f%(24*time.Hour) == 0:
		b.WriteString(strconv.FormatInt(int64(f/(24*time.Hour)), 10) + "d")
	case f%time.Hour == 0:
		b.WriteString(strconv.FormatInt(int64(f/time.Hour), 10) + "h")
	default:
		b.WriteString(f.String())
	}
	return b.String()
}

// Periods expiry.at may name.
const (
	EndOfMonth   = "end_of_month"
	EndOfQuarter = "end_of_quarter"
	EndOfYear    = "end_of_year"
)

// ExpiresAt returns when points earned at earned expire, or the zero time
// when they never do. With expiry.at the result is the first instant of the
// period after the one the expiry falls in, so a lot is expired when
// now >= ExpiresAt: "end_of_year" after 12mo turns a purchase on 2026-03-05
// into 2028-01-01 00:00 in the program's zone.
func (p *Program) ExpiresAt(earned time.Time) time.Time {
	e := p.Points.Expiry
	if e.After.IsZero() && e.At == "" {
		return time.Time{}
	}
	t := e.After.AddTo(earned)
	if e.At == "" {
		return t
	}
	y, m, _ := t.In(p.location()).Date()
	switch e.At {
	case EndOfMonth:
		m++
	case EndOfQuarter:
		m = (m-1)/3*3 + 4
	default:
		y, m = y+1, time.January
	}
	return time.Date(y, m, 1, 0, 0, 0, 0, p.location())
}

// AvailableAt returns when points earned at earned can be spent.
func (p *Program) AvailableAt(earned time.Time) time.Time {
	return p.Points.Pending.AddTo(earned)
}

// WindowStart returns the start of the tier qualification window that ends
// at now: the rolling window before now, or 1 January of now's year in the
// program's zone for calendar_year.
func (p *Program) WindowStart(now time.Time) time.Time {
	now = now.In(p.location())
	if p.Tiers.CalendarYear {
		return time.Date(now.Year(), time.January, 1, 0, 0, 0, 0, p.location())
	}
	w := p.Tiers.Window
	return now.AddDate(0, -w.Months, 0).Add(-w.Fixed)
}

// ZoneDate returns the calendar date of t in the program's zone, which is
// what daily caps, active dates and birthdays are counted in.
func (p *Program) ZoneDate(t time.Time) (year int, month time.Month, day int) {
	return t.In(p.location()).Date()
}

// location is the program's zone, UTC for a Program not built by Parse.
func (p *Program) location() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// Index returns the position of the level called name, or -1.
func (t *Tiers) Index(name string) int {
	for i, l := range t.Levels {
		if l.Name == name {
			return i
		}
	}
	return -1
}

// Qualified returns the highest level whose threshold value reaches; 0 when
// value is below every threshold, as after refunds.
func (t *Tiers) Qualified(value int64) int {
	q := 0
	for i, l := range t.Levels {
		if l.Threshold <= value {
			q = i
		}
	}
	return q
}

// Job returns the schedule of the job called name.
func (p *Program) Job(name string) (Job, bool) {
	for _, j := range p.Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return Job{}, false
}
