// Command loyalty-bench measures the loyalty server on this machine and
// prints a table: the raw bbolt group-commit ceiling of the disk, purchases
// over HTTP at several concurrencies, balance reads while purchases run,
// purchases while other clients send redemptions the server refuses, the
// expire-points job over a million lots while purchases run, and the
// server's database size and peak memory. With --json it writes the same
// figures for comparing commits.
//
// By default it builds cmd/loyalty, seeds a temp database (members through
// the engine, lots through the store, both before the server opens the
// file), and runs `loyalty serve` on it as a child process on 127.0.0.1:0.
// With --url it drives a running server instead, seeding members over HTTP.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
	"github.com/loyaltyhq/loyalty/store/postgres"
)

// config is the command line.
type config struct {
	url         string
	pid         int
	dbPath      string
	serverBin   string
	serverArgs  []string
	dir         string
	keep        bool
	members     int
	lots        int
	concurrency []int
	duration    time.Duration
	warmup      time.Duration
	ceilingDur  time.Duration
	readConc    int
	mixedConc   int
	refusedTill int
	refusedConc int
	expireConc  int
	batchDelay  time.Duration
	batchSize   int
	jsonPath    string
	verify      bool
	startupOnly bool
	bigMembers  int
	bigEntries  int
	// pgURL (--db postgres://…) or pgLocal runs the PostgreSQL comparison.
	pgURL   string
	pgLocal bool
	// peer is where the default run measures pgbench's minimal transaction
	// ("local", "off" or a postgres:// URL), at peerClients clients.
	peer        string
	peerClients []int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		os.Exit(2)
	}
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "loyalty-bench: %v\n", err)
		os.Exit(1)
	}
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("loyalty-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var conc, serverArgs, peerClients string
	fs.StringVar(&cfg.url, "url", "", "drive this running server (http://host:port) instead of starting one; members are then seeded over HTTP and the expiry run is skipped")
	fs.IntVar(&cfg.pid, "pid", 0, "with --url: the server's process id, to report its peak RSS")
	fs.StringVar(&cfg.dbPath, "db", "", "with --url: the server's database file, to report its size; a postgres:// URL instead runs the PostgreSQL comparison on a database the bench creates on that server (and drops)")
	fs.BoolVar(&cfg.pgLocal, "pg-local", false, "run the PostgreSQL comparison on a throwaway local cluster started with .ci/postgres")
	fs.StringVar(&cfg.peer, "pgbench", "local", "the peer of the default run, pgbench's minimal transaction: \"local\" on a throwaway cluster (.ci/postgres), a postgres:// URL of a server to create a database on (and drop), or \"off\"")
	fs.StringVar(&peerClients, "pgbench-clients", "1,64", "pgbench's client counts, each measured just before our purchases at the same concurrency")
	fs.StringVar(&cfg.serverBin, "server-bin", "", "loyalty binary to run (default: build ./cmd/loyalty)")
	fs.StringVar(&serverArgs, "server-args", "", "extra arguments for `loyalty serve`, space-separated")
	fs.StringVar(&cfg.dir, "dir", "", "directory for the temp databases (default: a new one under $TMPDIR); it is the disk being measured")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temp directory")
	fs.IntVar(&cfg.members, "members", 100_000, "members to seed")
	fs.IntVar(&cfg.lots, "lots", 1_000_000, "due lots for the expiry run (0: skip it); spread evenly over the members")
	fs.StringVar(&conc, "concurrency", "1,16,64,256", "purchase concurrencies, comma-separated")
	fs.DurationVar(&cfg.duration, "duration", 8*time.Second, "measured time of each load")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured time before each load")
	fs.DurationVar(&cfg.ceilingDur, "ceiling-duration", 3*time.Second, "time of each raw ceiling run")
	fs.IntVar(&cfg.readConc, "read-concurrency", 64, "balance readers during the mixed load")
	fs.IntVar(&cfg.mixedConc, "mixed-concurrency", 64, "purchase concurrency during the balance reads")
	fs.IntVar(&cfg.refusedTill, "refused-tills", 32, "purchase concurrency of the refused-writes load, alone and beside the refused redemptions (0: skip it)")
	fs.IntVar(&cfg.refusedConc, "refused-concurrency", 32, "clients sending redemptions above the balance (422) beside those tills")
	fs.IntVar(&cfg.expireConc, "expire-concurrency", 64, "purchase concurrency during the expiry run")
	fs.DurationVar(&cfg.batchDelay, "ceiling-batch-delay", 2*time.Millisecond, "the raw ceiling's bbolt MaxBatchDelay (the server's group commit has no timer)")
	fs.IntVar(&cfg.batchSize, "batch-size", 0, "most writes per commit, the server's (--batch-size) and the ceiling's (0: the store's default)")
	fs.StringVar(&cfg.jsonPath, "json", "", "also write the figures as JSON to this file")
	fs.BoolVar(&cfg.verify, "verify", false, "run `loyalty verify` on the database after the run")
	fs.IntVar(&cfg.bigMembers, "startup-members", 0, "also build a database of this many members through the store and measure the server's start-up and memory on it (0: skip)")
	fs.IntVar(&cfg.bigEntries, "startup-entries", 10, "ledger entries per member of the start-up database")
	fs.BoolVar(&cfg.startupOnly, "startup-only", false, "only the start-up measurement (with --startup-members)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loyalty-bench: unexpected argument %q\n", fs.Arg(0))
		return cfg, errors.New("usage")
	}
	var err error
	if cfg.concurrency, err = parseCounts("--concurrency", conc, stderr); err != nil {
		return cfg, err
	}
	if cfg.peerClients, err = parseCounts("--pgbench-clients", peerClients, stderr); err != nil {
		return cfg, err
	}
	if cfg.peer != "local" && cfg.peer != "off" && !postgres.IsURL(cfg.peer) {
		fmt.Fprintf(stderr, "loyalty-bench: --pgbench: want local, off or a postgres:// URL, not %q\n", cfg.peer)
		return cfg, errors.New("usage")
	}
	cfg.serverArgs = strings.Fields(serverArgs)
	if postgres.IsURL(cfg.dbPath) {
		cfg.pgURL, cfg.dbPath = cfg.dbPath, ""
	}
	if (cfg.pgURL != "" || cfg.pgLocal) && cfg.url != "" {
		fmt.Fprintln(stderr, "loyalty-bench: the PostgreSQL comparison starts its own servers: give --url or --db postgres:// / --pg-local, not both")
		return cfg, errors.New("usage")
	}
	if cfg.members < 1 {
		fmt.Fprintln(stderr, "loyalty-bench: --members must be at least 1")
		return cfg, errors.New("usage")
	}
	return cfg, nil
}

