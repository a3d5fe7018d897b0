package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/internal/version"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
	"github.com/loyaltyhq/loyalty/store/postgres"
	"github.com/loyaltyhq/loyalty/webhook"
)

// Config is what serve needs to run.
type Config struct {
	Addr      string
	DBPath    string
	RulesPath string
	// RulesDefaulted is set when the rules path was not given, in which case
	// a missing file is created from the shipped example.
	RulesDefaulted bool
	KeysPath       string
	// CORSOrigins lists the web origins whose pages may call the API, comma
	// separated; it needs KeysPath.
	CORSOrigins string
	TestClock   bool
	LogFormat   string
	// BatchSize caps the writes one commit takes (store.Options
	// MaxBatchSize); zero takes the store's default.
	BatchSize int
	// RequestTimeout bounds a long read (diff, simulate, an analytics
	// page); zero takes the http package's default.
	RequestTimeout time.Duration
	// TLSCert and TLSKey, both or neither, make serve speak HTTPS.
	TLSCert, TLSKey string
	// BackupDir is where the backup job writes its copies; empty is
	// "backups" beside the database file. BackupKeep is how many it keeps;
	// zero keeps defaultBackupKeep.
	BackupDir  string
	BackupKeep int
	// On a database other servers share (PostgreSQL): JobLease is how
	// long the scheduled jobs' lease lasts without renewal, and RulesPoll
	// how often the server looks for rules another published (cluster.go);
	// zero takes the defaults.
	JobLease  time.Duration
	RulesPoll time.Duration
	// WebhookTimeout bounds each delivery attempt; WebhookRetries, the
	// waits before each retry, comma separated, replaces the default
	// schedule. Zero and empty take the webhook package's defaults.
	WebhookTimeout time.Duration
	WebhookRetries string
}

// defaultBackupKeep is a week of nightly copies.
const defaultBackupKeep = 7

// backupDir is where the backup job writes.
func (c Config) backupDir() string {
	if c.BackupDir != "" {
		return c.BackupDir
	}
	return filepath.Join(filepath.Dir(c.DBPath), "backups")
}

// Main is a running server: the database, the engine, the scheduler and
// the HTTP listener. Tests build one on a temp file and :0.
type Main struct {
	Config Config
	Logger *slog.Logger
	// AccessLogger writes the access lines; nil means Logger.
	AccessLogger *slog.Logger
	// Clock overrides the wall clock, for tests.
	Clock engine.Clock
	// JobTick is how often the scheduler reads the clock (zero: a second);
	// tests that move the clock shorten it.
	JobTick time.Duration

	DB        database
	Engine    *engine.Engine
	Server    *lhttp.Server
	Scheduler *Scheduler
	ln        net.Listener
	keys      *lhttp.Keys
	cert      *certificate

	serveErr      chan error
	stopWatch     func()
	stopKeysWatch func()
	// waitFollow waits for the rules follower of a shared database.
	waitFollow func()
	// webhooksDone is closed when the webhook worker has stopped.
	webhooksDone chan struct{}
	jobsCtx      context.Context
	stopJobs     context.CancelFunc
}

