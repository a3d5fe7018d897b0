package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad")

// mustParse parses src or fails the test with every error.
func mustParse(t testing.TB, src string) *Program {
	t.Helper()
	p, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestParseExample(t *testing.T) {
	src, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, string(src))

	if p.Name != "Coffee Club" || p.Currency != "USD" || p.CurrencyDigits != 2 {
		t.Errorf("name, currency, digits = %q, %q, %d", p.Name, p.Currency, p.CurrencyDigits)
	}
	if p.Location.String() != "America/New_York" {
		t.Errorf("location = %v", p.Location)
	}
	wantPoints := Points{
		Rounding: RoundFloor,
		Expiry:   Expiry{After: Duration{Months: 12}, NotifyBefore: Duration{Fixed: 30 * 24 * time.Hour}},
	}
	if p.Points != wantPoints {
		t.Errorf("points = %+v, want %+v", p.Points, wantPoints)
	}
	tiers := p.Tiers
	if tiers.Metric != MetricSpend || tiers.Window != (Duration{Months: 12}) || tiers.CalendarYear ||
		tiers.Downgrade != "one_step" || tiers.Grace != (Duration{Fixed: 30 * 24 * time.Hour}) {
		t.Errorf("tiers = %+v", tiers)
	}
	wantLevels := []struct {
		name      string
		threshold int64
		mult      string
		benefits  int
	}{
		{"green", 0, "1", 0},
		{"gold", 50000, "1.5", 1},
		{"platinum", 200000, "2", 2},
	}
	if len(tiers.Levels) != len(wantLevels) {
		t.Fatalf("got %d levels", len(tiers.Levels))
	}
	for i, w := range wantLevels {
		l := tiers.Levels[i]
		if l.Name != w.name || l.Threshold != w.threshold || !l.Multiplier.Equal(decimal.RequireFromString(w.mult)) {
			t.Errorf("level %d = %+v", i, l)
		}
		if b, _ := l.Extra["benefits"].([]any); len(b) != w.benefits {
			t.Errorf("level %d benefits = %v", i, l.Extra["benefits"])
		}
	}
	var names []string
	for _, r := range p.Rules {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "base,coffee-bonus,weekend-beans,win-back" {
		t.Errorf("rules = %s", got)
	}
	if r := p.Rules[2]; !r.ForEachItem || r.MaxPerPurchase != 500 || r.Capped() {
		t.Errorf("weekend-beans = %+v", r)
	}
	if r := p.Rules[3]; r.ForEachItem || r.MaxPerMember != 1 || !r.Capped() {
		t.Errorf("win-back = %+v", r)
	}
	wantBonuses := Bonuses{Enrol: 50, Referral: ReferralBonus{Referrer: 200, Referee: 100, After: "first_purchase"}, Birthday: 150}
	if p.Bonuses != wantBonuses {
		t.Errorf("bonuses = %+v", p.Bonuses)
	}
	if len(p.Jobs) != len(JobNames()) || p.Jobs[1] != (Job{"evaluate-tiers", "30 2 * * *"}) {
		t.Errorf("jobs = %+v", p.Jobs)
	}
	if string(p.Source) != string(src) || len(p.Hash) != 64 {
		t.Errorf("source or hash not kept: %q", p.Hash)
	}
}

// TestParseShippedExample checks the program the binary writes on first
// start.
func TestParseShippedExample(t *testing.T) {
	mustParse(t, string(Example))
}

func TestParseDefaults(t *testing.T) {
	p := mustParse(t, `currency: JPY
jobs:
  analytics: "@hourly"
  expire-points: "0 1 * * *"
`)
	if p.CurrencyDigits != 0 || p.Location != time.UTC {
		t.Errorf("digits, location = %d, %v", p.CurrencyDigits, p.Location)
	}
	if p.Points.Rounding != RoundFloor || !p.Points.Pending.IsZero() || !p.ExpiresAt(time.Now()).IsZero() {
		t.Errorf("points = %+v", p.Points)
	}
	if p.Points.Expiry.NotifyBefore.String() != "30d" {
		t.Errorf("notify_before = %v", p.Points.Expiry.NotifyBefore)
	}
	if len(p.Tiers.Levels) != 1 || p.Tiers.Levels[0].Name != "member" || p.Tiers.Levels[0].Threshold != 0 ||
		!p.Tiers.Levels[0].Multiplier.Equal(decimal.NewFromInt(1)) {
		t.Errorf("levels = %+v", p.Tiers.Levels)
	}
	want := []Job{
		{"expire-points", "0 1 * * *"},
		{"evaluate-tiers", "30 2 * * *"},
		{"notify-expiring", "0 9 * * MON"},
		{"birthday-bonus", "0 6 * * *"},
		{"analytics", "@hourly"},
		{"expire-coupons", "@hourly"},
		{"backup", "0 4 * * *"},
	}
	for i, j := range want {
		if p.Jobs[i] != j {
			t.Errorf("job %d = %+v, want %+v", i, p.Jobs[i], j)
		}
	}
	if j, ok := p.Job("analytics"); !ok || j.Schedule != "@hourly" {
		t.Errorf("Job(analytics) = %+v, %v", j, ok)
	}
	if _, ok := p.Job("nope"); ok {
		t.Error("Job(nope) found")
	}
}

func TestParseCurrencyDigits(t *testing.T) {
	for code, want := range map[string]int{"USD": 2, "EUR": 2, "JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3, "CHF": 2} {
		if p := mustParse(t, "currency: "+code+"\n"); p.CurrencyDigits != want {
			t.Errorf("%s: digits = %d, want %d", code, p.CurrencyDigits, want)
		}
	}
}

func TestParseLevels(t *testing.T) {
	p := mustParse(t, `currency: KWD
tiers:
  metric: spend
  window: calendar_year
  downgrade: to_qualified
  levels:
    - {name: a, threshold: 0}
    - {name: b, threshold: 10.5, multiplier: 1.25, vip: true, lounge: "north", cap: 3}
    - {name: c, threshold: "1000.125", vip: false, cap: "none"}
`)
	if !p.Tiers.CalendarYear || !p.Tiers.Window.IsZero() || p.Tiers.Downgrade != "to_qualified" {
		t.Errorf("tiers = %+v", p.Tiers)
	}
	if got := p.Tiers.Levels[1].Threshold; got != 10500 {
		t.Errorf("b threshold = %d", got)
	}
	if got := p.Tiers.Levels[2].Threshold; got != 1000125 {
		t.Errorf("c threshold = %d", got)
	}
	b := p.Tiers.Levels[1].Extra
	if b["vip"] != true || b["lounge"] != "north" || !b["cap"].(decimal.Decimal).Equal(decimal.NewFromInt(3)) {
		t.Errorf("b extra = %#v", b)
	}

	p = mustParse(t, `currency: USD
tiers:
  metric: visits
  levels:
    - {name: a, threshold: 0}
    - {name: b, threshold: "10"}
    - {name: c, threshold: 25}
`)
	if got := p.Tiers.Levels[2].Threshold; got != 25 {
		t.Errorf("visits threshold = %d", got)
	}
}

func TestParseActive(t *testing.T) {
	p := mustParse(t, `currency: USD
timezone: Asia/Tokyo
earn:
  - name: dec
    points: 1
    active: {from: 2026-12-01, until: "2026-12-31"}
  - name: open
    points: 1
    active: {until: 2026-12-01}
`)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	r := p.Rules[0]
	if !r.ActiveFrom.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, tokyo)) || !r.ActiveUntil.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, tokyo)) {
		t.Errorf("active = %v .. %v", r.ActiveFrom, r.ActiveUntil)
	}
	if !p.Rules[1].ActiveFrom.IsZero() {
		t.Errorf("open from = %v", p.Rules[1].ActiveFrom)
	}
}

