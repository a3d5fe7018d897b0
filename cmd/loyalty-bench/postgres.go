package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store/postgres"
)

// The PostgreSQL comparison (--db postgres://… or --pg-local) measures, at
// each concurrency and in turn so that the machine's drift falls on all
// alike: pgbench's minimal transaction on the run's database (its
// ceiling), purchases on bbolt, on PostgreSQL through one server, and
// through two servers on the same database taken in turn by every till.

// pgResult is what the comparison measured.
type pgResult struct {
	Version        string          `json:"server_version"`
	Database       string          `json:"database"`
	Local          bool            `json:"local_cluster"`
	Pgbench        []pgbenchResult `json:"pgbench,omitempty"`
	PgbenchSkipped string          `json:"pgbench_skipped,omitempty"`
	Bolt           []stats         `json:"bbolt"`
	One            []stats         `json:"postgres_one_server"`
	Two            []stats         `json:"postgres_two_servers"`
	SeedSec        float64         `json:"seed_seconds"`
	Verified       string          `json:"verified,omitempty"`
}

// pgbenchResult is one pgbench run of the minimal transaction.
type pgbenchResult struct {
	Concurrency int     `json:"concurrency"`
	TPS         float64 `json:"tps"`
	LatencyMs   float64 `json:"latency_avg_ms"`
	// Slices is how many runs, in turn with our load, the figures are
	// the mean of (the default run's peer); zero for one run.
	Slices int `json:"slices,omitempty"`
}

// minimalTransaction is pgbench's script: insert one row, update one row,
// the least a purchase does, as prepared statements.
const minimalTransaction = `\set a random(1, %d)
BEGIN;
INSERT INTO bench_min_log (account, delta, at) VALUES (:a, 1, now());
UPDATE bench_min_accounts SET balance = balance + 1 WHERE id = :a;
END;
`

func pgCompare(ctx context.Context, cfg config, bin, dir string, res *Results, logf func(string, ...any)) (err error) {
	r := &pgResult{Local: cfg.pgLocal}
	res.Postgres = r
	base := cfg.pgURL
	var dbPids func() []int
	if cfg.pgLocal {
		logf("starting a local PostgreSQL cluster (.ci/postgres)")
		cl, err := startLocalCluster(ctx)
		if err != nil {
			return err
		}
		defer cl.stop(logf)
		base, dbPids = cl.url, cl.pids
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	dsn, drop, err := createDatabase(ctx, base, "loyalty_bench_"+run)
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer drop()
	} else {
		logf("keeping database %s", postgres.Redact(dsn))
	}
	r.Database = postgres.Redact(dsn)
	if r.Version, err = serverVersion(ctx, dsn); err != nil {
		return err
	}

	logf("seeding %d members on PostgreSQL through the engine", cfg.members)
	t := time.Now()
	pgMembers, err := seedPostgres(ctx, dsn, cfg.members)
	if err != nil {
		return err
	}
	r.SeedSec = time.Since(t).Seconds()
	pgbench, script, err := preparePgbench(ctx, dsn, dir, cfg.members)
	if err != nil {
		return err
	}
	if pgbench == "" {
		r.PgbenchSkipped = "pgbench not found (PATH, /usr/lib/postgresql/*/bin): no ceiling measured"
		logf("%s", r.PgbenchSkipped)
	}

	boltPath := filepath.Join(dir, "loyalty.db")
	logf("seeding %d members on bbolt", cfg.members)
	boltMembers, err := seedMembers(ctx, boltPath, cfg.members, 128, "card-")
	if err != nil {
		return err
	}
	rulesPath := filepath.Join(dir, "rules.yaml")
	logf("starting a server on bbolt and two on PostgreSQL")
	bolt, err := startServer(bin, boltPath, rulesPath, filepath.Join(dir, "server-bbolt.log"), cfg.serverArgs)
	if err != nil {
		return err
	}
	defer bolt.kill()
	a, err := startServer(bin, dsn, rulesPath, filepath.Join(dir, "server-pg-a.log"), cfg.serverArgs)
	if err != nil {
		return err
	}
	defer a.kill()
	b, err := startServer(bin, dsn, rulesPath, filepath.Join(dir, "server-pg-b.log"), cfg.serverArgs)
	if err != nil {
		return err
	}
	defer b.kill()
	boltClient := newClient(bolt.addr, boltMembers, run)
	boltClient.pid = bolt.pid()
	one := newClient(a.addr, pgMembers, run+"a")
	one.pid, one.dbPids = a.pid(), dbPids
	two := newClient(a.addr, pgMembers, run+"b", b.addr)
	two.pid, two.pids, two.dbPids = a.pid(), []int{b.pid()}, dbPids

	for _, c := range cfg.concurrency {
		if pgbench != "" {
			logf("pgbench's minimal transaction at %d clients", c)
			p, err := runPgbench(ctx, pgbench, script, dsn, c, cfg.duration)
			if err != nil {
				return err
			}
			r.Pgbench = append(r.Pgbench, p)
		}
		for _, l := range []struct {
			name string
			cl   *client
			out  *[]stats
		}{{"bbolt", boltClient, &r.Bolt}, {"PostgreSQL, one server", one, &r.One}, {"PostgreSQL, two servers", two, &r.Two}} {
			logf("purchases at %d on %s", c, l.name)
			lat, err := l.cl.timed(ctx, c, (*worker).purchase, cfg.warmup, cfg.duration)
			if err != nil {
				return err
			}
			reportErrors(logf, "purchases on "+l.name, lat)
			*l.out = append(*l.out, lat.stats(c))
		}
	}
	for _, s := range []*server{bolt, a, b} {
		if err := s.stop(); err != nil {
			return err
		}
	}
	if cfg.verify {
		logf("verifying the PostgreSQL database")
		if r.Verified, err = verifyDB(ctx, bin, dsn); err != nil {
			return err
		}
	}
	return nil
}

