package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// memberRef is a seeded member as the load addresses it.
type memberRef struct {
	id, externalID string
}

// bulkOptions writes without fsync: seeding prepares a file, and a crash
// during it only means running the bench again.
func bulkOptions() store.Options {
	opts := store.DefaultOptions()
	opts.NoSync = true
	return opts
}

// openBulk opens the file at path for seeding, with an engine running the
// tool's rules (benchProgram).
func openBulk(path string) (*store.DB, *rules.Program, *engine.Engine, error) {
	src, err := benchProgram()
	if err != nil {
		return nil, nil, nil, err
	}
	prog, err := rules.Parse("rules.yaml", src)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := store.Open(path, bulkOptions())
	if err != nil {
		return nil, nil, nil, err
	}
	e := engine.New(db, engine.Options{Logger: slog.New(slog.DiscardHandler)})
	if _, err := e.LoadRules(context.Background(), prog, "file"); err != nil {
		_ = db.Close()
		return nil, nil, nil, err
	}
	return db, prog, e, nil
}

// seedMembers enrols n members through the engine (CreateMember, with its
// enrolment bonus) on the file at path, from many goroutines so their
// writes share commits, before any server opens the file.
func seedMembers(ctx context.Context, path string, n, workers int, prefix string) (_ []memberRef, err error) {
	db, prog, e, err := openBulk(path)
	if err != nil {
		return nil, err
	}
	defer closeDB(db, &err)
	return seedMembersOn(ctx, db, prog, e, n, workers, prefix)
}

// seedMembersOn enrols n members through e, on db, from workers goroutines.
func seedMembersOn(ctx context.Context, db engine.Store, prog *rules.Program, e *engine.Engine, n, workers int, prefix string) ([]memberRef, error) {
	out := make([]memberRef, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				ext := fmt.Sprintf("%s%07d", prefix, i)
				m, err := e.CreateMember(ctx, engine.MemberInput{ExternalID: ext})
				if err != nil {
					errs <- fmt.Errorf("enrol %s: %w", ext, err)
					return
				}
				out[i] = memberRef{id: m.ID, externalID: ext}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, recordJobRuns(db, prog, e.Now())
}

// closeDB closes db and reports its error unless an earlier one is set.
func closeDB(db *store.DB, err *error) {
	if cerr := db.Close(); *err == nil {
		*err = cerr
	}
}

// recordJobRuns stores a run of every scheduled job at now, as a server that
// has been running would have. Without them a fresh server's catch-up would
// run every job at start-up, in the middle of the measurements.
func recordJobRuns(db engine.Store, prog *rules.Program, now time.Time) error {
	return db.Update(context.Background(), func(tx engine.Tx) error {
		for _, j := range prog.Jobs {
			if err := tx.PutJobRun(&engine.JobRun{Name: j.Name, StartedAt: now, FinishedAt: now}); err != nil {
				return err
			}
		}
		return nil
	})
}

// lotWriter credits points as the engine's writer does (a lot, an earn
// entry in the ledger, the member's balance) but straight through the
// store's Tx, which keeps the indexes; it skips the rules, which only
// decide how many points.
type lotWriter struct {
	tx engine.Tx
}

func (w lotWriter) credit(m *engine.Member, typ string, points int64, at, earnedAt, expiresAt time.Time, ref string) error {
	lot := &engine.Lot{
		ID: engine.NewTimeID(earnedAt), MemberID: m.ID, Points: points, Remaining: points,
		EarnedAt: earnedAt, AvailableAt: earnedAt, ExpiresAt: expiresAt, Ref: ref,
	}
	if err := w.tx.PutLot(lot); err != nil {
		return err
	}
	m.Points += points
	m.LifetimeEarned += points
	m.LedgerSeq++
	return w.tx.AppendLedger(&engine.LedgerEntry{
		ID: engine.NewTimeID(at), MemberID: m.ID, Seq: m.LedgerSeq, Type: typ, Points: points,
		BalanceAfter: m.Points, At: at, Ref: ref, RulesVersion: 1,
	})
}

// seedLots gives the members perMember lots each of 10 points that expire
// at expiresAt, in transactions of a few thousand lots.
func seedLots(ctx context.Context, path string, members []memberRef, perMember int, expiresAt time.Time) (err error) {
	db, err := store.Open(path, bulkOptions())
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	now := time.Now().UTC()
	earnedAt := expiresAt.AddDate(-1, 0, 0)
	const chunk = 500
	for lo := 0; lo < len(members); lo += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		part := members[lo:min(lo+chunk, len(members))]
		err := db.Update(ctx, func(tx engine.Tx) error {
			w := lotWriter{tx: tx}
			for _, ref := range part {
				m, err := tx.Member(ref.id)
				if err != nil {
					return err
				}
				for i := range perMember {
					if err := w.credit(m, engine.LedgerEarn, 10, now, earnedAt, expiresAt, fmt.Sprintf("seed-%d", i)); err != nil {
						return err
					}
				}
				if err := tx.PutMember(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed lots: %w", err)
		}
	}
	return nil
}

// buildBigDB writes n members with entries ledger entries each (an
// enrolment bonus and earnings over the past year, each with its lot and
// tier-metric entry) straight through the store, in key order so bbolt
// appends. It is the database the start-up and memory targets speak of.
// It returns sample members spread evenly over the file.
func buildBigDB(ctx context.Context, path string, n, entries, sample int, progress func(done int)) (_ []memberRef, err error) {
	db, prog, _, err := openBulk(path)
	if err != nil {
		return nil, err
	}
	defer closeDB(db, &err)
	now := time.Now().UTC()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	slices.Sort(ids)
	enrolled := now.AddDate(-1, 0, 0)
	var refs []memberRef
	step := max(n/sample, 1)
	const chunk = 2000
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+chunk, n)
		err := db.Update(ctx, func(tx engine.Tx) error {
			w := lotWriter{tx: tx}
			for i := lo; i < hi; i++ {
				m := &engine.Member{
					ID: ids[i], ExternalID: fmt.Sprintf("big-%07d", i), Status: engine.StatusActive,
					EnrolledAt: enrolled, Tier: prog.Tiers.Levels[0].Name, TierSince: enrolled,
				}
				for k := range entries {
					at := enrolled.Add(time.Duration(k) * 30 * 24 * time.Hour)
					typ, points := engine.LedgerBonus, int64(50)
					if k > 0 {
						typ, points = engine.LedgerEarn, 20+int64(k)
						m.PurchaseCount++
						m.LifetimeSpend += 2000
						m.LastPurchaseAt = at
						if err := tx.AddMetric(m.ID, engine.MetricEntry{At: at, Spend: 2000, Points: points, Visits: 1}); err != nil {
							return err
						}
					}
					if err := w.credit(m, typ, points, at, at, prog.ExpiresAt(at), fmt.Sprintf("big-%d", k)); err != nil {
						return err
					}
				}
				if err := tx.PutMember(m); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("build database: %w", err)
		}
		for i := lo; i < hi; i++ {
			if i%step == 0 {
				refs = append(refs, memberRef{id: ids[i], externalID: fmt.Sprintf("big-%07d", i)})
			}
		}
		progress(hi)
	}
	return refs, recordJobRuns(db, prog, now)
}
