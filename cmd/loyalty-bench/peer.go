package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/store/postgres"
)

// The peer (issue 18): the default run measures pgbench's minimal
// transaction (insert one row, update one row, durable) on PostgreSQL
// beside our purchases, in turn with our load at the same concurrency
// (alternate), so that the machine's drift falls on both alike and our
// figures can be read as ratios to it. A figure on a shared machine moves
// by ±15% between runs; a ratio within one run moves less.

// peerResult is pgbench's minimal transaction, measured within the run.
type peerResult struct {
	Version  string          `json:"server_version,omitempty"`
	Database string          `json:"database,omitempty"`
	Local    bool            `json:"local_cluster,omitempty"`
	Runs     []pgbenchResult `json:"runs,omitempty"`
	Skipped  string          `json:"skipped,omitempty"`
}

// at is pgbench's figure at conc clients, if it was measured.
func (p *peerResult) at(conc int) (pgbenchResult, bool) {
	if p == nil {
		return pgbenchResult{}, false
	}
	for _, r := range p.Runs {
		if r.Concurrency == conc {
			return r, true
		}
	}
	return pgbenchResult{}, false
}

// peer is a prepared pgbench: its binary, script and database.
type peer struct {
	pgbench, script, dsn string
	clients              []int
	close                func()
}

// startPeer prepares pgbench's minimal transaction on where ("local": a
// throwaway cluster from .ci/postgres; a postgres:// URL: a database the
// bench creates there and drops). When PostgreSQL or pgbench is absent it
// returns no peer and says why in r.Skipped; the run goes on without it.
func startPeer(ctx context.Context, cfg config, dir string, r *peerResult, logf func(string, ...any)) (*peer, error) {
	pgbench := findPgbench()
	if pgbench == "" {
		r.Skipped = "pgbench not found (PATH, /usr/lib/postgresql/*/bin): no PostgreSQL peer measured, no ratios"
		return nil, nil
	}
	var cleanups []func()
	p := &peer{pgbench: pgbench, clients: cfg.peerClients, close: func() {
		for _, f := range slices.Backward(cleanups) {
			f()
		}
	}}
	base := cfg.peer
	if base == "local" {
		if !havePostgresServer() {
			r.Skipped = "no PostgreSQL server (initdb under /usr/lib/postgresql/*/bin): no peer measured, no ratios; install Debian's postgresql package, or give --pgbench postgres://…"
			return nil, nil
		}
		logf("starting a throwaway PostgreSQL cluster for pgbench (.ci/postgres)")
		cl, err := startLocalCluster(ctx)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func() { cl.stop(logf) })
		base, r.Local = cl.url, true
	}
	dsn, drop, err := createDatabase(ctx, base, "loyalty_peer_"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		p.close()
		return nil, err
	}
	cleanups = append(cleanups, drop)
	p.dsn, r.Database = dsn, postgres.Redact(dsn)
	if r.Version, err = serverVersion(ctx, dsn); err != nil {
		p.close()
		return nil, err
	}
	if _, p.script, err = preparePgbench(ctx, dsn, dir, cfg.members); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func havePostgresServer() bool {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) > 0 {
		return true
	}
	_, err := os.Stat("/usr/bin/initdb")
	return err == nil
}

// measure runs pgbench at conc clients, then a checkpoint, so that the
// pages it dirtied are written before our load starts rather than during it.
func (p *peer) measure(ctx context.Context, conc int, d time.Duration) (pgbenchResult, error) {
	res, err := runPgbench(ctx, p.pgbench, p.script, p.dsn, conc, d)
	if err != nil {
		return res, err
	}
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return res, err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return res, err
}

