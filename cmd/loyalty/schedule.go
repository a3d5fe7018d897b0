package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

// Scheduler runs the engine's jobs on the cron schedules of the live rules,
// in the program's time zone, by the engine's clock: under the test clock a
// job falls due when the clock is moved past its time, and GET /v1/jobs
// shows next_run in that time, after last_run. On a database other servers
// share, it runs them only while it holds the jobs' lease (Lead).
type Scheduler struct {
	engine *engine.Engine
	log    *slog.Logger
	lead   *leadership
	ctx    context.Context // Start's, for catching up when the lease is taken
	// Tick is how often the scheduler reads the engine's clock, so a job
	// starts at most this late; zero is a second. Tests shorten it.
	Tick time.Duration

	mu       sync.Mutex
	stopped  bool
	jobs     map[string]*scheduledJob
	loop     sync.Once
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
}

// scheduledJob is a job's parsed schedule and the engine time it next
// falls due at.
type scheduledJob struct {
	spec cron.Schedule
	loc  *time.Location
	next time.Time
}

// NewScheduler returns a stopped Scheduler.
func NewScheduler(e *engine.Engine, log *slog.Logger) *Scheduler {
	return &Scheduler{engine: e, log: log, stop: make(chan struct{}), done: make(chan struct{})}
}

// Lead makes the scheduler share the jobs with other servers on db: it
// runs them only while it holds their lease, for ttl at a time.
func (s *Scheduler) Lead(db engine.Store, ttl time.Duration) {
	s.lead = newLeadership(db, ttl, s.log, s.gainedLead)
}

// Start schedules every job of prog and, in the background, runs at once
// each job that missed a run while the server was down; when the jobs are
// leased, it does so each time this server takes the lease.
func (s *Scheduler) Start(ctx context.Context, prog *rules.Program) error {
	if err := s.schedule(ctx, prog); err != nil {
		return err
	}
	if s.lead != nil {
		s.ctx = ctx
		s.lead.start()
		return nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.catchUp(ctx, prog)
	}()
	return nil
}

// schedule replaces the schedules with the jobs of prog, each next due at
// its first time after now; a job already running finishes undisturbed.
func (s *Scheduler) schedule(ctx context.Context, prog *rules.Program) error {
	now := s.engine.Now()
	jobs := map[string]*scheduledJob{}
	for _, j := range prog.Jobs {
		if ok, why := s.engine.Runs(j.Name); !ok {
			s.log.Info("job not scheduled", "job", j.Name, "why", why)
			continue
		}
		spec, err := cron.ParseStandard(j.Schedule)
		if err != nil {
			return fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Schedule, err)
		}
		jobs[j.Name] = &scheduledJob{spec: spec, loc: prog.Location, next: spec.Next(now.In(prog.Location))}
	}
	s.mu.Lock()
	s.jobs = jobs
	s.mu.Unlock()
	s.loop.Do(func() { go s.watch(ctx) })
	return nil
}

// watch reads the engine's clock every tick and starts the jobs that have
// fallen due, each once however many of its times passed (the engine
// processes everything due as of now), until ctx ends or Stop.
func (s *Scheduler) watch(ctx context.Context) {
	defer close(s.done)
	tick := s.Tick
	if tick <= 0 {
		tick = time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-t.C:
		}
		now := s.engine.Now()
		s.mu.Lock()
		var due []string
		for name, j := range s.jobs {
			if !now.Before(j.next) {
				due = append(due, name)
				j.next = j.spec.Next(now.In(j.loc))
			}
		}
		s.mu.Unlock()
		for _, name := range due {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.run(ctx, name)
			}()
		}
	}
}

// catchUp runs each job whose last run is older than its last scheduled
// time: the engine processes everything due as of now, so one run covers
// all the missed ones.
func (s *Scheduler) catchUp(ctx context.Context, prog *rules.Program) {
	now := s.engine.Now()
	for _, j := range prog.Jobs {
		sched, err := cron.ParseStandard(j.Schedule)
		if ok, _ := s.engine.Runs(j.Name); err != nil || !ok {
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

// gainedLead catches up, as at start, once this server holds the jobs'
// lease: the server that held it may have died before a run.
func (s *Scheduler) gainedLead(lctx context.Context) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	defer context.AfterFunc(lctx, cancel)()
	prog, _ := s.engine.Program()
	s.catchUp(ctx, prog)
}

func (s *Scheduler) run(ctx context.Context, name string) {
	if ctx.Err() != nil {
		return
	}
	if s.lead != nil {
		// Another server runs the jobs, or this one until it loses the
		// lease: the job stops between two chunks then.
		lctx, ok := s.lead.current()
		if !ok {
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(lctx, cancel)()
	}
	s.wg.Add(1)
	defer s.wg.Done()
	if _, err := s.engine.RunJob(ctx, name); err != nil && engine.ErrorCode(err) != engine.ECONFLICT {
		s.log.Error("job", "job", name, "err", err)
	}
}

// NextRun tells when, in engine time, a job is next due.
func (s *Scheduler) NextRun(name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[name]
	if !ok {
		return time.Time{}, false
	}
	return j.next, true
}

// Stop stops scheduling, gives up the jobs' lease and waits for running
// jobs.
func (s *Scheduler) Stop() {
	if s.lead != nil {
		s.lead.close()
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	started := true
	s.loop.Do(func() { started = false })
	if started {
		s.stopOnce.Do(func() { close(s.stop) })
		<-s.done
	}
	s.wg.Wait()
}
