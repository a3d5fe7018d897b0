package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
	"github.com/loyaltyhq/loyalty/rules"
)

// clusterServer is one of several Mains on one PostgreSQL database.
type clusterServer struct {
	m    *Main
	base string
	log  *syncBuffer
}

// startClusterServer runs a Main on dsn without --rules (the database
// keeps them), with a short jobs lease and rules poll.
func startClusterServer(t *testing.T, dsn string) *clusterServer {
	t.Helper()
	log := &syncBuffer{}
	m := &Main{
		Config: Config{Addr: "127.0.0.1:0", DBPath: dsn, RulesPath: filepath.Join(t.TempDir(), "rules.yaml"), RulesDefaulted: true,
			JobLease: 1500 * time.Millisecond, RulesPoll: 200 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(log, nil)),
	}
	if err := m.Open(); err != nil {
		m.Close()
		t.Fatal(err)
	}
	s := &clusterServer{m: m, base: "http://" + m.Addr(), log: log}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", s.base, log.String())
		}
	})
	return s
}

// roundRobin sends each request to the next server, as a load balancer
// would.
type roundRobin struct {
	mu      sync.Mutex
	servers []*clusterServer
	next    int
}

func (r *roundRobin) pick() *clusterServer {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.servers[r.next%len(r.servers)]
	r.next++
	return s
}

// reply is a response with the header a retry is told by.
type reply struct {
	status   int
	replayed bool
	body     map[string]any
	raw      []byte
}