// TestParseErrors checks the position and message of each kind of mistake.
// Positions are 1-based; want is a substring of the message.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		line, col int
		want      string
	}{
		{"unknown top key with hint", "currency: USD\ntimezon: UTC\n", 2, 1, `unknown key "timezon"; did you mean "timezone"?`},
		{"unknown top key", "currency: USD\nprizes: {}\n", 2, 1, `unknown key "prizes"; expected one of program, currency`},
		{"unknown level key", "currency: USD\ntiers:\n  levels:\n    - {name: a, threshold: 0, mutliplier: 2}\n", 4, 31, `unknown key "mutliplier"; did you mean "multiplier"?`},
		{"unknown expiry key", "currency: USD\npoints:\n  expiry:\n    aftr: 12mo\n", 4, 5, `unknown key "aftr"; did you mean "after"?`},
		{"duplicate key", "currency: USD\ncurrency: EUR\n", 2, 1, `duplicate key "currency" (first at line 1)`},
		{"bad duration unit", "currency: USD\npoints:\n  expiry:\n    after: 12x\n", 4, 12, `invalid duration "12x": expected a duration like 30d, 12mo, 1y or 36h`},
		{"fractional duration", "currency: USD\npoints:\n  pending: 1.5d\n", 3, 12, "expected a duration like 30d"},
		{"negative duration", "currency: USD\ntiers:\n  grace: -1d\n  levels: [{name: a, threshold: 0}]\n", 3, 10, "expected a duration like 30d"},
		{"zero window", "currency: USD\ntiers:\n  window: 0d\n  levels: [{name: a, threshold: 0}]\n", 3, 11, "window must be longer than zero"},
		{"lower-case currency", "currency: usd\n", 1, 11, "currency must be an ISO 4217 code"},
		{"missing currency", "program: Club\n", 1, 1, "currency is required"},
		{"bad timezone", "currency: USD\ntimezone: Europe/Pariss\n", 2, 11, `unknown timezone "Europe/Pariss"`},
		{"local timezone", "currency: USD\ntimezone: Local\n", 2, 11, `unknown timezone "Local"`},
		{"bad rounding", "currency: USD\npoints:\n  rounding: up\n", 3, 13, `rounding must be floor, nearest or ceil, got "up"`},
		{"rounding hint", "currency: USD\npoints:\n  rounding: flor\n", 3, 13, `did you mean "floor"?`},
		{"first threshold not zero", "currency: USD\ntiers:\n  levels:\n    - {name: a, threshold: \"10\"}\n", 4, 28, "the first tier's threshold must be 0, got 10.00"},
		{"threshold decreasing", "currency: USD\ntiers:\n  levels:\n    - {name: green, threshold: \"0\"}\n    - {name: gold, threshold: \"500.00\"}\n    - {name: plat, threshold: \"400.00\"}\n",
			6, 31, "threshold 400.00 is not above the previous tier gold (500.00)"},
		{"threshold equal", "currency: USD\ntiers:\n  metric: points\n  levels:\n    - {name: a, threshold: 0}\n    - {name: b, threshold: 0}\n", 6, 28, "threshold 0 is not above the previous tier a (0)"},
		{"over-precise threshold", "currency: USD\ntiers:\n  levels:\n    - {name: a, threshold: 0}\n    - {name: b, threshold: \"9.999\"}\n", 5, 28, `threshold "9.999" has more than 2 decimals`},
		{"decimal threshold in yen", "currency: JPY\ntiers:\n  levels:\n    - {name: a, threshold: 0}\n    - {name: b, threshold: \"5.5\"}\n", 5, 28, "must be a whole amount"},
		{"fractional visits threshold", "currency: USD\ntiers:\n  metric: visits\n  levels:\n    - {name: a, threshold: 0}\n    - {name: b, threshold: 2.5}\n", 6, 28, "threshold must be a whole number of visits"},
		{"no levels", "currency: USD\ntiers:\n  levels: []\n", 3, 11, "levels needs at least one level"},
		{"levels missing", "currency: USD\ntiers:\n  metric: spend\n", 3, 3, "tiers needs levels"},
		{"duplicate tier", "currency: USD\ntiers:\n  levels:\n    - {name: a, threshold: 0}\n    - {name: a, threshold: 1}\n", 5, 14, `duplicate tier name "a" (first at line 4)`},
		{"multiplier as text", "currency: USD\ntiers:\n  levels:\n    - {name: a, threshold: 0, multiplier: \"x2\"}\n", 4, 43, `multiplier must be a number, got "x2"`},
		{"level extra mapping", "currency: USD\ntiers:\n  levels:\n    - {name: a, threshold: 0, perks: {x: 1}}\n", 4, 38, "perks must be a number, text, true/false or a list"},
		{"alias cycle", "currency: USD\ntiers: {levels: [{name: a, threshold: 0, perks: &x [*x]}]}\n", 2, 53, "aliases are not allowed inside a list"},
		{"unknown variable", "currency: USD\nearn:\n  - name: a\n    points: membr.purchase_count\n", 4, 13, `unknown name "membr"; did you mean "member"?`},
		{"misspelt tier field", "currency: USD\nearn:\n  - name: a\n    points: purchase.amount * tier.multiplyer\n", 4, 36, `tier has no field "multiplyer"; did you mean "multiplier"?`},
		{"misspelt item field in closure", "currency: USD\nearn:\n  - name: a\n    points: 'count(purchase.items, .categry == \"x\")'\n", 4, 37, `item has no field "categry"; did you mean "category"?`},
		{"misspelt field in quoted scalar", "currency: USD\nearn:\n  - name: a\n    points: \"purchase.amout * 2\"\n", 4, 23, `purchase has no field "amout"`},
		{"string compared with number", "currency: USD\nearn:\n  - name: a\n    when: purchase.store_id > 5\n    points: 1\n", 4, 29, "invalid operation: > (mismatched types string and int)"},
		{"money compared with string", "currency: USD\nearn:\n  - name: a\n    when: purchase.amount >= \"10\"\n    points: 1\n", 4, 27, "mismatched types decimal and string"},
		{"points yields a string", "currency: USD\nearn:\n  - name: a\n    points: purchase.store_id\n", 4, 13, "points must be a number, got string"},
		{"when yields a number", "currency: USD\nearn:\n  - name: a\n    when: purchase.amount * 2\n    points: 1\n", 4, 11, "when must be true or false, got decimal"},
		{"item without for_each", "currency: USD\nearn:\n  - name: a\n    points: item.quantity * 2\n", 4, 13, `item is only available in rules with "for_each: item"`},
		{"expression syntax", "currency: USD\nearn:\n  - name: a\n    points: purchase.amount *\n", 4, 29, "unexpected token EOF"},
		{"now is not available", "currency: USD\nearn:\n  - name: a\n    when: now().Hour() > 3\n    points: 1\n", 4, 11, `unknown name "now"`},
		{"block scalar", "currency: USD\nearn:\n  - name: a\n    points: |\n      purchase.amount *\n        tier.multiplyer\n", 6, 14, `tier has no field "multiplyer"`},
		{"duplicate rule name", "currency: USD\nearn:\n  - name: base\n    points: 1\n  - name: base\n    points: 2\n", 5, 11, `duplicate rule name "base" (first at line 3)`},
		{"rule without name", "currency: USD\nearn:\n  - points: 1\n", 3, 5, "an earn rule needs a name"},
		{"rule without points", "currency: USD\nearn:\n  - name: a\n    when: true\n", 3, 5, `rule "a" needs points`},
		{"for_each hint", "currency: USD\nearn:\n  - name: a\n    for_each: items\n    points: 1\n", 4, 15, `for_each must be item, got "items"; did you mean "item"?`},
		{"until before from", "currency: USD\nearn:\n  - name: a\n    points: 1\n    active: {from: 2026-12-01, until: 2026-11-30}\n", 5, 39, "until 2026-11-30 is before from 2026-12-01"},
		{"bad date", "currency: USD\nearn:\n  - name: a\n    points: 1\n    active: {from: 2026-13-01}\n", 5, 20, "from must be a date like 2026-12-31"},
		{"cap not positive", "currency: USD\nearn:\n  - name: a\n    points: 1\n    max_per_day: 0\n", 5, 18, "max_per_day must be at least 1"},
		{"wrong YAML type", "currency: USD\nearn:\n  - name: a\n    points: 1\n    max_per_member: lots\n", 5, 21, `max_per_member must be a whole number, got "lots"`},
		{"earn not a list", "currency: USD\nearn:\n  name: a\n", 3, 3, "earn must be a list of rules, got a mapping"},
		{"bad cron", "currency: USD\njobs:\n  evaluate-tiers: \"61 2 * * *\"\n", 3, 19, `invalid schedule "61 2 * * *" for evaluate-tiers`},
		{"cron with zone", "currency: USD\njobs:\n  analytics: \"TZ=UTC 0 3 * * *\"\n", 3, 14, "remove the TZ= prefix"},
		{"unknown job", "currency: USD\njobs:\n  expire-point: \"@daily\"\n", 3, 3, `unknown key "expire-point"; did you mean "expire-points"?`},
		{"bonus negative", "currency: USD\nbonuses:\n  enrol: -5\n", 3, 10, "enrol must not be negative"},
		{"referral after", "currency: USD\nbonuses:\n  referral: {referrer: 1, referee: 1, after: signup}\n", 3, 46, `after must be first_purchase, got "signup"`},
		{"limits above the ceiling", "currency: USD\nlimits: {steps: 999999999999}\n", 2, 17, "steps must be at most 50000000 steps"},
		{"limits not positive", "currency: USD\nlimits:\n  memory: 0\n", 3, 11, "memory must be at least 1"},
		{"limits key hint", "currency: USD\nlimits:\n  stpes: 5\n", 3, 3, `unknown key "stpes"; did you mean "steps"?`},
		{"$env is not available", "currency: USD\nearn:\n  - name: a\n    points: $env.purchase.amount\n", 4, 13, `unknown name "$env"`},
		{"decimal methods are not available", "currency: USD\nearn:\n  - name: a\n    points: purchase.amount.Shift(30)\n", 4, 29, `decimal has no method "Shift"`},
		{"literal out of range", "currency: USD\nearn:\n  - name: a\n    points: purchase.amount * 1e40\n", 4, 31, "number too large: more than 32 digits"},
		{"multiplier out of range", "currency: USD\ntiers:\n  levels:\n    - {name: a, threshold: 0, multiplier: 1e40}\n", 4, 43, "multiplier: number too large"},
		{"tab indentation", "currency: USD\npoints:\n\trounding: floor\n", 3, 1, "found character that cannot start any token"},
		{"not a mapping", "- currency: USD\n", 1, 1, "the rules file must be a mapping, got a list"},
		{"empty file", "", 1, 1, "the rules file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tt.src))
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Parse: got %v, want Errors", err)
			}
			for _, e := range errs {
				if e.Line == tt.line && e.Column == tt.col && strings.Contains(e.Message, tt.want) {
					if e.File != "test.yaml" {
						t.Errorf("file = %q", e.File)
					}
					return
				}
			}
			t.Errorf("want test.yaml:%d:%d: ...%s...\ngot:\n%v", tt.line, tt.col, tt.want, err)
		})
	}
}

