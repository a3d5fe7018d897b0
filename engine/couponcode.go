package engine

import (
	"crypto/rand"
	"strings"
)

// Coupon codes are typed at a till and read over the phone, so their
// alphabet leaves out the characters people confuse (0 and O, 1 and I).
// With 32 characters each one carries 5 bits, and a byte from crypto/rand
// taken modulo 32 picks each of them with the same chance. CodeLength
// characters make 50 bits: docs/API.md works out what guessing costs.
const (
	codeAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	CodeLength   = 10
)

// couponCodeTries is how many codes a write that issues a coupon brings:
// it takes the first no coupon has. With 50 bits two codes colliding is
// as good as impossible; the spares turn a collision into nothing at all.
const couponCodeTries = 3

// newCouponCode returns a random code in canonical form.
func newCouponCode() string {
	var b [CodeLength]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	for i := range b {
		b[i] = codeAlphabet[b[i]%byte(len(codeAlphabet))]
	}
	return string(b[:])
}

func newCouponCodes(n int) []string {
	codes := make([]string, n)
	for i := range codes {
		codes[i] = newCouponCode()
	}
	return codes
}

// CanonicalCode reads a code as a person may type it, in any case, with or
// without dashes and spaces, and returns its canonical form; false when it
// cannot be a code.
func CanonicalCode(s string) (string, bool) {
	if len(s) > 4*CodeLength {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
		case r < 128 && strings.IndexByte(codeAlphabet, byte(r)) >= 0:
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != CodeLength {
		return "", false
	}
	return b.String(), true
}

// FormatCode groups a canonical code for people: K7QM-4XRT-PW.
func FormatCode(code string) string {
	var b strings.Builder
	for i := 0; i < len(code); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(code[i:min(i+4, len(code))])
	}
	return b.String()
}