// serveFlags defines serve's flags on a new FlagSet, every one also read
// from its environment variable (envFlags). The top-level usage and the
// README's table are checked against this set, so a flag added here is a
// flag documented there.
func serveFlags(cfg *Config, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen `address`")
	fs.StringVar(&cfg.DBPath, "db", "loyalty.db", "bbolt database `file`, or a postgres:// URL")
	fs.StringVar(&cfg.RulesPath, "rules", "", "rules `file` (default rules.yaml, created from the example; on PostgreSQL the database keeps the rules and a file is read and watched only when given)")
	fs.StringVar(&cfg.KeysPath, "keys", "", "API keys `file`, a YAML list of {name, key, role}; without it the API is open on loopback only")
	fs.StringVar(&cfg.CORSOrigins, "cors-origins", "", "web `origins` whose pages may call the API, comma separated, like https://app.example.com; needs --keys")
	fs.Var((*boolFlag)(&cfg.TestClock), "test-clock", "allow POST /v1/clock to move time")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log `format`: text or json")
	fs.IntVar(&cfg.BatchSize, "batch-size", store.DefaultOptions().MaxBatchSize, "most `writes` one commit takes")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", lhttp.DefaultRequestTimeout, "longest a rules diff, simulation or analytics page may run before it is stopped")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM, the chain after the certificate); needs --tls-key")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "the private key `file` (PEM) of --tls-cert")
	fs.StringVar(&cfg.BackupDir, "backup-dir", "", "`directory` the backup job writes its verified copies to (default: backups beside --db)")
	fs.IntVar(&cfg.BackupKeep, "backup-keep", defaultBackupKeep, "how many of the backup job's `copies` to keep; older ones are removed")
	fs.DurationVar(&cfg.JobLease, "job-lease", DefaultJobLease, "on PostgreSQL: how long the server that runs the scheduled jobs keeps them without renewing its lease, so how soon another takes over when it dies")
	fs.DurationVar(&cfg.RulesPoll, "rules-poll", DefaultRulesPoll, "on PostgreSQL: how often the server looks for rules another server published")
	fs.DurationVar(&cfg.WebhookTimeout, "webhook-timeout", webhook.DefaultTimeout, "longest a webhook endpoint may take to answer a delivery before the attempt fails")
	fs.StringVar(&cfg.WebhookRetries, "webhook-retries", defaultRetries, "waits before each retry of a failed webhook delivery, comma separated `durations`")
	return fs
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg Config
	fs := serveFlags(&cfg, stderr)
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if cfg.RulesPath == "" {
		cfg.RulesPath, cfg.RulesDefaulted = "rules.yaml", true
	}
	if cfg.BackupKeep < 1 {
		fmt.Fprintf(stderr, "serve: --backup-keep %d: keep at least one copy\n", cfg.BackupKeep)
		return errUsage
	}
	logs := newLogBuffer(stderr)
	defer logs.Close()
	logger, err := newLogger(cfg.LogFormat, logs.Direct())
	if err != nil {
		return err
	}
	access, _ := newLogger(cfg.LogFormat, logs.Held()) // the format was checked just above
	// SIGHUP reloads the keys file and the TLS certificate; caught from
	// before Open, so that one sent during start does not end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	m := &Main{Config: cfg, Logger: logger, AccessLogger: access}
	if err := m.Open(); err != nil {
		m.Close()
		return err
	}
	for running := true; running; {
		select {
		case <-ctx.Done():
			logger.Info("shutting down")
			running = false
		case err = <-m.serveErr:
			running = false
		case <-hup:
			_ = m.Reload() // logged; what did not load keeps what was loaded
		}
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// Open opens the database, loads the rules, starts the scheduler and
// listens. It returns once the server accepts connections.
func (m *Main) Open() error {
	if m.Logger == nil {
		m.Logger = discardLogger()
	}
	cfg := m.Config
	origins, err := lhttp.ParseOrigins(cfg.CORSOrigins)
	if err != nil {
		return fmt.Errorf("--cors-origins: %w", err)
	}
	if len(origins) > 0 && cfg.KeysPath == "" {
		return errors.New("--cors-origins needs --keys: without keys the API refuses every page not served from this machine")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both, or neither to serve plain HTTP (behind a TLS proxy)")
	}
	if cfg.TLSCert != "" {
		if m.cert, err = loadCertificate(cfg.TLSCert, cfg.TLSKey); err != nil {
			return err
		}
	}
	if cfg.KeysPath != "" {
		if m.keys, err = lhttp.LoadKeys(cfg.KeysPath); err != nil {
			return err
		}
		if m.cert == nil && !isLoopback(cfg.Addr) {
			m.Logger.Warn("API keys travel in clear over plain HTTP on a non-loopback address: serve HTTPS with --tls-cert and --tls-key, or listen on 127.0.0.1 behind a TLS proxy (docs/OPERATIONS.md)", "addr", cfg.Addr)
		}
	} else {
		if err := checkLoopback(cfg.Addr); err != nil {
			return err
		}
		m.Logger.Warn("no --keys file: the API is open to anyone on this machine, so it listens on loopback only and refuses requests addressed to other hosts or sent by other sites' pages")
	}
	// Bind before anything is written: a port in use must not leave a new
	// database and the example rules behind.
	if m.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return fmt.Errorf("--addr %s: %w (is another server listening there? choose another address with --addr)", cfg.Addr, err)
	}
	if m.cert != nil {
		m.ln = tls.NewListener(m.ln, m.cert.config())
	}
	var migrateStart time.Time
	db, err := openDatabase(context.Background(), cfg.DBPath, dbOptions{batchSize: cfg.BatchSize, migrating: func(from, to uint64) {
		migrateStart = time.Now()
		m.Logger.Info("moving the database to the schema of this version before serving; a large file takes minutes", "db", cfg.DBPath, "from", from, "to", to)
	}})
	if err != nil {
		return err
	}
	if !migrateStart.IsZero() {
		m.Logger.Info("database moved", "db", cfg.DBPath, "took", time.Since(migrateStart).Round(time.Millisecond).String())
	}
	m.DB = db
	clock := m.Clock
	if clock == nil {
		clock = engine.SystemClock{}
	}
	var tc *engine.TestClock
	if cfg.TestClock {
		tc = engine.NewTestClock(clock)
		clock = tc
		m.Logger.Warn("test clock enabled: POST /v1/clock can move the engine's time")
	}
	metrics := lhttp.NewMetrics(m.DB.Size)
	opts := engine.Options{Clock: clock, Logger: m.Logger, Hooks: metrics.Hooks()}
	switch db := m.DB.(type) {
	case *store.DB:
		keep := cfg.BackupKeep
		if keep == 0 {
			keep = defaultBackupKeep
		}
		opts.Backup = backupJob(db, cfg.backupDir(), keep)
	case *postgres.DB:
		opts.NoBackup = pgBackupAdvice
	}
	m.Engine = engine.New(m.DB, opts)
	metrics.WatchJobs(m.Engine.LastSuccesses)
	if err := m.Engine.RestoreClock(context.Background()); err != nil {
		return err
	}
	prog, err := m.startRules(context.Background())
	if err != nil {
		return err
	}
	m.jobsCtx, m.stopJobs = context.WithCancel(context.Background())
	m.Scheduler = NewScheduler(m.Engine, m.Logger)
	m.Scheduler.Tick = m.JobTick
	if m.sharedDB() {
		m.Scheduler.Lead(m.DB, cmp.Or(cfg.JobLease, DefaultJobLease))
	}
	if err := m.Scheduler.Start(m.jobsCtx, prog); err != nil {
		return err
	}
	m.Engine.OnRulesChange(func(p *rules.Program) {
		if err := m.Scheduler.schedule(m.jobsCtx, p); err != nil {
			m.Logger.Error("rescheduling jobs", "err", err)
		}
	})
	var save func([]byte) error
	if m.rulesFileWatched() {
		save = saveRules(cfg.RulesPath)
		if m.stopWatch, err = watchRules(m.jobsCtx, cfg.RulesPath, m.Engine, m.Logger); err != nil {
			return err
		}
	}
	if m.sharedDB() {
		m.waitFollow = followRules(m.jobsCtx, m.Engine, cmp.Or(cfg.RulesPoll, DefaultRulesPoll), save, m.Logger)
	}
	if m.keys != nil {
		if m.stopKeysWatch, err = watchFile(m.jobsCtx, cfg.KeysPath, m.Logger, func() { _ = m.reloadKeys("the file changed") }); err != nil {
			return err
		}
	}
	httpCfg := lhttp.Config{
		Engine: m.Engine, Logger: m.Logger, AccessLogger: m.AccessLogger, TestClock: tc, NextRun: m.Scheduler.NextRun, Keys: m.keys,
		CORSOrigins: origins, SaveRules: save, Metrics: metrics,
		RequestTimeout: cfg.RequestTimeout,
	}
	switch db := m.DB.(type) {
	case *store.DB:
		httpCfg.Backup = db.WriteTo
	case *postgres.DB:
		httpCfg.NoBackup, httpCfg.Health = pgBackupAdvice, db.Ping
	}
	m.Server = lhttp.NewServer(httpCfg)
	schedule, err := parseRetries(cfg.WebhookRetries)
	if err != nil {
		return err
	}
	// A bbolt file has one server at a time: it needs no leases, and a
	// restarted server resumes at once rather than wait for a killed
	// one's to run out.
	hooks := webhook.New(m.DB, webhook.Options{
		Holder: holderName(), Exclusive: !m.sharedDB(), Timeout: cfg.WebhookTimeout, Schedule: schedule, Log: m.Logger,
		Attempted: metrics.WebhookAttempted,
	})
	metrics.WatchWebhooks(func(ctx context.Context) ([]engine.WebhookQueue, error) {
		return m.Engine.WebhookQueues(ctx, webhook.DefaultMaxPending+1)
	})
	m.webhooksDone = make(chan struct{})
	go func() {
		defer close(m.webhooksDone)
		hooks.Run(m.jobsCtx)
	}()
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- m.Server.Serve(m.ln) }()
	scheme := "http://"
	if m.cert != nil {
		scheme = "https://"
	}
	rulesFrom := cfg.RulesPath
	if !m.rulesFileWatched() {
		rulesFrom = "the database"
	}
	m.Logger.Info("listening", "addr", scheme+m.ln.Addr().String(), "db", describeDB(cfg.DBPath), "rules", rulesFrom, "version", version.Get().String())
	return nil
}