// TestParseCollectsAll checks that one pass reports every problem, sorted.
func TestParseCollectsAll(t *testing.T) {
	_, err := Parse("f.yaml", []byte(`earn:
  - name: a
    points: membr.x
timezone: Nowhere/Land
currency: us
`))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	want := []string{
		`f.yaml:3:13: unknown name "membr"; did you mean "member"?`,
		`f.yaml:4:11: unknown timezone "Nowhere/Land": expected an IANA zone like America/New_York or UTC`,
		`f.yaml:5:11: currency must be an ISO 4217 code of three capital letters like USD, got "us"`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// TestGolden runs the checker over testdata/bad/*.yaml and compares its
// report with the .golden file next to each; go test -update rewrites them.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/bad/*.yaml")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(filepath.Base(file), src)
			if err == nil {
				t.Fatal("Parse accepted a bad file")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestErrorsFormat(t *testing.T) {
	errs := Errors{{File: "a.yaml", Line: 3, Column: 7, Message: "boom"}, {File: "a.yaml", Line: 4, Column: 1, Message: "bang"}}
	if got := errs.Error(); got != "a.yaml:3:7: boom\na.yaml:4:1: bang" {
		t.Errorf("got %q", got)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"name", "threshold", "multiplier"}
	for word, want := range map[string]string{
		"mutliplier": "multiplier",
		"multipler":  "multiplier",
		"treshold":   "threshold",
		"nam":        "name",
		"rank":       "",
		"benefits":   "",
		"NAME":       "name",
	} {
		if got := suggest(word, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", word, got, want)
		}
	}
}