// parseCounts reads a comma-separated list of positive numbers.
func parseCounts(flag, list string, stderr io.Writer) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "loyalty-bench: %s: %q is not a positive number\n", flag, f)
			return nil, errors.New("usage")
		}
		out = append(out, n)
	}
	return out, nil
}

// Results is everything the bench measured; the JSON file holds it as is.
type Results struct {
	StartedAt time.Time       `json:"started_at"`
	Machine   machine         `json:"machine"`
	Settings  settings        `json:"settings"`
	Seed      seedTimes       `json:"seed"`
	Disk      diskResult      `json:"disk"`
	Ceiling   []ceilingResult `json:"ceiling"`
	Purchases []stats         `json:"purchases"`
	Mixed     *mixedResult    `json:"mixed,omitempty"`
	Refused   *refusedResult  `json:"refused,omitempty"`
	Expire    *expireResult   `json:"expire,omitempty"`
	Server    serverResult    `json:"server"`
	Startup   *startupResult  `json:"startup,omitempty"`
	Postgres  *pgResult       `json:"postgres,omitempty"`
	Peer      *peerResult     `json:"pgbench_peer,omitempty"`
}

type machine struct {
	CPUs       int    `json:"cpus"`
	MemTotalMB int64  `json:"mem_total_mb"`
	GoVersion  string `json:"go_version"`
	Dir        string `json:"dir"`
	LoadAvg    string `json:"load_avg"`
}

