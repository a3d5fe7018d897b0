package engine_test

import (
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestSearchMembers: a name is found whatever its case, a page at a time,
// and too short a name is refused rather than listing everybody.
func TestSearchMembers(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	for _, name := range []string{"Ana Lima", "Joana Reis", "Bob", "ANABELA", ""} {
		h.enrol(engine.MemberInput{Name: name})
	}
	var found []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := h.e.SearchMembers(h.ctx, "aNa", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Members) > 2 || pages > 3 {
			t.Fatalf("page %d: %d members", pages, len(page.Members))
		}
		for _, m := range page.Members {
			found = append(found, m.Name)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(found) != 3 {
		t.Errorf("found %q, want Ana Lima, Joana Reis and ANABELA", found)
	}
	if _, err := h.e.SearchMembers(h.ctx, " a ", "", 0); engine.ErrorCode(err) != engine.EINVALID {
		t.Errorf("a one-letter name: %v", err)
	}
}
