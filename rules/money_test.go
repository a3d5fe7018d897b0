package rules

import (
	"math"
	"testing"
)

func TestFormatMoney(t *testing.T) {
	tests := []struct {
		digits int
		minor  int64
		want   string
	}{
		{2, 2340, "23.40"},
		{2, -105, "-1.05"},
		{2, 0, "0.00"},
		{2, 5, "0.05"},
		{2, -5, "-0.05"},
		{0, 1200, "1200"},
		{0, -7, "-7"},
		{3, 1500, "1.500"},
		{3, 7, "0.007"},
		{2, math.MinInt64, "-92233720368547758.08"},
	}
	for _, tt := range tests {
		p := &Program{CurrencyDigits: tt.digits}
		if got := p.FormatMoney(tt.minor); got != tt.want {
			t.Errorf("FormatMoney(%d) with %d digits = %q, want %q", tt.minor, tt.digits, got, tt.want)
		}
	}
}

// notDecimalMsg is the answer to an amount nobody can guess the meaning of.
const notDecimalMsg = "is not a decimal number: write digits and a dot before the decimals, with no currency, spaces or thousands separators, like 12.50"

func TestParseMoney(t *testing.T) {
	tests := []struct {
		digits int
		in     string
		want   int64
		err    string
	}{
		{2, "12", 1200, ""},
		{2, "12.5", 1250, ""},
		{2, "12.50", 1250, ""},
		{2, "0", 0, ""},
		{2, "0.01", 1, ""},
		{2, "007.10", 710, ""},
		{0, "1200", 1200, ""},
		{3, "1.005", 1005, ""},
		{2, "999999999999999.99", 99999999999999999, ""},
		{2, "", 0, "is empty"},
		{2, "-1", 0, "must not be negative"},
		{2, "-0.50", 0, "must not be negative"},
		{2, "abc", 0, notDecimalMsg},
		{2, "+1", 0, notDecimalMsg},
		{2, "1e3", 0, notDecimalMsg},
		{2, "1.", 0, notDecimalMsg},
		{2, ".5", 0, notDecimalMsg},
		// What people write for money gets told how to write it.
		{2, "1,50", 0, "is not a decimal number: write it with a dot before the decimals: 1.50"},
		{2, "12,50", 0, "is not a decimal number: write it with a dot before the decimals: 12.50"},
		{2, " 1", 0, "is not a decimal number: write it without spaces around it: 1"},
		{2, "$12.50", 0, `is not a decimal number: write it without the currency (it goes in "currency"): 12.50`},
		{2, "12.50 USD", 0, `is not a decimal number: write it without the currency (it goes in "currency"): 12.50`},
		{0, "¥1200", 0, `is not a decimal number: write it without the currency (it goes in "currency"): 1200`},
		{2, "1,234.50", 0, "is not a decimal number: write it without thousands separators: 1234.50"},
		{2, "12 50", 0, notDecimalMsg},
		{3, "x", 0, "is not a decimal number: write digits and a dot before the decimals, with no currency, spaces or thousands separators, like 12.500"},
		{2, "1.2.3", 0, notDecimalMsg},
		{2, "12.345", 0, "has more than 2 decimals"},
		{2, "12.500", 0, "has more than 2 decimals"},
		{0, "12.5", 0, "must be a whole amount, this currency has no decimals"},
		{2, "1000000000000000", 0, "is too large"},
		{2, "99999999999999999999999", 0, "is too large"},
	}
	for _, tt := range tests {
		p := &Program{CurrencyDigits: tt.digits}
		got, err := p.ParseMoney(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseMoney(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("ParseMoney(%q) = %d, %v; want error %q", tt.in, got, err, tt.err)
		}
	}
}

// TestMoneyRoundTrip checks that what FormatMoney writes, ParseMoney reads.
func TestMoneyRoundTrip(t *testing.T) {
	for _, digits := range []int{0, 2, 3} {
		p := &Program{CurrencyDigits: digits}
		for _, v := range []int64{0, 1, 9, 10, 99, 100, 101, 2340, 123456789} {
			got, err := p.ParseMoney(p.FormatMoney(v))
			if err != nil || got != v {
				t.Errorf("%d digits: %d -> %q -> %d, %v", digits, v, p.FormatMoney(v), got, err)
			}
		}
	}
}