type settings struct {
	Members           int     `json:"members"`
	Lots              int     `json:"lots"`
	DurationSec       float64 `json:"duration_seconds"`
	Warmup            string  `json:"warmup"`
	CeilingBatchDelay string  `json:"ceiling_batch_delay"`
	BatchSize         int     `json:"batch_size"`
	ServerArgs        string  `json:"server_args"`
	URL               string  `json:"url,omitempty"`
}

type seedTimes struct {
	MembersSec float64 `json:"members_seconds"`
	MembersHow string  `json:"members_how"`
	LotsSec    float64 `json:"lots_seconds"`
	LotsHow    string  `json:"lots_how"`
}

type mixedResult struct {
	Reads     stats `json:"balance_reads"`
	Purchases stats `json:"purchases"`
}

type expireResult struct {
	Lots      int64   `json:"lots_expired"`
	Seconds   float64 `json:"seconds"`
	Purchases stats   `json:"purchases_during"`
}

type serverResult struct {
	StartupSec float64   `json:"startup_seconds"`
	DBBytes    int64     `json:"db_bytes"`
	Mem        memStatus `json:"mem"`
	Verified   string    `json:"verified,omitempty"`
}

type startupResult struct {
	Members    int       `json:"members"`
	Entries    int       `json:"entries_per_member"`
	BuildSec   float64   `json:"build_seconds"`
	DBBytes    int64     `json:"db_bytes"`
	StartupSec float64   `json:"startup_seconds"`
	MemStarted memStatus `json:"mem_after_start"`
	MemLoaded  memStatus `json:"mem_after_load"`
	LoadReads  stats     `json:"balance_reads"`
}

// expireAhead is how far the seeded lots' expiry lies ahead of the seeding:
// past the notice period, so no job touches them until the test clock
// moves past it.
const expireAhead = 60 * 24 * time.Hour

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", args...) }
	res := &Results{StartedAt: time.Now().UTC(), Machine: describeMachine()}
	dir := cfg.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "loyalty-bench-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(dir)
		}
	}
	res.Machine.Dir = dir
	if cfg.batchSize > 0 {
		cfg.serverArgs = append(cfg.serverArgs, "--batch-size", strconv.Itoa(cfg.batchSize))
	}
	res.Settings = settings{
		Members: cfg.members, Lots: cfg.lots, DurationSec: cfg.duration.Seconds(), Warmup: cfg.warmup.String(),
		CeilingBatchDelay: cfg.batchDelay.String(), BatchSize: batchSize(cfg), ServerArgs: strings.Join(cfg.serverArgs, " "), URL: cfg.url,
	}
	if cfg.url != "" || cfg.pgURL != "" || cfg.pgLocal {
		res.Settings.Lots = 0
	}

	src, err := benchProgram()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), src, 0o644); err != nil {
		return err
	}
	bin := cfg.serverBin
	if cfg.url == "" && bin == "" {
		logf("building cmd/loyalty")
		var err error
		if bin, err = buildServer(ctx, dir); err != nil {
			return err
		}
	}

	switch {
	case cfg.pgURL != "" || cfg.pgLocal:
		if err := pgCompare(ctx, cfg, bin, dir, res, logf); err != nil {
			return err
		}
	case !cfg.startupOnly:
		if err := mainRun(ctx, cfg, bin, dir, res, logf); err != nil {
			return err
		}
	}
	if cfg.bigMembers > 0 && bin != "" {
		var err error
		if res.Startup, err = startupRun(ctx, cfg, bin, dir, logf); err != nil {
			return err
		}
	}

	printTable(stdout, res)
	if cfg.jsonPath != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// batchSize is the most writes a commit takes in the run, the server's and
// the ceiling's: the flag, or the store's default.
func batchSize(cfg config) int {
	if cfg.batchSize > 0 {
		return cfg.batchSize
	}
	return store.DefaultOptions().MaxBatchSize
}