// seedPostgres enrols n members through the engine on the database at
// dsn, with synchronous_commit off for the seeding connections only.
func seedPostgres(ctx context.Context, dsn string, n int) ([]memberRef, error) {
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, withParam(dsn, "synchronous_commit", "off"), postgres.DefaultOptions())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	e := engine.New(db, engine.Options{Logger: slog.New(slog.DiscardHandler)})
	if _, err := e.LoadRules(ctx, prog, "file"); err != nil {
		return nil, err
	}
	return seedMembersOn(ctx, db, prog, e, n, 32, "card-")
}

// withParam adds a query parameter (a run-time setting) to a URL.
func withParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// createDatabase creates a database for the run on the server base names,
// and returns its URL and a function that drops it.
func createDatabase(ctx context.Context, base, name string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: connect to %s: %w", postgres.Redact(base), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("postgres: the bench creates a database of its own and drops it after (--keep keeps it): %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			conn.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

func serverVersion(ctx context.Context, dsn string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var v string
	err = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// preparePgbench creates the minimal transaction's tables, one account
// per member, and writes its script; it returns "" for pgbench when there
// is none on this machine.
func preparePgbench(ctx context.Context, dsn, dir string, accounts int) (pgbench, script string, err error) {
	pgbench = findPgbench()
	if pgbench == "" {
		return "", "", nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", "", err
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`CREATE TABLE bench_min_accounts (id integer PRIMARY KEY, balance bigint NOT NULL)`,
		`CREATE TABLE bench_min_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account integer NOT NULL, delta bigint NOT NULL, at timestamptz NOT NULL)`,
		fmt.Sprintf(`INSERT INTO bench_min_accounts SELECT i, 0 FROM generate_series(1, %d) AS i`, accounts),
		`VACUUM ANALYZE bench_min_accounts`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", "", fmt.Errorf("prepare pgbench: %w", err)
		}
	}
	script = filepath.Join(dir, "minimal.sql")
	if err := os.WriteFile(script, fmt.Appendf(nil, minimalTransaction, accounts), 0o644); err != nil {
		return "", "", err
	}
	return pgbench, script, nil
}

func findPgbench() string {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	slices.Sort(found)
	if len(found) > 0 {
		return found[len(found)-1]
	}
	return ""
}

var (
	tpsLine     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	latencyLine = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// runPgbench runs the minimal transaction for d at conc clients.
func runPgbench(ctx context.Context, pgbench, script, dsn string, conc int, d time.Duration) (pgbenchResult, error) {
	cmd := exec.CommandContext(ctx, pgbench, "-n", "-M", "prepared", "-c", strconv.Itoa(conc), "-j", strconv.Itoa(min(conc, 2)),
		"-T", strconv.Itoa(max(int(d.Seconds()), 1)), "-f", script, dsn)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return pgbenchResult{}, fmt.Errorf("pgbench at %d clients: %w\n%s", conc, err, out)
	}
	return parsePgbench(out, conc)
}

// parsePgbench reads the rate and mean latency pgbench printed.
func parsePgbench(out []byte, conc int) (pgbenchResult, error) {
	p := pgbenchResult{Concurrency: conc}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return p, fmt.Errorf("pgbench at %d clients: no tps in its output:\n%s", conc, out)
	}
	p.TPS, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := latencyLine.FindSubmatch(out); m != nil {
		p.LatencyMs, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	return p, nil
}

// localCluster is a throwaway PostgreSQL cluster started by .ci/postgres.
type localCluster struct {
	script, url, dir string
}

// startLocalCluster runs .ci/postgres start, found from the working
// directory up, with room for pgbench's clients beside the servers' pools.
func startLocalCluster(ctx context.Context) (*localCluster, error) {
	script, err := findUp(".ci/postgres")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "bash", script, "start")
	cmd.Env = append(os.Environ(), "LOYALTY_PG_MAX_CONNECTIONS=500")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s start: %w", script, err)
	}
	cl := &localCluster{script: script}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, "'")
		switch k {
		case "LOYALTY_TEST_POSTGRES":
			cl.url = v
		case "LOYALTY_PG_DIR":
			cl.dir = v
		}
	}
	if cl.url == "" || cl.dir == "" {
		return nil, fmt.Errorf("%s start printed no cluster: %q", script, out)
	}
	return cl, nil
}

