package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

// TestEveryJobRuns: the rules package's list of jobs is the only one, so a
// name added there without a runner in the engine fails here, not in
// production at 3 am.
func TestEveryJobRuns(t *testing.T) {
	h := newHarness(t, string(rules.Example))
	var backedUpAt time.Time
	e := engine.New(h.db, engine.Options{Clock: h.clock, Backup: func(_ context.Context, at time.Time) (int64, error) {
		backedUpAt = at
		return 4096, nil
	}})
	h.e = e
	h.loadRules(string(rules.Example))
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
	if backedUpAt.IsZero() {
		t.Error("the backup job did not call Options.Backup")
	}
	if last, _ := h.e.LastJobRun(h.ctx, engine.JobBackup); last == nil || last.Processed != 4096 || !last.StartedAt.Equal(backedUpAt) {
		t.Errorf("backup run %+v, backed up at %v", last, backedUpAt)
	}
}

// TestBackupJobWithoutABackup: on a store whose backups are not the
// engine's (PostgreSQL), the job is refused with the reason the wiring
// gave, and no failed run is recorded to page anyone every night.
func TestBackupJobWithoutABackup(t *testing.T) {
	h := newHarness(t, string(rules.Example))
	h.e = engine.New(h.db, engine.Options{Clock: h.clock, NoBackup: "back it up with pg_dump"})
	h.loadRules(string(rules.Example))
	_, err := h.e.RunJob(h.ctx, engine.JobBackup)
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Code != engine.EUNPROCESSABLE || !strings.Contains(ee.Message, "pg_dump") {
		t.Fatalf("RunJob(backup): %v", err)
	}
	if last, _ := h.e.LastJobRun(h.ctx, engine.JobBackup); last != nil {
		t.Fatalf("a refused backup was recorded: %+v", last)
	}
}