// mainRun measures the ceiling, the loads and the server on the seeded
// database, into res.
func mainRun(ctx context.Context, cfg config, bin, dir string, res *Results, logf func(string, ...any)) error {
	delay, size := cfg.batchDelay, batchSize(cfg)
	logf("disk: fdatasync and random page writes")
	var err error
	if res.Disk, err = diskPages(dir, 2*cfg.ceilingDur); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	for _, c := range cfg.concurrency {
		logf("raw ceiling at concurrency %d", c)
		r, err := rawCeiling(dir, c, cfg.ceilingDur, delay, size)
		if err != nil {
			return fmt.Errorf("raw ceiling: %w", err)
		}
		res.Ceiling = append(res.Ceiling, r)
	}

	var pg *peer
	if cfg.peer != "off" {
		res.Peer = &peerResult{}
		if pg, err = startPeer(ctx, cfg, dir, res.Peer, logf); err != nil {
			return fmt.Errorf("pgbench peer: %w", err)
		}
		if pg == nil {
			logf("peer skipped: %s", res.Peer.Skipped)
		} else {
			defer pg.close()
		}
	}
	measurePeer := func(c int) error {
		if pg == nil || !slices.Contains(pg.clients, c) {
			return nil
		}
		logf("pgbench's minimal transaction at %d clients", c)
		p, err := pg.measure(ctx, c, cfg.duration)
		if err != nil {
			return fmt.Errorf("pgbench peer: %w", err)
		}
		res.Peer.Runs = append(res.Peer.Runs, p)
		return nil
	}

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var srv *server
	var cl *client
	dbPath := cfg.dbPath
	if cfg.url == "" {
		dbPath = filepath.Join(dir, "loyalty.db")
		rulesPath := filepath.Join(dir, "rules.yaml")
		logf("seeding %d members through the engine", cfg.members)
		t := time.Now()
		members, err := seedMembers(ctx, dbPath, cfg.members, 128, "card-")
		if err != nil {
			return err
		}
		res.Seed.MembersSec = time.Since(t).Seconds()
		res.Seed.MembersHow = "engine.CreateMember from 128 goroutines on the file, no fsync, before the server starts"
		if cfg.lots > 0 {
			per := (cfg.lots + cfg.members - 1) / cfg.members
			logf("seeding %d lots (%d per member) through the store", per*cfg.members, per)
			t = time.Now()
			if err := seedLots(ctx, dbPath, members, per, time.Now().Add(expireAhead)); err != nil {
				return err
			}
			res.Seed.LotsSec = time.Since(t).Seconds()
			res.Seed.LotsHow = "lot + earn ledger entry + member balance per lot through store.Tx (PutLot, AppendLedger, PutMember), no fsync, before the server starts; they fall due when the test clock moves 61 days"
			res.Settings.Lots = per * cfg.members
		}
		logf("starting the server")
		srv, err = startServer(bin, dbPath, rulesPath, filepath.Join(dir, "server.log"), cfg.serverArgs)
		if err != nil {
			return err
		}
		defer srv.kill()
		res.Server.StartupSec = srv.started.Seconds()
		cl = newClient(srv.addr, members, run)
		cl.pid = srv.pid()
	} else {
		addr := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(cfg.url, "http://"), "https://"), "/")
		if err := waitHealthy(addr, 10*time.Second); err != nil {
			return err
		}
		cl = newClient(addr, nil, run)
		cl.pid = cfg.pid
		logf("seeding %d members over HTTP", cfg.members)
		t := time.Now()
		members, err := cl.seedOverHTTP(ctx, cfg.members, 64, "bench-"+run+"-")
		if err != nil {
			return err
		}
		cl.members = members
		res.Seed.MembersSec = time.Since(t).Seconds()
		res.Seed.MembersHow = "POST /v1/members from 64 connections"
	}

	for _, c := range cfg.peerClients {
		if !slices.Contains(cfg.concurrency, c) {
			if err := measurePeer(c); err != nil {
				return err
			}
		}
	}
	for _, c := range cfg.concurrency {
		var l *latencies
		if pg != nil && slices.Contains(pg.clients, c) {
			logf("purchases at concurrency %d in turn with pgbench's minimal transaction at %d clients", c, c)
			p, lat, err := pg.alternate(ctx, c, cfg.warmup, cfg.duration, func(warmup, d time.Duration) (*latencies, error) {
				return cl.timed(ctx, c, (*worker).purchase, warmup, d)
			})
			if err != nil {
				return fmt.Errorf("purchases beside pgbench: %w", err)
			}
			res.Peer.Runs, l = append(res.Peer.Runs, p), lat
		} else {
			logf("purchases at concurrency %d", c)
			if l, err = cl.timed(ctx, c, (*worker).purchase, cfg.warmup, cfg.duration); err != nil {
				return err
			}
		}
		reportErrors(logf, "purchases", l)
		res.Purchases = append(res.Purchases, l.stats(c))
	}

	logf("balance reads at concurrency %d with purchases at %d", cfg.readConc, cfg.mixedConc)
	mixed, err := mixedLoad(ctx, cl, cfg, logf)
	if err != nil {
		return err
	}
	res.Mixed = mixed

	if cfg.refusedTill > 0 {
		logf("purchases at %d alone, then beside %d clients sending refused redemptions, then alone again", cfg.refusedTill, cfg.refusedConc)
		if res.Refused, err = refusedLoad(ctx, cl, cfg, logf); err != nil {
			return err
		}
	}

	if srv != nil && cfg.lots > 0 {
		logf("expire-points over %d lots with purchases at %d", res.Settings.Lots, cfg.expireConc)
		if res.Expire, err = expireLoad(ctx, cl, cfg, logf); err != nil {
			return err
		}
	}

	pid := cfg.pid
	if srv != nil {
		pid = srv.pid()
	}
	if pid > 0 {
		if res.Server.Mem, err = readMem(pid); err != nil {
			return err
		}
	}
	if srv != nil {
		if err := srv.stop(); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(dbPath); err == nil && dbPath != "" {
		res.Server.DBBytes = fi.Size()
	}
	if srv != nil && cfg.verify {
		logf("verifying the database")
		res.Server.Verified, err = verifyDB(ctx, bin, dbPath)
		if err != nil {
			return err
		}
	}
	return nil
}