func (cl *localCluster) stop(logf func(string, ...any)) {
	if out, err := exec.Command("bash", cl.script, "stop", cl.dir).CombinedOutput(); err != nil {
		logf("stopping the local cluster: %v %s", err, out)
	}
}

// pids lists the cluster's processes: the postmaster and its children.
func (cl *localCluster) pids() []int {
	b, err := os.ReadFile(filepath.Join(cl.dir, "data", "postmaster.pid"))
	if err != nil {
		return nil
	}
	pm, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil
	}
	out := []int{pm}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			out = append(out, pid)
		}
	}
	return out
}

func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("--pg-local: no .ci/postgres in this directory or above: run the bench from the repository")
		}
		dir = parent
	}
}

// printPostgres writes the comparison's table.
func printPostgres(w io.Writer, r *Results) {
	p, s := r.Postgres, r.Settings
	fmt.Fprintf(w, "\nPostgreSQL %s (%s%s), %d members, %s per load after %s of warm-up\n", p.Version, p.Database,
		map[bool]string{true: ", a local cluster started for the run"}[p.Local], s.Members, fmtSec(s.DurationSec), r.Settings.Warmup)
	if p.PgbenchSkipped != "" {
		fmt.Fprintln(w, p.PgbenchSkipped)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tills\tpgbench tx/s\tbbolt /s\tp50 ms\tp99 ms\tPG 1 server /s\tp50 ms\tp99 ms\tPG 2 servers /s\tp50 ms\tp99 ms\t1 server/pgbench\t2 servers/pgbench\t2/1 servers\terrors\tbbolt server µs/purchase\tPG server µs/purchase\tPostgreSQL µs/purchase\t")
	for i := range p.One {
		tps := 0.0
		if i < len(p.Pgbench) {
			tps = p.Pgbench[i].TPS
		}
		ratio := func(a, b float64) string {
			if b == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f%%", 100*a/b)
		}
		bo, one, two := p.Bolt[i], p.One[i], p.Two[i]
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1f\t%.1f\t%.0f\t%.1f\t%.1f\t%.0f\t%.1f\t%.1f\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t\n", one.Concurrency, tps,
			bo.PerSec, bo.P50ms, bo.P99ms, one.PerSec, one.P50ms, one.P99ms, two.PerSec, two.P50ms, two.P99ms,
			ratio(one.PerSec, tps), ratio(two.PerSec, tps), ratio(two.PerSec, one.PerSec),
			bo.Errors+one.Errors+two.Errors, bo.ServerCPUus, one.ServerCPUus, one.DBCPUus)
	}
	tw.Flush()
	if p.Verified != "" {
		fmt.Fprintf(w, "verify: %s\n", strings.ReplaceAll(p.Verified, "\n", "; "))
	}
}
