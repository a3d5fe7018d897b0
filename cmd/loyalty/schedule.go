package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

// Scheduler runs the engine's jobs on the cron schedules of the live rules,
// in the program's time zone.
type Scheduler struct {
	engine *engine.Engine
	log    *slog.Logger

	mu      sync.Mutex
	cron    *cron.Cron
	entries map[string]cron.EntryID
	wg      sync.WaitGroup
}

// NewScheduler returns a stopped Scheduler.
func NewScheduler(e *engine.Engine, log *slog.Logger) *Scheduler {
	return &Scheduler{engine: e, log: log}
}

// Start schedules every job of prog and, in the background, runs at once
// each job that missed a run while the server was down.
func (s *Scheduler) Start(ctx context.Context, prog *rules.Program) error {
	if err := s.schedule(ctx, prog); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.catchUp(ctx, prog)
	}()
	return nil
}

// schedule replaces the cron schedule with the jobs of prog; a job already
// running finishes undisturbed.
func (s *Scheduler) schedule(ctx context.Context, prog *rules.Program) error {
	c := cron.New(cron.WithLocation(prog.Location))
	entries := map[string]cron.EntryID{}
	for _, j := range prog.Jobs {
		name := j.Name
		id, err := c.AddFunc(j.Schedule, func() { s.run(ctx, name) })
		if err != nil {
			return err
		}
		entries[name] = id
	}
	s.mu.Lock()
	old := s.cron
	s.cron, s.entries = c, entries
	s.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	c.Start()
	return nil
}

// catchUp runs each job whose last run is older than its last scheduled
// time: the engine processes everything due as of now, so one run covers
// all the missed ones.
func (s *Scheduler) catchUp(ctx context.Context, prog *rules.Program) {
	now := s.engine.Now()
	for _, j := range prog.Jobs {
		sched, err := cron.ParseStandard(j.Schedule)
		if err != nil {
			continue
		}
		last, err := s.engine.LastJobRun(ctx, j.Name)
		if err != nil {
			s.log.Error("catch-up: read last run", "job", j.Name, "err", err)
			continue
		}
		if last != nil && sched.Next(last.StartedAt.In(prog.Location)).After(now) {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if last == nil {
			s.log.Info("first run of a job on this database", "job", j.Name)
		} else {
			s.log.Info("catching up on a missed run", "job", j.Name, "last_run", last.StartedAt)
		}
		s.run(ctx, j.Name)
	}
}

func (s *Scheduler) run(ctx context.Context, name string) {
	if ctx.Err() != nil {
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	if _, err := s.engine.RunJob(ctx, name); err != nil && engine.ErrorCode(err) != engine.ECONFLICT {
		s.log.Error("job", "job", name, "err", err)
	}
}

// NextRun tells when a job is next scheduled.
func (s *Scheduler) NextRun(name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.entries[name]
	if !ok || s.cron == nil {
		return time.Time{}, false
	}
	e := s.cron.Entry(id)
	if !e.Valid() || e.Next.IsZero() {
		return time.Time{}, false
	}
	return e.Next, true
}

// Stop stops scheduling and waits for running jobs.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	c := s.cron
	s.mu.Unlock()
	if c != nil {
		<-c.Stop().Done()
	}
	s.wg.Wait()
}