func reportErrors(logf func(string, ...any), what string, l *latencies) {
	if l.errors > 0 {
		logf("%d %s failed; the first: %v", l.errors, what, l.firstErr)
	}
}

// mixedLoad runs balance reads and purchases side by side.
func mixedLoad(ctx context.Context, cl *client, cfg config, logf func(string, ...any)) (*mixedResult, error) {
	type out struct {
		l   *latencies
		err error
	}
	pc := make(chan out, 1)
	go func() {
		l, err := cl.timed(ctx, cfg.mixedConc, (*worker).purchase, cfg.warmup, cfg.duration)
		pc <- out{l, err}
	}()
	reads, err := cl.timed(ctx, cfg.readConc, (*worker).balance, cfg.warmup, cfg.duration)
	p := <-pc
	if err == nil {
		err = p.err
	}
	if err != nil {
		return nil, err
	}
	reportErrors(logf, "balance reads", reads)
	reportErrors(logf, "purchases", p.l)
	r := &mixedResult{Reads: reads.stats(cfg.readConc), Purchases: p.l.stats(cfg.mixedConc)}
	// Both loads saw the same server CPU time: share it over all requests.
	if n := len(reads.took) + len(p.l.took); n > 0 {
		cpu, self := float64(reads.server.cpu.Microseconds())/float64(n), float64(reads.self.Microseconds())/float64(n)
		r.Reads.ServerCPUus, r.Purchases.ServerCPUus = cpu, cpu
		r.Reads.BenchCPUus, r.Purchases.BenchCPUus = self, self
		r.Purchases.ServerCores = r.Reads.ServerCores
		// Reads write nothing: what was written was the purchases'.
		r.Reads.ServerWriteKiB, r.Purchases.ServerWriteKiB = 0, 0
		if len(p.l.took) > 0 {
			r.Purchases.ServerWriteKiB = float64(reads.server.written) / 1024 / float64(len(p.l.took))
		}
	}
	return r, nil
}

