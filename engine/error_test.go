package engine_test

import (
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestErrorNamesTheFieldOnce: a field error used to read
// "invalid: advance: advance: …".
func TestErrorNamesTheFieldOnce(t *testing.T) {
	err := engine.FieldErrorf(engine.EINVALID, "member.tier", "no tier named %q", "nope")
	if got, want := err.Error(), `invalid: member.tier: no tier named "nope"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if strings.Count(err.Message, "member.tier") != 1 || err.Field != "member.tier" {
		t.Errorf("message %q, field %q", err.Message, err.Field)
	}
}
