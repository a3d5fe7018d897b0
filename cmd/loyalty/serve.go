package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
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
	TestClock      bool
	LogFormat      string
	// BatchSize caps the writes one commit takes (store.Options
	// MaxBatchSize); zero takes the store's default.
	BatchSize int
}

// Main is a running server: the database, the engine, the scheduler and
// the HTTP listener. Tests build one on a temp file and :0.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Clock overrides the wall clock, for tests.
	Clock engine.Clock

	DB        *store.DB
	Engine    *engine.Engine
	Server    *lhttp.Server
	Scheduler *Scheduler
	ln        net.Listener

	serveErr  chan error
	stopWatch func()
	jobsCtx   context.Context
	stopJobs  context.CancelFunc
	jobsWG    sync.WaitGroup
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cfg Config
	fs.StringVar(&cfg.Addr, "addr", envDefault("LOYALTY_ADDR", "127.0.0.1:8080"), "listen address (env LOYALTY_ADDR)")
	fs.StringVar(&cfg.DBPath, "db", envDefault("LOYALTY_DB", "loyalty.db"), "bbolt database file (env LOYALTY_DB)")
	fs.StringVar(&cfg.RulesPath, "rules", envDefault("LOYALTY_RULES", ""), "rules file (env LOYALTY_RULES; default rules.yaml, created from the example)")
	fs.StringVar(&cfg.KeysPath, "keys", envDefault("LOYALTY_KEYS", ""), "API keys file, a YAML list of {name, key, role} (env LOYALTY_KEYS); without it the API is open on loopback only")
	testClock := envDefault("LOYALTY_TEST_CLOCK", "false")
	fs.BoolVar(&cfg.TestClock, "test-clock", testClock == "1" || testClock == "true", "allow POST /v1/clock to move time (env LOYALTY_TEST_CLOCK)")
	fs.StringVar(&cfg.LogFormat, "log-format", envDefault("LOYALTY_LOG_FORMAT", "text"), "log format: text or json (env LOYALTY_LOG_FORMAT)")
	fs.IntVar(&cfg.BatchSize, "batch-size", 0, "most writes one commit takes (default 1000; env LOYALTY_BATCH_SIZE)")
	if err := envFlags(fs, map[string]string{"batch-size": "LOYALTY_BATCH_SIZE"}); err != nil {
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
	logger, err := newLogger(cfg.LogFormat, stderr)
	if err != nil {
		return err
	}
	m := &Main{Config: cfg, Logger: logger}
	if err := m.Open(); err != nil {
		m.Close()
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err = <-m.serveErr:
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
	var keys *lhttp.Keys
	if cfg.KeysPath != "" {
		var err error
		if keys, err = lhttp.LoadKeys(cfg.KeysPath); err != nil {
			return err
		}
	} else {
		if err := checkLoopback(cfg.Addr); err != nil {
			return err
		}
		m.Logger.Warn("no --keys file: the API is open to anyone on this machine, so it listens on loopback only")
	}
	dbOpts := store.DefaultOptions()
	if cfg.BatchSize > 0 {
		dbOpts.MaxBatchSize = cfg.BatchSize
	}
	var err error
	if m.DB, err = store.Open(cfg.DBPath, dbOpts); err != nil {
		return err
	}
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
	m.Engine = engine.New(m.DB, engine.Options{Clock: clock, Logger: m.Logger, Hooks: metrics.Hooks()})
	prog, err := m.startRules(context.Background())
	if err != nil {
		return err
	}
	m.jobsCtx, m.stopJobs = context.WithCancel(context.Background())
	m.Scheduler = NewScheduler(m.Engine, m.Logger)
	if err := m.Scheduler.Start(m.jobsCtx, prog); err != nil {
		return err
	}
	m.Engine.OnRulesChange(func(p *rules.Program) {
		if err := m.Scheduler.schedule(m.jobsCtx, p); err != nil {
			m.Logger.Error("rescheduling jobs", "err", err)
		}
	})
	if m.stopWatch, err = watchRules(m.jobsCtx, cfg.RulesPath, m.Engine, m.Logger); err != nil {
		return err
	}
	m.Server = lhttp.NewServer(lhttp.Config{
		Engine: m.Engine, Logger: m.Logger, TestClock: tc, NextRun: m.Scheduler.NextRun, Keys: keys,
		SaveRules: saveRules(cfg.RulesPath),
		Metrics:   metrics, Backup: m.DB.WriteTo,
	})
	if m.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return err
	}
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- m.Server.Serve(m.ln) }()
	m.Logger.Info("listening", "addr", "http://"+m.ln.Addr().String(), "db", cfg.DBPath, "rules", cfg.RulesPath)
	return nil
}

// Addr is the address the server listens on, useful with :0.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Close stops accepting requests, lets those in flight and the running job
// chunk finish, and closes the database so the next start needs no
// recovery.
func (m *Main) Close() error {
	var errs []error
	if m.Server != nil && m.ln != nil {
		errs = append(errs, m.Server.Shutdown(10*time.Second))
	}
	if m.stopJobs != nil {
		m.stopJobs()
	}
	if m.stopWatch != nil {
		m.stopWatch()
	}
	if m.Engine != nil {
		m.Engine.Wait()
	}
	if m.Scheduler != nil {
		m.Scheduler.Stop()
	}
	if m.DB != nil {
		errs = append(errs, m.DB.Close())
	}
	return errors.Join(errs...)
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
	return src, err
}

// checkLoopback refuses to expose the API beyond this machine while it has
// no API keys.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if _, err := strconv.Atoi(port); err != nil && port != "" {
		return fmt.Errorf("address %q: bad port", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("without --keys the API is open, so it only listens on a loopback address such as 127.0.0.1, not %q", addr)
}
