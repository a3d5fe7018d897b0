package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/rules"
)

// The tests in this file are the things a newcomer tripped on following
// the README (issue 17), each through the CLI as they typed it.

func TestSimulateErrorNamesTheFieldOnce(t *testing.T) {
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	purchase := filepath.Join(dir, "p.json")
	os.WriteFile(purchase, []byte(`{"currency": "USD", "amount": "1.00"}`), 0o644)
	member := filepath.Join(dir, "m.json")
	os.WriteFile(member, []byte(`{"tier": "nope"}`), 0o644)
	code, out := runCLI(t, "rules", "simulate", rulesPath, "--purchase", purchase, "--member", member)
	if code != 1 || strings.Count(out, "member.tier") != 1 || !strings.Contains(out, `no tier named "nope"`) {
		t.Fatalf("%d %q", code, out)
	}
}
