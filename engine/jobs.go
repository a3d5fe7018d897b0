package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// Job names, from the one list in the rules package.
const (
	JobExpirePoints   = rules.JobExpirePoints
	JobEvaluateTiers  = rules.JobEvaluateTiers
	JobNotifyExpiring = rules.JobNotifyExpiring
	JobBirthdayBonus  = rules.JobBirthdayBonus
	JobAnalytics      = rules.JobAnalytics
	JobExpireCoupons  = rules.JobExpireCoupons
	JobBackup         = rules.JobBackup
	JobPruneEvents    = rules.JobPruneEvents
)

// JobRunView is a job run as the API shows it.
type JobRunView struct {
	Name       string    `json:"name"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Processed  int64     `json:"processed"`
	Error      string    `json:"error,omitempty"`
}

// JobInfo is a job, its schedule and its last run.
type JobInfo struct {
	Name     string      `json:"name"`
	Schedule string      `json:"schedule"`
	LastRun  *JobRunView `json:"last_run"`
	NextRun  *time.Time  `json:"next_run,omitempty"`
}

func (r *JobRun) view() *JobRunView {
	return &JobRunView{Name: r.Name, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Processed: r.Processed, Error: r.Error}
}

// Jobs lists the jobs with their schedules from the live rules and their
// last runs.
func (e *Engine) Jobs(ctx context.Context) ([]JobInfo, error) {
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	names := rules.JobNames()
	out := make([]JobInfo, 0, len(names))
	err = e.store.View(ctx, func(tx Tx) error {
		for _, name := range names {
			j, _ := live.prog.Job(name)
			info := JobInfo{Name: name, Schedule: j.Schedule}
			runs, err := tx.JobRuns(name, 1)
			if err != nil {
				return err
			}
			if len(runs) > 0 {
				info.LastRun = runs[0].view()
			}
			out = append(out, info)
		}
		return nil
	})
	return out, err
}

// LastJobRun returns the newest run of a job, or nil.
func (e *Engine) LastJobRun(ctx context.Context, name string) (*JobRun, error) {
	var last *JobRun
	err := e.store.View(ctx, func(tx Tx) error {
		runs, err := tx.JobRuns(name, 1)
		if len(runs) > 0 {
			last = runs[0]
		}
		return err
	})
	return last, err
}

// LastSuccesses tells, for each job, when its newest successful run among
// its last 50 finished; a job without one is left out. Monitoring reads it
// to tell a job that stopped succeeding (a backup older than a day).
func (e *Engine) LastSuccesses(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := e.store.View(ctx, func(tx Tx) error {
		for _, name := range rules.JobNames() {
			runs, err := tx.JobRuns(name, 50)
			if err != nil {
				return err
			}
			for _, r := range runs {
				if r.Error == "" {
					out[name] = r.FinishedAt
					break
				}
			}
		}
		return nil
	})
	return out, err
}

// RunJob runs a job now over everything due as of the engine's time. A job
// never overlaps itself: a second caller gets a conflict. The run is
// recorded whether it succeeds or not.
func (e *Engine) RunJob(ctx context.Context, name string) (*JobRunView, error) {
	run, ok := e.jobTable()[name]
	if !ok {
		return nil, Errorf(ENOTFOUND, "no job named %q", name)
	}
	if ok, why := e.Runs(name); !ok {
		// Not a failed run: this store's backups are not the engine's job,
		// and a run recorded as failed every night would page someone.
		return nil, Errorf(EUNPROCESSABLE, "the %s job does not run here: %s", name, why)
	}
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	e.jobsMu.Lock()
	if e.running[name] {
		e.jobsMu.Unlock()
		return nil, Errorf(ECONFLICT, "job %q is already running", name)
	}
	e.running[name] = true
	e.jobsMu.Unlock()
	defer func() {
		e.jobsMu.Lock()
		delete(e.running, name)
		e.jobsMu.Unlock()
	}()

	rec := &JobRun{Name: name, StartedAt: e.Now()}
	processed, runErr := run(ctx, live, rec.StartedAt)
	rec.Processed, rec.FinishedAt = processed, e.Now()
	if runErr != nil {
		rec.Error = runErr.Error()
		e.log.Error("job failed", "job", name, "processed", processed, "err", runErr)
	} else {
		e.log.Info("job done", "job", name, "processed", processed, "took", rec.FinishedAt.Sub(rec.StartedAt))
	}
	if err := e.store.Update(ctx, func(tx Tx) error { return tx.PutJobRun(rec) }); err != nil {
		return nil, fmt.Errorf("record run of %s: %w", name, err)
	}
	e.hooks.jobRun(rec)
	return rec.view(), nil
}

// jobTable maps every job the rules package names to what runs it.
func (e *Engine) jobTable() map[string]func(context.Context, *liveRules, time.Time) (int64, error) {
	return map[string]func(context.Context, *liveRules, time.Time) (int64, error){
		JobExpirePoints:   e.expirePoints,
		JobEvaluateTiers:  e.evaluateTiers,
		JobNotifyExpiring: e.notifyExpiring,
		JobBirthdayBonus:  e.birthdayBonus,
		JobAnalytics:      e.analytics,
		JobExpireCoupons:  e.expireCoupons,
		JobBackup:         e.backupJob,
		JobPruneEvents:    e.pruneEvents,
	}
}

// Runs tells whether this engine runs a job, and why not: the backup job
// needs Options.Backup, which a store with its own backups (PostgreSQL)
// does not give. A scheduler leaves such a job out.
func (e *Engine) Runs(name string) (bool, string) {
	if name != JobBackup || e.backup != nil {
		return true, ""
	}
	if e.noBackup != "" {
		return false, e.noBackup
	}
	return false, "no backup was configured"
}

// backupJob copies the store with Options.Backup; processed is the size of
// the copy in bytes.
func (e *Engine) backupJob(ctx context.Context, _ *liveRules, now time.Time) (int64, error) {
	return e.backup(ctx, now)
}

// expirePoints writes off every lot whose expiry has passed, one ledger
// entry per member and chunk, reading only due lots from the expiry index.
func (e *Engine) expirePoints(ctx context.Context, live *liveRules, now time.Time) (int64, error) {
	return e.drainDue(ctx, now, "expire lots", func(tx Tx, ids []string) (int, error) {
		lots, err := tx.DueLots(now, nil, e.jobChunk)
		if err != nil {
			return 0, err
		}
		byMember := map[string][]*Lot{}
		var order []string
		for _, l := range lots {
			if _, seen := byMember[l.MemberID]; !seen {
				order = append(order, l.MemberID)
			}
			byMember[l.MemberID] = append(byMember[l.MemberID], l)
		}
		w := writer{tx: tx, now: now, live: live}
		for i, id := range order {
			if err := expireLots(w, id, byMember[id], ids[i]); err != nil {
				return 0, err
			}
		}
		return len(lots), nil
	})
}

func expireLots(w writer, memberID string, lots []*Lot, entryID string) error {
	m, err := getMember(w.tx, memberID)
	if err != nil {
		return err
	}
	var total int64
	for _, l := range lots {
		total += l.Remaining
		l.Remaining = 0
		if err := w.tx.PutLot(l); err != nil {
			return err
		}
	}
	if total == 0 {
		return nil
	}
	m.Points -= total
	note := fmt.Sprintf("%d points expired", total)
	if err := w.appendEntry(m, entryID, LedgerExpire, -total, "", note); err != nil {
		return err
	}
	if err := w.tx.PutMember(m); err != nil {
		return err
	}
	bal, err := balanceSummary(w.tx, m, w.now)
	if err != nil {
		return err
	}
	return w.emit(EventPointsExpired, m.ID, expiredEventData{MemberID: m.ID, Points: total, Balance: bal})
}

// evaluateTiers applies the tier policy to every member: demotion after
// grace, and promotion of anyone the rules now qualify.
func (e *Engine) evaluateTiers(ctx context.Context, live *liveRules, now time.Time) (int64, error) {
	seen, _, err := e.moveTiers(ctx, live, now, false)
	if err != nil {
		return seen, fmt.Errorf("evaluate tiers: %w", err)
	}
	return seen, nil
}

// notifyExpiring records one event per member and expiry date for points
// expiring within the notice period, and one per coupon expiring within
// it; a marker keeps each from being sent twice.
func (e *Engine) notifyExpiring(ctx context.Context, live *liveRules, now time.Time) (int64, error) {
	prog := live.prog
	if prog.Points.Expiry.NotifyBefore.IsZero() {
		return 0, nil
	}
	until := prog.Points.Expiry.NotifyBefore.AddTo(now)
	var processed int64
	var after *Lot
	for {
		if err := ctx.Err(); err != nil {
			return processed, err
		}
		type notice struct {
			member, on string
			points     int64
		}
		var notices []notice
		var n int
		err := e.store.View(ctx, func(tx Tx) error {
			lots, err := tx.DueLots(until, after, e.jobChunk)
			if err != nil {
				return err
			}
			n = len(lots)
			idx := map[string]int{}
			for _, l := range lots {
				after = l
				if expired(l, now) {
					continue
				}
				on := l.ExpiresAt.Add(-time.Nanosecond).In(prog.Location).Format(dateLayout)
				key := l.MemberID + "|" + on
				if i, ok := idx[key]; ok {
					notices[i].points += l.Remaining
					continue
				}
				idx[key] = len(notices)
				notices = append(notices, notice{member: l.MemberID, on: on, points: l.Remaining})
			}
			return nil
		})
		if err != nil {
			return processed, fmt.Errorf("find expiring points: %w", err)
		}
		if len(notices) > 0 {
			err = e.store.Update(ctx, func(tx Tx) error {
				for _, nt := range notices {
					key := "notice:" + nt.member + ":" + nt.on
					done, err := tx.Marked(key)
					if err != nil {
						return err
					}
					if done {
						continue
					}
					err = emit(tx, now, EventPointsExpiring, nt.member, expiringData{MemberID: nt.member, Points: nt.points, ExpiresOn: nt.on})
					if err != nil {
						return err
					}
					if err := tx.Mark(key); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return processed, fmt.Errorf("record notices: %w", err)
			}
		}
		processed += int64(len(notices))
		if n < e.jobChunk {
			coupons, err := e.notifyCoupons(ctx, live, now, until)
			return processed + coupons, err
		}
	}
}