func ask(t *testing.T, s *clusterServer, method, path, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
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
	a := reply{status: res.StatusCode, replayed: res.Header.Get("Idempotent-Replayed") == "true", raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// TestTwoServersOneDatabase runs two servers on one PostgreSQL database
// behind a round-robin client: a purchase retried on the other server gets
// the first answer, concurrent redemptions of the same points through both
// spend them once, rules published on one are live on the other within 5
// seconds, the scheduled jobs run on one server at a time, and when it
// stops the other takes them over.
func TestTwoServersOneDatabase(t *testing.T) {
	dsn := pgtest.URL(t)
	a, b := startClusterServer(t, dsn), startClusterServer(t, dsn)
	rr := &roundRobin{servers: []*clusterServer{a, b}}

	id := ask(t, rr.pick(), "POST", "/v1/members", `{"external_id": "card-1"}`).body["id"].(string)
	purchase := `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "amount": "40.00"}`
	first := ask(t, a, "POST", "/v1/purchases", purchase)
	retry := ask(t, b, "POST", "/v1/purchases", purchase)
	if first.status != 201 || retry.status != 200 || !retry.replayed || !bytes.Equal(first.raw, retry.raw) {
		t.Fatalf("a purchase retried on the other server: %d %s, then %d (replayed %v) %s", first.status, first.raw, retry.status, retry.replayed, retry.raw)
	}
	conflict := ask(t, b, "POST", "/v1/purchases", strings.Replace(purchase, "40.00", "41.00", 1))
	if conflict.status != 409 {
		t.Errorf("the same id with another body on the other server: %d %s", conflict.status, conflict.raw)
	}

	// Every point the member has, asked for by 16 redemptions at once
	// through both servers: one gets them.
	bal := int64(ask(t, rr.pick(), "GET", "/v1/members/"+id+"/balance", "").body["available"].(float64))
	var wg sync.WaitGroup
	statuses := make(chan int, 16)
	for i := range 16 {
		s := rr.pick()
		wg.Go(func() {
			statuses <- ask(t, s, "POST", "/v1/members/"+id+"/redemptions", fmt.Sprintf(`{"id": "r%d", "points": %d, "reward": "all"}`, i, bal)).status
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[422] != 15 {
		t.Errorf("16 redemptions of all %d points through two servers: %v, want one 201 and fifteen 422", bal, count)
	}
	for _, s := range []*clusterServer{a, b} {
		if got := ask(t, s, "GET", "/v1/members/"+id+"/balance", "").body["available"]; got != 0.0 {
			t.Errorf("balance on %s after the redemption: %v, want 0", s.base, got)
		}
	}

	// Rules published on one server, with every job every second, are
	// live on the other within 5 seconds.
	src := strings.NewReplacer(`"@daily"`, `"@every 1s"`, `"30 2 * * *"`, `"@every 1s"`, `"0 9 * * MON"`, `"@every 1s"`,
		`"0 6 * * *"`, `"@every 1s"`, `"0 3 * * *"`, `"@every 1s"`).Replace(string(rules.Example))
	published := time.Now()
	req, _ := http.NewRequest("PUT", a.base+"/v1/rules", strings.NewReader(src))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("PUT /v1/rules: %d", res.StatusCode)
	}
	eventually(t, "the rules to be live on the other server", func() bool {
		return ask(t, b, "GET", "/v1/rules", "").body["version"] == 2.0
	})
	t.Logf("rules published on one server were live on the other after %s", time.Since(published).Round(time.Millisecond))
	if _, err := os.Stat(a.m.Config.RulesPath); err == nil {
		t.Error("without --rules a server on PostgreSQL wrote a rules file")
	}

	// Jobs: both servers schedule analytics every second, one runs it.
	time.Sleep(4 * time.Second)
	leader, other := a, b
	if _, ok := b.m.Scheduler.lead.current(); ok {
		leader, other = b, a
	}
	if _, ok := leader.m.Scheduler.lead.current(); !ok {
		t.Fatal("neither server runs the jobs")
	}
	if _, ok := other.m.Scheduler.lead.current(); ok {
		t.Fatal("both servers run the jobs")
	}
	since := time.Now()
	runs := jobRuns(t, dsn, engine.JobAnalytics)
	checkRunsApart(t, runs, published)
	if err := leader.m.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the other server to take the jobs over", func() bool { _, ok := other.m.Scheduler.lead.current(); return ok })
	time.Sleep(2 * time.Second)
	after := jobRuns(t, dsn, engine.JobAnalytics)
	if n := countSince(after, since); n == 0 {
		t.Error("no analytics run after the server that ran the jobs stopped")
	}
	checkRunsApart(t, after, published)
}

// TestJobsLeaseOfADeadServer: a lease left by a server that died (its row
// stays, renewed no more) holds the jobs until it runs out, then a
// running server takes them over and catches up.
func TestJobsLeaseOfADeadServer(t *testing.T) {
	dsn := pgtest.URL(t)
	if err := runMigrate(t.Context(), []string{"--db", dsn}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, dsn, `INSERT INTO loyalty_leases (name, holder, expires_at) VALUES ('scheduler', 'dead-server/1/0', now() + interval '2 seconds')`)
	s := startClusterServer(t, dsn)
	if _, ok := s.m.Scheduler.lead.current(); ok {
		t.Fatal("the jobs were taken while a live-looking lease held them")
	}
	eventually(t, "the jobs to be taken over", func() bool { _, ok := s.m.Scheduler.lead.current(); return ok })
	// Taking the lease over catches up: the database never ran a job.
	eventually(t, "the catch-up run", func() bool { return len(jobRuns(t, dsn, engine.JobExpirePoints)) > 0 })
	if !strings.Contains(s.log.String(), "this server runs the scheduled jobs") {
		t.Error("taking the jobs over is not logged")
	}
}

// jobRuns reads a job's runs from the database, oldest first.
func jobRuns(t *testing.T, dsn, name string) [][2]time.Time {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT started_at, finished_at FROM job_runs WHERE name = $1 ORDER BY started_at`, name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]time.Time, error) {
		var run [2]time.Time
		err := r.Scan(&run[0], &run[1])
		return run, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRunsApart fails when two runs overlap, or when there are more runs
// than seconds since the every-second schedule began (with a run of
// slack): two servers running the jobs would run them about twice a
// second.
func checkRunsApart(t *testing.T, runs [][2]time.Time, since time.Time) {
	t.Helper()
	for i := 1; i < len(runs); i++ {
		if runs[i][0].Before(runs[i-1][1]) {
			t.Errorf("job runs overlap: %v and %v", runs[i-1], runs[i])
		}
	}
	n := countSince(runs, since)
	if limit := int(time.Since(since)/time.Second) + 1; n > limit || n == 0 {
		t.Errorf("%d runs in the %s since the schedule began, want 1 to %d", n, time.Since(since).Round(time.Millisecond), limit)
	}
}

func countSince(runs [][2]time.Time, since time.Time) int {
	n := 0
	for _, r := range runs {
		if !r[0].Before(since) {
			n++
		}
	}
	return n
}

// TestRulesLiveInTheDatabaseOnPostgres: on PostgreSQL the database keeps
// the rules. An explicit --rules file seeds an empty database and is
// watched; a server started without --rules ignores any rules.yaml
// (reads, watches and writes none); rules published on it reach the first
// server, whose file is rewritten to match.
func TestRulesLiveInTheDatabaseOnPostgres(t *testing.T) {
	dsn := pgtest.URL(t)
	dir := t.TempDir()
	fileA := filepath.Join(dir, "a.yaml")
	seed := strings.Replace(string(rules.Example), "enrol: 50", "enrol: 77", 1)
	if err := os.WriteFile(fileA, []byte(seed), 0o644); err != nil {
		t.Fatal(err)
	}
	logA := &syncBuffer{}
	a := &Main{Config: Config{Addr: "127.0.0.1:0", DBPath: dsn, RulesPath: fileA, RulesPoll: 200 * time.Millisecond, JobLease: 1500 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(logA, nil))}
	if err := a.Open(); err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	sa := &clusterServer{m: a, base: "http://" + a.Addr(), log: logA}

	// B's directory has a rules.yaml of its own, which it must not use.
	fileB := filepath.Join(t.TempDir(), "rules.yaml")
	stray := strings.Replace(string(rules.Example), "enrol: 50", "enrol: 5", 1)
	if err := os.WriteFile(fileB, []byte(stray), 0o644); err != nil {
		t.Fatal(err)
	}
	logB := &syncBuffer{}
	b := &Main{Config: Config{Addr: "127.0.0.1:0", DBPath: dsn, RulesPath: fileB, RulesDefaulted: true, RulesPoll: 200 * time.Millisecond, JobLease: 1500 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(logB, nil))}
	if err := b.Open(); err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sb := &clusterServer{m: b, base: "http://" + b.Addr(), log: logB}

	enrol := func(s *clusterServer, card string) float64 {
		r := ask(t, s, "POST", "/v1/members", `{"external_id": "`+card+`"}`)
		if r.status != 201 {
			t.Fatalf("enrol: %d %s", r.status, r.raw)
		}
		return r.body["balance"].(map[string]any)["available"].(float64)
	}
	if got := enrol(sb, "b1"); got != 77 {
		t.Errorf("enrolment on the server without --rules gave %v points, want the seeded file's 77", got)
	}
	if err := os.WriteFile(fileB, []byte(strings.Replace(stray, "enrol: 5", "enrol: 6", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if v := ask(t, sb, "GET", "/v1/rules", "").body["version"]; v != 1.0 {
		t.Errorf("after editing the rules.yaml of a server without --rules: version %v, want 1", v)
	}

	v2 := strings.Replace(string(rules.Example), "enrol: 50", "enrol: 88", 1)
	req, _ := http.NewRequest("PUT", sb.base+"/v1/rules", strings.NewReader(v2))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("PUT /v1/rules: %d", res.StatusCode)
	}
	if got, _ := os.ReadFile(fileB); !strings.Contains(string(got), "enrol: 6") {
		t.Error("publishing on a server without --rules wrote its rules.yaml")
	}
	eventually(t, "the published rules on the server with --rules", func() bool { return enrol(sa, fmt.Sprint("a", time.Now().UnixNano())) == 88 })
	eventually(t, "its rules file to follow", func() bool { got, _ := os.ReadFile(fileA); return string(got) == v2 })
	time.Sleep(500 * time.Millisecond)
	if v := ask(t, sa, "GET", "/v1/rules", "").body["version"]; v != 2.0 {
		t.Errorf("after its file was rewritten, the server with --rules runs version %v, want 2 (the watcher must not publish it again)", v)
	}
}
