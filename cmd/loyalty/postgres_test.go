package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
	"github.com/loyaltyhq/loyalty/store/postgres"
)

// call sends a JSON request and returns the status and decoded answer.
func call(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var v map[string]any
	_ = json.Unmarshal(raw, &v)
	return res.StatusCode, v
}

// mustCall is call, failing unless the status is want.
func mustCall(t *testing.T, want int, method, url, body string) map[string]any {
	t.Helper()
	status, v := call(t, method, url, body)
	if status != want {
		t.Fatalf("%s %s: %d %v, want %d", method, url, status, v, want)
	}
	return v
}

// sqlExec runs statements on the database at dsn, for a test that changes
// it behind the server's back.
func sqlExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// serverURL is the URL of the test server itself, to act on a test's
// database from outside it.
func serverURL() string { return os.Getenv(pgtest.EnvServer) }

// fraction is the fractional seconds of a JSON stamp.
var fraction = regexp.MustCompile(`\.(\d+)Z`)

// microseconds cuts the stamps in JSON text to microseconds, the precision
// PostgreSQL keeps.
func microseconds(s string) string {
	return fraction.ReplaceAllStringFunc(s, func(f string) string {
		digits := (f[1:len(f)-1] + "000000000")[:6]
		if digits = strings.TrimRight(digits, "0"); digits == "" {
			return "Z"
		}
		return "." + digits + "Z"
	})
}

