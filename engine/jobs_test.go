package engine_test

import (
	"slices"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

// TestEveryJobRuns: the rules package's list of jobs is the only one, so a
// name added there without a runner in the engine fails here, not in
// production at 3 am.
func TestEveryJobRuns(t *testing.T) {
	h := newHarness(t, string(rules.Example))
	for _, name := range rules.JobNames() {
		run, err := h.e.RunJob(h.ctx, name)
		if err != nil {
			t.Errorf("RunJob(%s): %v", name, err)
			continue
		}
		if run.Name != name || run.Error != "" {
			t.Errorf("RunJob(%s) = %+v", name, run)
		}
	}
	jobs, err := h.e.Jobs(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, j := range jobs {
		if j.Schedule == "" || j.LastRun == nil {
			t.Errorf("job %s: schedule %q, last run %v", j.Name, j.Schedule, j.LastRun)
		}
		listed = append(listed, j.Name)
	}
	if !slices.Equal(listed, rules.JobNames()) {
		t.Errorf("Jobs lists %v, the rules package %v", listed, rules.JobNames())
	}
	if _, err := h.e.RunJob(h.ctx, "nope"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("RunJob(nope): %v", err)
	}
}