// refusedResult is purchases alone and beside clients whose redemptions are
// all refused: a refused write must not slow the others down. Purchases
// run alone before and after, so a drift of the machine over the run shows.
type refusedResult struct {
	Before   stats `json:"purchases_alone_before"`
	Beside   stats `json:"purchases_beside_refusals"`
	After    stats `json:"purchases_alone_after"`
	Refusals stats `json:"refused_redemptions"`
	// Ratio is purchases per second beside the refusals over the mean of
	// the two runs alone.
	Ratio float64 `json:"ratio"`
}

func refusedLoad(ctx context.Context, cl *client, cfg config, logf func(string, ...any)) (*refusedResult, error) {
	alone := func() (stats, error) {
		l, err := cl.timed(ctx, cfg.refusedTill, (*worker).purchase, cfg.warmup, cfg.duration)
		if err != nil {
			return stats{}, err
		}
		reportErrors(logf, "purchases", l)
		return l.stats(cfg.refusedTill), nil
	}
	r := &refusedResult{}
	var err error
	if r.Before, err = alone(); err != nil {
		return nil, err
	}
	type out struct {
		l   *latencies
		err error
	}
	refusals := make(chan out, 1)
	go func() {
		l, err := cl.timed(ctx, cfg.refusedConc, (*worker).refusedRedemption, cfg.warmup, cfg.duration)
		refusals <- out{l, err}
	}()
	beside, err := cl.timed(ctx, cfg.refusedTill, (*worker).purchase, cfg.warmup, cfg.duration)
	ref := <-refusals
	if err == nil {
		err = ref.err
	}
	if err != nil {
		return nil, err
	}
	reportErrors(logf, "purchases", beside)
	reportErrors(logf, "refused redemptions", ref.l)
	r.Beside, r.Refusals = beside.stats(cfg.refusedTill), ref.l.stats(cfg.refusedConc)
	if r.After, err = alone(); err != nil {
		return nil, err
	}
	if mean := (r.Before.PerSec + r.After.PerSec) / 2; mean > 0 {
		r.Ratio = r.Beside.PerSec / mean
	}
	return r, nil
}

// benchRules is the example program with every job scheduled half a year
// ahead. The scheduler runs a job once the test clock passes its time, and
// the expiry run moves the clock 61 days: so that the expiry measured is
// the run the tool asks for, and no other job (analytics, a backup) runs in
// the middle of the figures, no job falls due within the run.
//
// benchProgram is those rules as of the tool's start, the same text for the
// rules file and the seeded database, so the server keeps them.
var benchProgram = sync.OnceValues(func() ([]byte, error) { return benchRules(time.Now()) })

func benchRules(now time.Time) ([]byte, error) {
	day := now.AddDate(0, 6, 0)
	var jobs strings.Builder
	jobs.WriteString("jobs:\n")
	for _, name := range rules.JobNames() {
		fmt.Fprintf(&jobs, "  %s: \"0 0 %d %d *\"\n", name, day.Day(), int(day.Month()))
	}
	section := regexp.MustCompile(`(?m)^jobs:\n(?:  .*\n)+`)
	if !section.Match(rules.Example) {
		return nil, errors.New("the example rules have no jobs section to replace")
	}
	return section.ReplaceAll(rules.Example, []byte(jobs.String())), nil
}

