package engine

import (
	"strings"
	"testing"
)

// TestCouponCodes: codes are CodeLength characters of the alphabet, every
// character of it turns up (none is starved by the draw), none of 0, 1, O
// and I does, and two draws differ.
func TestCouponCodes(t *testing.T) {
	if len(codeAlphabet) != 32 || strings.ContainsAny(codeAlphabet, "01OI") {
		t.Fatalf("alphabet %q", codeAlphabet)
	}
	seen := map[rune]int{}
	codes := map[string]bool{}
	const draws = 5000
	for range draws {
		c := newCouponCode()
		if len(c) != CodeLength {
			t.Fatalf("code %q is not %d characters", c, CodeLength)
		}
		for _, r := range c {
			if !strings.ContainsRune(codeAlphabet, r) {
				t.Fatalf("code %q has %q", c, r)
			}
			seen[r]++
		}
		codes[c] = true
	}
	if len(codes) != draws {
		t.Errorf("%d draws gave %d codes", draws, len(codes))
	}
	// 50,000 characters: each of 32 expected 1562 times.
	for _, r := range codeAlphabet {
		if n := seen[r]; n < 1300 || n > 1850 {
			t.Errorf("%q drawn %d times of %d", r, n, draws*CodeLength)
		}
	}
}

func TestCanonicalCode(t *testing.T) {
	for in, want := range map[string]string{
		"K7QM-4XRT-PW":   "K7QM4XRTPW",
		"k7qm4xrtpw":     "K7QM4XRTPW",
		" K7QM 4XRT-pw ": "K7QM4XRTPW",
	} {
		if got, ok := CanonicalCode(in); !ok || got != want {
			t.Errorf("CanonicalCode(%q) = %q, %v", in, got, ok)
		}
		if got := FormatCode(want); got != "K7QM-4XRT-PW" {
			t.Errorf("FormatCode(%q) = %q", want, got)
		}
	}
	for _, bad := range []string{"", "K7QM-4XRT-P", "K7QM-4XRT-PWX", "K7QM-4XRT-P0", "K7QM-4XRT-PI", "K7QM/4XRT/PW", "К7QM-4XRT-PW", strings.Repeat("-", 100) + "K7QM4XRTPW"} {
		if got, ok := CanonicalCode(bad); ok {
			t.Errorf("CanonicalCode(%q) = %q, accepted", bad, got)
		}
	}
}
