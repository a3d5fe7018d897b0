package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/pgtest"
	"github.com/loyaltyhq/loyalty/rules"
)

// TestPurchaseBodies checks that the load sends what the API accepts and
// what a till would: 1–5 lines adding up to the amount, the member by id
// or by card, ids that never repeat.
func TestPurchaseBodies(t *testing.T) {
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient("127.0.0.1:1", []memberRef{{id: "m-1", externalID: "card-1"}, {id: "m-2", externalID: "card-2"}}, "r1")
	seen := map[string]bool{}
	byCard := 0
	for _, w := range []*worker{c.newWorker(1), c.newWorker(2)} {
		for range 200 {
			var req engine.PurchaseRequest
			dec := json.NewDecoder(bytes.NewReader(w.purchaseBody()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				t.Fatalf("%s: %v", w.body, err)
			}
			if _, err := dec.Token(); err != io.EOF {
				t.Fatalf("%s: data after the object", w.body)
			}
			if seen[req.ID] {
				t.Fatalf("id %s sent twice", req.ID)
			}
			seen[req.ID] = true
			if (req.MemberID == "") == (req.MemberExternalID == "") {
				t.Fatalf("%s: want exactly one of member_id and member_external_id", w.body)
			}
			if req.MemberExternalID != "" {
				byCard++
			}
			if n := len(req.Items); n < 1 || n > 5 {
				t.Fatalf("%s: %d items", w.body, n)
			}
			var sum int64
			for _, it := range req.Items {
				v, err := prog.ParseMoney(it.Amount)
				if err != nil {
					t.Fatal(err)
				}
				sum += v
			}
			if total, err := prog.ParseMoney(req.Amount); err != nil || total != sum || req.Currency != prog.Currency {
				t.Fatalf("%s: amount %s (%v), lines add up to %d", w.body, req.Amount, err, sum)
			}
		}
	}
	if byCard < 100 || byCard > 300 {
		t.Errorf("%d of 400 purchases by card, want about half", byCard)
	}
}

func TestParseMem(t *testing.T) {
	status := "Name:\tloyalty\nVmPeak:\t 3000000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    4096 kB\nRssFile:\t    6144 kB\nThreads:\t9\n"
	m, err := parseMem(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if want := (memStatus{PeakRSS: 20 << 20, RSS: 10 << 20, Anon: 4 << 20, File: 6 << 20}); m != want {
		t.Fatalf("got %+v, want %+v", m, want)
	}
}

func TestParseArgs(t *testing.T) {
	cfg, err := parseArgs([]string{"--concurrency", "1, 8,32", "--members", "10"}, io.Discard)
	if err != nil || len(cfg.concurrency) != 3 || cfg.concurrency[1] != 8 || cfg.members != 10 {
		t.Fatalf("got %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{{"--concurrency", "1,x"}, {"--concurrency", "0"}, {"--members", "0"}, {"extra"}} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestAppendMoney(t *testing.T) {
	for cents, want := range map[int64]string{0: "0.00", 5: "0.05", 420: "4.20", 123456: "1234.56"} {
		if got := string(appendMoney(nil, cents)); got != want {
			t.Errorf("appendMoney(%d) = %s, want %s", cents, got, want)
		}
	}
}

// TestRedemptionBodies checks that the refused-writes load sends valid
// redemptions, each a new id, that no seeded member can afford: they must
// be refused for the balance, not for their shape, nor answered as replays.
func TestRedemptionBodies(t *testing.T) {
	c := newClient("127.0.0.1:1", []memberRef{{id: "m-1"}, {id: "m-2"}}, "r1")
	seen := map[string]bool{}
	for _, w := range []*worker{c.newWorker(1), c.newWorker(2)} {
		for range 100 {
			member, body := w.redemptionBody()
			var req engine.RedemptionRequest
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if member != "m-1" && member != "m-2" {
				t.Fatalf("redemption for %q", member)
			}
			if seen[req.ID] || req.ID == "" {
				t.Fatalf("id %q sent twice", req.ID)
			}
			seen[req.ID] = true
			if req.Points <= 1_000_000 || req.Points > engine.MaxPoints {
				t.Fatalf("%s: want points above any balance the bench makes and within the limit", body)
			}
		}
	}
}

// TestBenchRulesScheduleNothingDuringARun: the expiry run moves the test
// clock past expireAhead, and the scheduler runs whatever falls due on the
// way; the load tool's rules must let only the job it starts itself run.
func TestBenchRulesScheduleNothingDuringARun(t *testing.T) {
	for _, now := range []time.Time{time.Now(), time.Date(2027, 12, 31, 23, 0, 0, 0, time.UTC), time.Date(2028, 8, 31, 12, 0, 0, 0, time.UTC)} {
		src, err := benchRules(now)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := rules.Parse("rules.yaml", src)
		if err != nil {
			t.Fatalf("%v:\n%s", err, src)
		}
		if len(prog.Jobs) != len(rules.JobNames()) {
			t.Fatalf("jobs %v", prog.Jobs)
		}
		for _, j := range prog.Jobs {
			spec, err := cron.ParseStandard(j.Schedule)
			if err != nil {
				t.Fatal(err)
			}
			if next := spec.Next(now.In(prog.Location)); next.Before(now.Add(expireAhead + 30*24*time.Hour)) {
				t.Errorf("from %v, %s falls due at %v, within the run", now, j.Name, next)
			}
		}
	}
}

// TestPostgresArgs: a postgres:// --db runs the PostgreSQL comparison, and
// cannot be mixed with a running server's --url.
func TestPostgresArgs(t *testing.T) {
	cfg, err := parseArgs([]string{"--db", "postgres://u@h/db"}, io.Discard)
	if err != nil || cfg.pgURL != "postgres://u@h/db" || cfg.dbPath != "" {
		t.Fatalf("got %+v, %v", cfg, err)
	}
	if cfg, err := parseArgs([]string{"--db", "loyalty.db"}, io.Discard); err != nil || cfg.pgURL != "" || cfg.dbPath != "loyalty.db" {
		t.Fatalf("a file --db: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{{"--db", "postgres://u@h/db", "--url", "http://x"}, {"--pg-local", "--url", "http://x"}} {
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParsePgbench(t *testing.T) {
	out := []byte(`pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: minimal.sql
scaling factor: 1
query mode: prepared
number of clients: 64
number of threads: 2
duration: 8 s
number of transactions actually processed: 41471
latency average = 12.346 ms
initial connection time = 61.023 ms
tps = 5183.872770 (without initial connection time)
`)
	p, err := parsePgbench(out, 64)
	if err != nil || p.TPS != 5183.87277 || p.LatencyMs != 12.346 || p.Concurrency != 64 {
		t.Fatalf("got %+v, %v", p, err)
	}
	if _, err := parsePgbench([]byte("pgbench: error: connection refused"), 1); err == nil {
		t.Error("output without a rate: no error")
	}
}

// TestRoundRobin: given two servers, each worker sends its requests to
// them in turn, and workers start on different ones, as behind a
// round-robin load balancer.
func TestRoundRobin(t *testing.T) {
	var hits [2]atomic.Int64
	var addrs []string
	for i := range hits {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			w.WriteHeader(http.StatusOK)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	c := newClient(addrs[0], nil, "r", addrs[1])
	a, b := c.newWorker(1), c.newWorker(2)
	defer a.release()
	defer b.release()
	if err := a.do("GET", "/x", nil, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	if err := b.do("GET", "/x", nil, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	if hits[0].Load() != 1 || hits[1].Load() != 1 {
		t.Fatalf("two workers' first requests reached the servers %d and %d times, want one each", hits[0].Load(), hits[1].Load())
	}
	for range 10 {
		if err := a.do("GET", "/x", nil, http.StatusOK); err != nil {
			t.Fatal(err)
		}
	}
	if hits[0].Load() != 6 || hits[1].Load() != 6 {
		t.Errorf("ten more requests of one worker: %d and %d, want 6 and 6", hits[0].Load(), hits[1].Load())
	}
}

// TestReportBesidePgbench runs the tool as a user does, on a tiny load, and
// reads its report: pgbench's minimal transaction at 1 and 64 clients
// (on the test server, a database of its own) in turn with our purchases
// at the same concurrencies, and the balance reads, each as a ratio to it;
// without pgbench on the machine, the line that says the peer was skipped.
func TestReportBesidePgbench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	pgtest.Skip(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "bench.json")
	// 4 s per load: two slices of pgbench and of ours, in turn.
	cfg, err := parseArgs([]string{"--members", "50", "--lots", "0", "--concurrency", "1,64", "--duration", "4s", "--warmup", "0s",
		"--ceiling-duration", "50ms", "--refused-tills", "0", "--read-concurrency", "4", "--mixed-concurrency", "64",
		"--dir", dir, "--json", jsonPath, "--pgbench", os.Getenv(pgtest.EnvServer)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out, logs bytes.Buffer
	if err := run(context.Background(), cfg, &out, &logs); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	report := out.String()
	if findPgbench() == "" {
		if !strings.Contains(report, "(0) peer: skipped: pgbench not found") {
			t.Fatalf("no pgbench here, and the report does not say the peer was skipped:\n%s", report)
		}
		return
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\s+1\s+\d+\s+[0-9.]+\s+2$`),  // pgbench at 1 client: tx/s, latency, in two slices
		regexp.MustCompile(`(?m)^\s+64\s+\d+\s+[0-9.]+\s+2$`), // and at 64
		regexp.MustCompile(`(?m)^purchases at 1: p50 vs pgbench's mean latency\s+[0-9.]+ ms\s+[0-9.]+ ms\s+[0-9.]+×\s+≤ 1.5×`),
		regexp.MustCompile(`(?m)^purchases at 64: rate\s+\d+/s\s+\d+/s\s+[0-9.]+×\s+≥ 0.75×`),
		regexp.MustCompile(`(?m)^balance reads beside 64 tills\s+\d+/s\s+\d+/s\s+[0-9.]+×`),
		regexp.MustCompile(`(?m)^\(1\) raw ceiling`),
	} {
		if !want.MatchString(report) {
			t.Errorf("the report has no line matching %s:\n%s", want, report)
		}
	}
	var res Results
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Peer == nil || len(res.Peer.Runs) != 2 || res.Peer.Runs[0].Concurrency != 1 || res.Peer.Runs[1].Concurrency != 64 || res.Peer.Runs[1].TPS <= 0 || res.Peer.Runs[1].Slices != 2 {
		t.Fatalf("pgbench_peer in the JSON: %+v", res.Peer)
	}
	if len(res.Purchases) != 2 || res.Purchases[1].Errors != 0 || res.Purchases[1].Requests == 0 {
		t.Fatalf("purchases in the JSON: %+v", res.Purchases)
	}
}

// TestReportPeerSkipped: a machine without PostgreSQL gets a run all the
// same, and a report that says why it has no ratios.
func TestReportPeerSkipped(t *testing.T) {
	var out bytes.Buffer
	printTable(&out, &Results{Purchases: []stats{{Concurrency: 1, PerSec: 500}}, Peer: &peerResult{Skipped: "pgbench not found"}})
	if !strings.Contains(out.String(), "(0) peer: skipped: pgbench not found") || strings.Contains(out.String(), "ours against pgbench") {
		t.Fatalf("report:\n%s", out.String())
	}
}