// alternate measures pgbench and our load (ours) at conc in turn, in
// slices of about two seconds that add up to d each, so that a change in
// the disk's pace falls on both alike. One load of d each, one after the
// other, gave ratios at one client from 0.3× to 3.8× over six runs on a
// shared machine: a lone fdatasync's latency there moves several-fold
// within seconds. The pgbench figure is the slices' mean; ours, the slices'
// requests together.
func (p *peer) alternate(ctx context.Context, conc int, warmup, d time.Duration, ours func(warmup, d time.Duration) (*latencies, error)) (pgbenchResult, *latencies, error) {
	n := max(int(d/(2*time.Second)), 1)
	slice := d / time.Duration(n)
	res := pgbenchResult{Concurrency: conc, Slices: n}
	var total *latencies
	var weighted float64
	for i := range n {
		pg, err := p.measure(ctx, conc, slice)
		if err != nil {
			return res, nil, err
		}
		res.TPS += pg.TPS / float64(n)
		weighted += pg.LatencyMs * pg.TPS
		w := time.Duration(0)
		if i == 0 {
			w = warmup
		}
		l, err := ours(w, slice)
		if err != nil {
			return res, nil, err
		}
		if total == nil {
			total = l
		} else {
			total.add(l)
		}
	}
	if res.TPS > 0 {
		// The mean latency over all the slices' transactions.
		res.LatencyMs = weighted / (res.TPS * float64(n))
	}
	return res, total, nil
}

// ratio is a over b as a multiple, or "-" without b.
func ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// printPeer writes pgbench's figures, before ours.
func printPeer(w io.Writer, r *Results) {
	p := r.Peer
	if p == nil {
		return
	}
	if p.Skipped != "" {
		fmt.Fprintf(w, "\n(0) peer: skipped: %s\n", p.Skipped)
		return
	}
	where := p.Database
	if p.Local {
		where += ", a throwaway local cluster"
	}
	fmt.Fprintf(w, "\n(0) peer: pgbench's minimal transaction (BEGIN; INSERT one row; UPDATE one row; END; prepared, durable) on PostgreSQL %s (%s), in turn with our purchases at the same concurrency, in slices of about 2 s\n", p.Version, where)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\ttx/s\tlatency avg ms\tslices\t")
	for _, x := range p.Runs {
		fmt.Fprintf(tw, "%d\t%.0f\t%.2f\t%d\t\n", x.Concurrency, x.TPS, x.LatencyMs, max(x.Slices, 1))
	}
	tw.Flush()
}

// printRatios writes our figures as ratios to pgbench's, beside issue 18's
// targets, after ours.
func printRatios(w io.Writer, r *Results) {
	p := r.Peer
	if p == nil || len(p.Runs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nours against pgbench (issue 18's targets)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tours\tpgbench\tratio\ttarget\t")
	for _, s := range r.Purchases {
		pg, ok := p.at(s.Concurrency)
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "purchases at %d: rate\t%.0f/s\t%.0f/s\t%s\t%s\t\n", s.Concurrency, s.PerSec, pg.TPS, ratio(s.PerSec, pg.TPS), map[bool]string{true: "≥ 0.75×"}[s.Concurrency == 64])
		fmt.Fprintf(tw, "purchases at %d: p50 vs pgbench's mean latency\t%.2f ms\t%.2f ms\t%s\t%s\t\n", s.Concurrency, s.P50ms, pg.LatencyMs, ratio(s.P50ms, pg.LatencyMs), map[bool]string{true: "≤ 1.5×"}[s.Concurrency == 1])
		if s.Concurrency == 64 {
			fmt.Fprintf(tw, "purchases at 64: p99\t%.1f ms\t\t\t≤ 20 ms\t\n", s.P99ms)
			fmt.Fprintf(tw, "purchases at 64: server CPU per purchase\t%.0f µs\t\t\t≤ 150 µs\t\n", s.ServerCPUus)
		}
	}
	if x := r.Mixed; x != nil {
		if pg, ok := p.at(x.Purchases.Concurrency); ok {
			fmt.Fprintf(tw, "balance reads beside %d tills\t%.0f/s\t%.0f/s\t%s\t≥ 30,000/s\t\n", x.Purchases.Concurrency, x.Reads.PerSec, pg.TPS, ratio(x.Reads.PerSec, pg.TPS))
			fmt.Fprintf(tw, "purchases beside the reads\t%.0f/s\t%.0f/s\t%s\t\t\n", x.Purchases.PerSec, pg.TPS, ratio(x.Purchases.PerSec, pg.TPS))
		}
		fmt.Fprintf(tw, "balance reads: server CPU per request (reads and purchases)\t%.0f µs\t\t\t≤ 40 µs\t\n", x.Reads.ServerCPUus)
	}
	tw.Flush()
}
