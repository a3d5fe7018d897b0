package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// currencyDigits is the ISO 4217 minor-unit exponent of the currencies that
// do not use two decimals; every other code uses two.
var currencyDigits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0,
	"KRW": 0, "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0,
	"XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

// digitsOf returns the minor-unit exponent of an ISO 4217 code.
func digitsOf(currency string) int {
	if d, ok := currencyDigits[currency]; ok {
		return d
	}
	return 2
}

// maxMoneyIntDigits bounds the major-unit digits of an amount so that any
// amount, in minor units, fits an int64 with room for sums.
const maxMoneyIntDigits = 15

// FormatMoney writes an amount in minor units as a plain decimal in major
// units with the currency's number of decimals: "23.40", "-1.05", "1200".
func (p *Program) FormatMoney(minor int64) string {
	return formatMinor(minor, p.CurrencyDigits)
}

func formatMinor(minor int64, digits int) string {
	neg := minor < 0
	// uint64 so that the most negative int64 has an absolute value.
	u := uint64(minor)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ParseMoney reads a non-negative decimal in major units ("12", "12.5",
// "12.50") and returns it in minor units. Its errors are bare phrases ("must
// not be negative") for the caller to prefix with the field's name.
func (p *Program) ParseMoney(s string) (int64, error) {
	return parseMinor(s, p.CurrencyDigits)
}

func parseMinor(s string, digits int) (int64, error) {
	if s == "" {
		return 0, errors.New("is empty")
	}
	if s[0] == '-' {
		return 0, errors.New("must not be negative")
	}
	if !plainDecimal(s) {
		return 0, notDecimal(s, digits)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > digits {
		if digits == 0 {
			return 0, errors.New("must be a whole amount, this currency has no decimals")
		}
		return 0, fmt.Errorf("has more than %d decimals", digits)
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > maxMoneyIntDigits {
		return 0, errors.New("is too large")
	}
	frac += strings.Repeat("0", digits-len(frac))
	n, err := strconv.ParseInt("0"+intPart+frac, 10, 64)
	if err != nil {
		return 0, errors.New("is too large")
	}
	return n, nil
}

// notDecimal says how to write an amount that is not a plain decimal,
// with the amount rewritten when it is clear what was meant: "12,50",
// "$12.50", "12.50 USD", "1,234.50".
func notDecimal(s string, digits int) error {
	var how []string
	fixed := strings.TrimSpace(s)
	if fixed != s {
		how = append(how, "without spaces around it")
	}
	if t := strings.TrimSpace(strings.TrimFunc(fixed, isCurrencyRune)); t != fixed && t != "" {
		fixed = t
		how = append(how, "without the currency (it goes in \"currency\")")
	}
	if strings.Contains(fixed, ",") {
		if i := strings.LastIndexByte(fixed, ','); !strings.Contains(fixed, ".") && strings.Count(fixed, ",") == 1 && len(fixed)-i-1 <= digits {
			fixed = fixed[:i] + "." + fixed[i+1:]
			how = append(how, "with a dot before the decimals")
		} else {
			fixed = strings.ReplaceAll(fixed, ",", "")
			how = append(how, "without thousands separators")
		}
	}
	if len(how) > 0 && plainDecimal(fixed) {
		return fmt.Errorf("is not a decimal number: write it %s: %s", strings.Join(how, ", "), fixed)
	}
	return fmt.Errorf("is not a decimal number: write digits and a dot before the decimals, with no currency, spaces or thousands separators, like %s", formatMinor(1250*pow10(digits)/100, digits))
}

// isCurrencyRune tells the letters and signs of a currency ("USD", "$").
func isCurrencyRune(r rune) bool { return unicode.IsLetter(r) || unicode.Is(unicode.Sc, r) }

// pow10 is 10 to the n, for the handful of decimals a currency has.
func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// plainDecimal reports whether s is digits, then maybe a dot and digits.
func plainDecimal(s string) bool {
	intPart, frac, hasDot := strings.Cut(s, ".")
	return allDigits(intPart) && (!hasDot || allDigits(frac))
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
