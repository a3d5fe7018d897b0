package main

import (
	"flag"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/webhook"
)

// serveFlagSet is every flag serve has, as users see them.
func serveFlagSet() map[string]*flag.Flag {
	out := map[string]*flag.Flag{}
	serveFlags(&Config{}, io.Discard).VisitAll(func(f *flag.Flag) { out[f.Name] = f })
	return out
}

// TestUsageListsEveryServeFlag: the top-level usage, which a newcomer reads
// first, once listed four of serve's nine flags.
func TestUsageListsEveryServeFlag(t *testing.T) {
	code, out := runCLI(t, "help")
	if code != 0 {
		t.Fatalf("help: %d", code)
	}
	for name := range serveFlagSet() {
		if !strings.Contains(out, "[--"+name+" ") && !strings.Contains(out, "[--"+name+"]") {
			t.Errorf("the usage does not list --%s:\n%s", name, out)
		}
	}
}

// readmeFlagRow is a row of the README's serve flag table:
// | `--addr` | `LOYALTY_ADDR` | `127.0.0.1:8080` | listen address |
var readmeFlagRow = regexp.MustCompile("(?m)^\\| `--([a-z-]+)` \\| `([A-Z_]+)` \\| ([^|]*) \\|")

// TestReadmeListsEveryServeFlag holds the README's table to the flag set
// both ways, with each flag's environment variable and default.
func TestReadmeListsEveryServeFlag(t *testing.T) {
	src, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	flags := serveFlagSet()
	rows := readmeFlagRow.FindAllStringSubmatch(string(src), -1)
	seen := map[string]bool{}
	for _, r := range rows {
		name, env, def := r[1], r[2], strings.Trim(strings.TrimSpace(r[3]), "`")
		seen[name] = true
		f, ok := flags[name]
		if !ok {
			t.Errorf("README lists --%s, which serve does not have", name)
			continue
		}
		if env != envName(name) {
			t.Errorf("README: --%s is set by %s, not %s", name, envName(name), env)
		}
		if !sameDefault(def, f) {
			t.Errorf("README: --%s defaults to %q, the flag to %q", name, def, f.DefValue)
		}
	}
	for name := range flags {
		if !seen[name] {
			t.Errorf("README's table does not list --%s", name)
		}
	}
}

// sameDefault tells whether the README's default column says what the
// flag's default is: "none" for an empty string, "off" for a false switch,
// durations by value.
func sameDefault(readme string, f *flag.Flag) bool {
	switch {
	case f.Name == "rules":
		return readme == "rules.yaml" // defaulted in runServe, so that an unset path writes the example
	case f.Name == "backup-dir":
		return readme == "backups` beside `--db" // Config.backupDir, beside whatever --db is
	case f.DefValue == "":
		return readme == "none"
	case f.DefValue == "false":
		return readme == "off"
	}
	if d, err := time.ParseDuration(f.DefValue); err == nil {
		r, err := time.ParseDuration(readme)
		return err == nil && r == d
	}
	return readme == f.DefValue
}

// The flag's default spells the webhook package's schedule.
func TestDefaultRetriesAreTheSchedule(t *testing.T) {
	got, err := parseRetries(defaultRetries)
	if err != nil || !slices.Equal(got, webhook.DefaultSchedule) {
		t.Fatalf("--webhook-retries %s = %v, %v; want %v", defaultRetries, got, err, webhook.DefaultSchedule)
	}
	if _, err := parseRetries("1s,,2s"); err == nil {
		t.Error("an empty duration was taken")
	}
}