// Addr is the address the server listens on, useful with :0.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// shutdownBound is how long Close may take, whatever is running.
const shutdownBound = 10 * time.Second

// Close stops the file watcher and the jobs (between two chunks), stops
// accepting requests, stops long reads at once, lets the other requests in
// flight finish and closes the database so the next start needs no
// recovery. It returns within shutdownBound: if something still holds the
// database then (a store call that does not look at its context), it
// returns an error and leaves the file open, which loses nothing, since
// every acknowledged write is on disk already.
func (m *Main) Close() error {
	deadline := time.Now().Add(shutdownBound)
	var errs []error
	if m.stopJobs != nil {
		m.stopJobs()
	}
	if m.stopWatch != nil {
		m.stopWatch()
	}
	if m.stopKeysWatch != nil {
		m.stopKeysWatch()
	}
	if m.waitFollow != nil {
		m.waitFollow()
	}
	switch {
	case m.Server != nil && m.ln != nil:
		if err := m.Server.Shutdown(time.Until(deadline)); err != nil {
			errs = append(errs, fmt.Errorf("stop serving: %w", err))
		}
	case m.ln != nil:
		m.ln.Close() // Open failed after binding
	}
	closed := make(chan error, 1)
	go func() {
		if m.webhooksDone != nil {
			<-m.webhooksDone
		}
		if m.Engine != nil {
			m.Engine.Wait()
		}
		if m.Scheduler != nil {
			m.Scheduler.Stop()
		}
		if m.DB != nil {
			closed <- m.DB.Close()
			return
		}
		closed <- nil
	}()
	select {
	case err := <-closed:
		errs = append(errs, err)
	case <-time.After(time.Until(deadline)):
		errs = append(errs, fmt.Errorf("work still running %s after shutdown began; exiting without closing the database (every acknowledged write is on disk)", shutdownBound))
	}
	return errors.Join(errs...)
}