// expireLoad moves the test clock past the seeded lots' expiry and runs
// expire-points through the API while purchases keep coming; the purchase
// figures cover the job's run only.
func expireLoad(ctx context.Context, cl *client, cfg config, logf func(string, ...any)) (*expireResult, error) {
	w := cl.newWorker(1)
	defer w.release()
	advance := fmt.Sprintf(`{"advance":"%s"}`, expireAhead+24*time.Hour)
	if err := w.do(fasthttp.MethodPost, "/v1/clock", []byte(advance), fasthttp.StatusOK); err != nil {
		return nil, fmt.Errorf("move the test clock: %w", err)
	}
	warm, stop := make(chan struct{}), make(chan struct{})
	done := make(chan *latencies, 1)
	go func() { done <- cl.load(cfg.expireConc, (*worker).purchase, warm, stop) }()
	select {
	case <-time.After(cfg.warmup):
	case <-ctx.Done():
	}
	close(warm)
	t := time.Now()
	err := w.do(fasthttp.MethodPost, "/v1/jobs/expire-points/run", nil, fasthttp.StatusOK)
	took := time.Since(t)
	close(stop)
	l := <-done
	// The purchases were counted from the job's start; what ran after it
	// ended is not part of the figure.
	l.elapsed = took
	if err != nil {
		return nil, fmt.Errorf("run expire-points: %w", err)
	}
	processed, err := jsonInt(w.resp.Body(), "processed")
	if err != nil {
		return nil, err
	}
	reportErrors(logf, "purchases", l)
	return &expireResult{Lots: processed, Seconds: took.Seconds(), Purchases: l.stats(cfg.expireConc)}, nil
}

// verifyDB runs `loyalty verify` on the stopped server's file.
func verifyDB(ctx context.Context, bin, dbPath string) (string, error) {
	b, err := exec.CommandContext(ctx, bin, "verify", "--db", dbPath).CombinedOutput()
	out := string(b)
	if err != nil {
		return "", fmt.Errorf("verify: %w\n%s", err, out)
	}
	return strings.TrimSpace(out), nil
}

// startupRun builds the big database and measures the server's start-up
// and memory on it, idle and after a burst of balance reads and purchases.
func startupRun(ctx context.Context, cfg config, bin, dir string, logf func(string, ...any)) (*startupResult, error) {
	r := &startupResult{Members: cfg.bigMembers, Entries: cfg.bigEntries}
	path := filepath.Join(dir, "startup.db")
	rulesPath := filepath.Join(dir, "rules.yaml")
	logf("building a database of %d members with %d ledger entries each", cfg.bigMembers, cfg.bigEntries)
	t := time.Now()
	last := time.Now()
	members, err := buildBigDB(ctx, path, cfg.bigMembers, cfg.bigEntries, 10_000, func(done int) {
		if time.Since(last) > 10*time.Second {
			logf("  %d members written", done)
			last = time.Now()
		}
	})
	if err != nil {
		return nil, err
	}
	r.BuildSec = time.Since(t).Seconds()
	if fi, err := os.Stat(path); err == nil {
		r.DBBytes = fi.Size()
	}
	logf("starting the server on it")
	srv, err := startServer(bin, path, rulesPath, filepath.Join(dir, "startup-server.log"), cfg.serverArgs)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	r.StartupSec = srv.started.Seconds()
	if r.MemStarted, err = readMem(srv.pid()); err != nil {
		return nil, err
	}
	cl := newClient(srv.addr, members, "startup")
	cl.pid = srv.pid()
	l, err := cl.timed(ctx, cfg.readConc, (*worker).balance, 0, cfg.duration)
	if err != nil {
		return nil, err
	}
	reportErrors(logf, "balance reads", l)
	r.LoadReads = l.stats(cfg.readConc)
	if r.MemLoaded, err = readMem(srv.pid()); err != nil {
		return nil, err
	}
	return r, srv.stop()
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotalMB = kb >> 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

func jsonString(body []byte, field string) (string, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return "", err
	}
	s, ok := m[field].(string)
	if !ok {
		return "", fmt.Errorf("no string %q in %s", field, body)
	}
	return s, nil
}

func jsonInt(body []byte, field string) (int64, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return 0, err
	}
	f, ok := m[field].(float64)
	if !ok {
		return 0, fmt.Errorf("no number %q in %s", field, body)
	}
	return int64(f), nil
}