// TestServeOnPostgres runs the real wiring on PostgreSQL: writes go
// through, the backup route says to use the database's tools, and
// /healthz reports a database that stops answering, then recovers with
// it without a restart.
func TestServeOnPostgres(t *testing.T) {
	dsn := pgtest.URL(t)
	m := startBackupTestServer(t, dsn)
	t.Cleanup(func() { m.Close() })
	base := "http://" + m.Addr()
	member := mustCall(t, 201, "POST", base+"/v1/members", `{"external_id": "card-1", "email": "ana@example.com"}`)
	id := member["id"].(string)
	mustCall(t, 409, "POST", base+"/v1/members", `{"email": "ana@example.com"}`)
	p := mustCall(t, 201, "POST", base+"/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "23.40"}`)
	again := mustCall(t, 200, "POST", base+"/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "23.40"}`)
	if !reflect.DeepEqual(p, again) {
		t.Errorf("a replayed purchase answered %v, first %v", again, p)
	}
	status, backup := call(t, "GET", base+"/v1/admin/backup", "")
	if msg := fmt.Sprint(backup); status != 422 || !strings.Contains(msg, "pg_dump") {
		t.Errorf("backup on PostgreSQL: %d %v, want 422 naming pg_dump", status, backup)
	}
	mustCall(t, 200, "GET", base+"/healthz", "")

	db := dbName(t, dsn)
	sqlExec(t, serverURL(), "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+db+"' AND pid <> pg_backend_pid()")
	if status, v := call(t, "GET", base+"/healthz", ""); status != 503 {
		t.Errorf("healthz with the database gone: %d %v, want 503", status, v)
	}
	sqlExec(t, serverURL(), "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true")
	eventually(t, "healthz to recover", func() bool { status, _ := call(t, "GET", base+"/healthz", ""); return status == 200 })
	mustCall(t, 201, "POST", base+"/v1/purchases", `{"id": "p2", "member_id": "`+id+`", "currency": "USD", "amount": "5.00"}`)

	// Connections killed while idle in the pool: the next write runs again
	// on a new one instead of failing.
	sqlExec(t, serverURL(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+db+"' AND pid <> pg_backend_pid()")
	mustCall(t, 201, "POST", base+"/v1/purchases", `{"id": "p3", "member_id": "`+id+`", "currency": "USD", "amount": "5.00"}`)

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "verify", "--db", dsn); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	rules := m.Config.RulesPath
	if code, out := runCLI(t, "rules", "diff", rules, rules, "--db", dsn); code != 0 || !strings.Contains(out, "3 purchases replayed") {
		t.Errorf("rules diff on PostgreSQL: exit %d\n%s", code, out)
	}
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// TestMigrateCommand: migrate creates the schema, is idempotent, and a
// serve on the database needs nothing more.
func TestMigrateCommand(t *testing.T) {
	dsn := pgtest.URL(t)
	if code, out := runCLI(t, "verify", "--db", dsn); code == 0 || !strings.Contains(out, "migrate") {
		t.Errorf("verify before migrate: exit %d, want a message naming migrate:\n%s", code, out)
	}
	for range 2 {
		if code, out := runCLI(t, "migrate", "--db", dsn); code != 0 || !strings.Contains(out, fmt.Sprintf("schema version %d", postgres.SchemaVersion())) {
			t.Fatalf("migrate: exit %d\n%s", code, out)
		}
	}
	if code, out := runCLI(t, "verify", "--db", dsn); code != 0 {
		t.Errorf("verify after migrate: exit %d\n%s", code, out)
	}
	if code, _ := runCLI(t, "migrate", "--db", filepath.Join(t.TempDir(), "x.db")); code != 2 {
		t.Errorf("migrate of a bbolt file: exit %d, want 2", code)
	}
}

// TestVerifyFindsBrokenLedgerOnPostgres: verify on PostgreSQL runs the
// engine's invariants and the store's ledger check.
func TestVerifyFindsBrokenLedgerOnPostgres(t *testing.T) {
	dsn := pgtest.URL(t)
	m := startBackupTestServer(t, dsn)
	base := "http://" + m.Addr()
	id := mustCall(t, 201, "POST", base+"/v1/members", `{"external_id": "c1"}`)["id"].(string)
	mustCall(t, 201, "POST", base+"/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "23.40"}`)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, dsn, "UPDATE ledger SET balance_after = balance_after + 1, points = points + 1")
	code, out := runCLI(t, "verify", "--db", dsn)
	if code != 1 || !strings.Contains(out, "balance") || !strings.Contains(out, "ledger sums to") {
		t.Errorf("verify of a changed ledger: exit %d, want 1 with the engine's problem:\n%s", code, out)
	}
	sqlExec(t, dsn, "UPDATE ledger SET balance_after = balance_after + 5")
	if code, out := runCLI(t, "verify", "--db", dsn); code != 1 || !strings.Contains(out, "has balance after") {
		t.Errorf("verify of a broken balance chain: exit %d, want the store's problem:\n%s", code, out)
	}
}

// TestCopyToPostgres fills a bbolt database through the API and the store
// (so every kind of record is there), copies it, and compares what the
// engine reads from both.
func TestCopyToPostgres(t *testing.T) {
	dsn := pgtest.URL(t)
	path := filepath.Join(t.TempDir(), "loyalty.db")
	m := startBackupTestServer(t, path)
	base := "http://" + m.Addr()
	ref := mustCall(t, 201, "POST", base+"/v1/members", `{"external_id": "c0"}`)["id"].(string)
	id := mustCall(t, 201, "POST", base+"/v1/members", `{"external_id": "c1", "email": "a@x", "referrer_id": "`+ref+`", "attributes": {"store": "north"}}`)["id"].(string)
	for i := range 3 {
		mustCall(t, 201, "POST", base+"/v1/purchases", fmt.Sprintf(`{"id": "p%d", "member_id": "%s", "currency": "USD", "amount": "40.00",
			"items": [{"sku": "LATTE-L", "category": "coffee", "quantity": 2, "amount": "9.80"}]}`, i, id))
	}
	mustCall(t, 201, "POST", base+"/v1/purchases/p1/refunds", `{"id": "r1", "amount": "9.80"}`)
	mustCall(t, 201, "POST", base+"/v1/members/"+id+"/redemptions", `{"id": "d1", "points": 10, "reward": "drink"}`)
	mustCall(t, 200, "POST", base+"/v1/redemptions/d1/cancel", `{}`)
	mustCall(t, 201, "POST", base+"/v1/members/"+id+"/adjustments", `{"id": "a1", "points": 7, "reason": "goodwill"}`)
	coupon := mustCall(t, 201, "POST", base+"/v1/members/"+id+"/rewards", `{"id": "t1", "reward": "free-coffee"}`)["coupon"].(map[string]any)
	mustCall(t, 200, "POST", base+"/v1/coupons/"+coupon["code"].(string)+"/use", `{"id": "u1", "store_id": "s1"}`)
	if err := m.DB.Update(t.Context(), func(tx engine.Tx) error {
		return errors.Join(
			tx.AppendEvent(&engine.Event{ID: "evt_1", Type: "points.expiring", MemberID: id, At: time.Now().UTC(), Payload: []byte(`{"points":3}`)}),
			tx.AppendEvent(&engine.Event{Type: "points.expiring", At: time.Now().UTC()}),
			tx.Mark("notice:"+id+":2027-01-01"),
			tx.AddRuleUse(id, "welcome", "all", 1),
			tx.PutJobRun(&engine.JobRun{Name: "expire", StartedAt: time.Now().UTC(), FinishedAt: time.Now().UTC(), Processed: 3}),
			tx.PutAnalyticsSummary(&engine.AnalyticsSummary{ComputedAt: time.Now().UTC(), Window: "365d", Members: 2, Segments: map[string]int64{"mvc": 1}}),
		)
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	code, out := runCLI(t, "copy", "--from", path, "--to", dsn)
	if code != 0 {
		t.Fatalf("copy: exit %d\n%s", code, out)
	}
	for _, want := range []string{"members              2", "purchases            3", "refunds              1", "coupons              1", "reward counts        1"} {
		if !strings.Contains(out, want) {
			t.Errorf("copy output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "\nok\n") != 2 {
		t.Errorf("copy did not verify both sides:\n%s", out)
	}

	src := openCopy(t, path)
	var events int
	if err := src.View(t.Context(), func(tx engine.Tx) error {
		evs, err := tx.Events(0, 0)
		events = len(evs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("\n%-21s%d\n", "events", events); !strings.Contains(out, want) {
		t.Errorf("copy output lacks %q:\n%s", want, out)
	}
	dst, err := openDatabase(context.Background(), dsn, dbOptions{readOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if a, b := snapshot(t, src, id), snapshot(t, dst, id); a != b {
		t.Errorf("the copy reads differently:\nbbolt:    %s\npostgres: %s", a, b)
	}
	// The feed goes on after the copied seqs.
	if err := dst.Update(t.Context(), func(tx engine.Tx) error {
		return tx.AppendEvent(&engine.Event{ID: "evt_after_copy", Type: "points.expiring", At: time.Now().UTC()})
	}); err != nil {
		t.Fatal(err)
	}
	if err := dst.View(t.Context(), func(tx engine.Tx) error {
		// The copy carried events 1 to n (the output says so above).
		evs, err := tx.Events(uint64(events), 0)
		if err == nil && (len(evs) != 1 || evs[0].Seq != uint64(events)+1 || evs[0].ID != "evt_after_copy") {
			t.Errorf("the event after the copy: %+v, want seq %d", evs, events+1)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	if code, out := runCLI(t, "copy", "--from", path, "--to", dsn); code == 0 || !strings.Contains(out, "already holds records") {
		t.Errorf("copy into a database with records: exit %d\n%s", code, out)
	}
}

// snapshot renders what the engine reads of a member and the global
// records, with stamps at microseconds (PostgreSQL's precision).
func snapshot(t *testing.T, db engine.Store, id string) string {
	t.Helper()
	var b strings.Builder
	if err := db.View(t.Context(), func(tx engine.Tx) error {
		m, err := tx.Member(id)
		if err != nil {
			return err
		}
		ledger, err := tx.Ledger(id, 0, 0)
		if err != nil {
			return err
		}
		lots, err := tx.OpenLots(id)
		if err != nil {
			return err
		}
		metrics, err := tx.Metrics(id, time.Time{})
		if err != nil {
			return err
		}
		purchases, err := tx.PurchasesBetween(time.Time{}, time.Now().Add(time.Hour), 0)
		if err != nil {
			return err
		}
		refund, err := tx.Refund("r1")
		if err != nil {
			return err
		}
		red, err := tx.Redemption("d1")
		if err != nil {
			return err
		}
		adj, err := tx.Adjustment("a1")
		if err != nil {
			return err
		}
		uses, err := tx.RuleUses(id, "welcome", "all")
		if err != nil {
			return err
		}
		events, err := tx.Events(0, 0)
		if err != nil {
			return err
		}
		rules, err := tx.RulesVersions()
		if err != nil {
			return err
		}
		runs, err := tx.JobRuns("expire", 0)
		if err != nil {
			return err
		}
		summary, err := tx.LatestAnalyticsSummary()
		if err != nil {
			return err
		}
		coupons, err := tx.MemberCoupons(id)
		if err != nil {
			return err
		}
		counts, err := tx.RewardCounts()
		if err != nil {
			return err
		}
		for _, v := range []any{m, ledger, lots, metrics, purchases, refund, red, adj, uses, events, rules, runs, summary, coupons, counts} {
			raw, err := json.Marshal(v)
			if err != nil {
				return err
			}
			b.Write(raw)
			b.WriteByte('\n')
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return microseconds(b.String())
}

// TestBackupJobOnPostgres: the backup job copies bbolt files; on
// PostgreSQL it is not scheduled (no next_run, no run recorded) and
// running it by hand says to use pg_dump.
func TestBackupJobOnPostgres(t *testing.T) {
	dsn := pgtest.URL(t)
	m := startBackupTestServer(t, dsn)
	t.Cleanup(func() { m.Close() })
	base := "http://" + m.Addr()
	status, v := call(t, "POST", base+"/v1/jobs/backup/run", "")
	if msg := fmt.Sprint(v); status != 422 || !strings.Contains(msg, "pg_dump") {
		t.Fatalf("backup job on PostgreSQL: %d %v", status, v)
	}
	last, next := jobTimes(t, m)
	if _, ok := last["backup"]; ok {
		t.Errorf("a backup run was recorded on PostgreSQL")
	}
	if _, ok := next["backup"]; ok {
		t.Errorf("the backup job is scheduled on PostgreSQL")
	}
	if _, ok := next["expire-points"]; !ok {
		t.Errorf("the other jobs are not scheduled: %v", next)
	}
}
