package main

import (
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// TestScheduledBackupsKeepTheLastN runs the backup job on its schedule
// (the example's "0 4 * * *", New York time) by a clock the test moves a
// day at a time, and checks what a restore needs: the newest --backup-keep
// copies are there, named by their times, each verifies, and the last
// holds what was written before it.
func TestScheduledBackupsKeepTheLastN(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	day0 := time.Date(2026, 3, 10, 12, 0, 0, 0, ny)
	base := &settableClock{t: day0}
	dir := t.TempDir()
	backups := filepath.Join(t.TempDir(), "backups")
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	m := &Main{Clock: base, JobTick: 5 * time.Millisecond, Config: Config{
		Addr: "127.0.0.1:0", DBPath: filepath.Join(dir, "loyalty.db"), RulesPath: rulesPath,
		BackupDir: backups, BackupKeep: 3,
	}}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	lastBackup := func() time.Time { last, _ := jobTimes(t, m); return last["backup"] }
	// The first start catches up: the database was never backed up.
	eventually(t, "the first backup", func() bool { return !lastBackup().IsZero() })
	var members []string
	for day := 1; day <= 5; day++ {
		code, v := send(t, m, "POST", "/v1/members", `{"external_id": "day-`+string(rune('0'+day))+`"}`)
		if code != 201 {
			t.Fatalf("enrol: %d %v", code, v)
		}
		members = append(members, v["id"].(string))
		base.set(day0.AddDate(0, 0, day))
		due := time.Date(2026, 3, 10+day, 4, 0, 0, 0, ny)
		eventually(t, "the backup of day "+string(rune('0'+day)), func() bool { return !lastBackup().Before(due) })
		if next := func() time.Time { _, n := jobTimes(t, m); return n["backup"] }(); !next.Equal(due.AddDate(0, 0, 1)) {
			t.Fatalf("day %d: next backup at %v, want %v", day, next, due.AddDate(0, 0, 1))
		}
	}

	// Monitoring sees the last success, for the "backup older than a day"
	// alert of docs/OPERATIONS.md.
	res, err := http.Get("http://" + m.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(res.Body)
	res.Body.Close()
	sample := regexp.MustCompile(`(?m)^loyalty_job_last_success_timestamp_seconds\{job_name="backup"\} (\S+)$`).FindSubmatch(text)
	if sample == nil {
		t.Fatalf("/metrics has no last backup:\n%s", text)
	}
	if at, _ := strconv.ParseFloat(string(sample[1]), 64); math.Abs(at-float64(lastBackup().Unix())) > 1 {
		t.Errorf("last backup success at %v, the last run started at %v", at, lastBackup())
	}

	entries, err := os.ReadDir(backups)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// Each copy is named by the engine time its run started at: the first
	// tick that saw the clock moved past 04:00, which is noon in New York
	// on the moved clock, 16:00 UTC.
	want := []string{}
	for day := 3; day <= 5; day++ {
		want = append(want, day0.AddDate(0, 0, day).UTC().Format(backupLayout))
	}
	if !slices.Equal(names, want) {
		t.Fatalf("backups %v, want the newest 3: %v", names, want)
	}
	for _, name := range names {
		if code, out := runCLI(t, "verify", "--db", filepath.Join(backups, name)); code != 0 || !strings.HasSuffix(out, "ok\n") {
			t.Fatalf("verify %s: %d %s", name, code, out)
		}
	}
	opts := store.DefaultOptions()
	opts.ReadOnly = true
	newest, err := store.Open(filepath.Join(backups, names[2]), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer newest.Close()
	for _, id := range members {
		var found bool
		newest.View(t.Context(), func(tx engine.Tx) error {
			mem, err := tx.Member(id)
			found = mem != nil
			return err
		})
		if !found {
			t.Errorf("member %s, enrolled before the last backup, is not in it", id)
		}
	}
}

// TestBackupJobFailureShows: a backup that cannot be written is a failed
// run in GET /v1/jobs, with the reason, and POST /v1/jobs/backup/run says so.
func TestBackupJobFailureShows(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "backups")
	os.WriteFile(notADir, []byte("a file where the directory should be"), 0o600)
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	m := &Main{Config: Config{Addr: "127.0.0.1:0", DBPath: filepath.Join(dir, "loyalty.db"), RulesPath: rulesPath, BackupDir: notADir}}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// The first start's catch-up runs it; it fails and says why.
	var last *engine.JobRun
	eventually(t, "the first backup run", func() bool {
		last, _ = m.Engine.LastJobRun(t.Context(), engine.JobBackup)
		return last != nil
	})
	if !strings.Contains(last.Error, "--backup-dir") || !strings.Contains(last.Error, "not a directory") {
		t.Fatalf("last backup run %+v", last)
	}
	// The catch-up records its run a moment before it lets go of the job,
	// so a run asked for at once may still find it running (409).
	var code int
	var v map[string]any
	eventually(t, "the catch-up to let go of the job", func() bool {
		code, v = send(t, m, "POST", "/v1/jobs/backup/run", "")
		return code != 409
	})
	if code != 500 || !strings.Contains(v["error"].(map[string]any)["message"].(string), "internal error") {
		t.Fatalf("run: %d %v", code, v)
	}
}