// defaultRetries is webhook.DefaultSchedule as --webhook-retries spells it.
const defaultRetries = "5s,5m,30m,2h,5h,10h,14h,20h,24h"

// parseRetries reads --webhook-retries: empty is the default schedule.
func parseRetries(s string) ([]time.Duration, error) {
	if s == "" {
		return nil, nil
	}
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--webhook-retries: %q is not a positive duration like 5s or 2h", part)
		}
		out = append(out, d)
	}
	return out, nil
}

// readRules reads the rules file, writing the shipped example first when
// the path was defaulted and the file does not exist.
func readRules(path string, defaulted bool, log *slog.Logger) ([]byte, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && defaulted {
		if err := os.WriteFile(path, rules.Example, 0o644); err != nil {
			return nil, fmt.Errorf("write example rules: %w", err)
		}
		log.Info("wrote the example rules; edit them to change the program", "file", path)
		return rules.Example, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("--rules %s does not exist and the database has no rules yet: write a rules file there (rules/example.yaml is one), or leave --rules out to start from the example, written as rules.yaml in the working directory", path)
	}
	return src, err
}

// checkLoopback refuses to expose the API beyond this machine while it has
// no API keys.
func checkLoopback(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if _, err := strconv.Atoi(port); err != nil && port != "" {
		return fmt.Errorf("address %q: bad port", addr)
	}
	if !isLoopback(addr) {
		return fmt.Errorf("without --keys the API is open, so it only listens on a loopback address such as 127.0.0.1, not %q", addr)
	}
	return nil
}

// isLoopback tells whether addr listens on this machine only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
