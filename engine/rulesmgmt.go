package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// RulesByFile is who publishes the text of the rules file: the watcher and
// the start, as opposed to an API key's name.
const RulesByFile = "file"

// RulesError is the rules file's text that was last refused, kept so a
// marketer who saved a typo sees why the old rules are still live. It
// describes the file only: a refused PUT has its answer, and the file
// still holds the live text.
type RulesError struct {
	At      time.Time `json:"at"`
	By      string    `json:"by"`
	Hash    string    `json:"hash"`
	Details []Detail  `json:"details"`
}

// rulesState is what PublishRules needs besides the live program.
type rulesState struct {
	mu        sync.Mutex // one publish at a time, so versions are numbered in order
	lastError *RulesError
	onChange  []func(*rules.Program)
	bg        sync.WaitGroup
}

// Trial settings: how many recent purchases a publication tries the rules
// on, and the limits of a request that the edge cases are made of.
const TrialPurchases = 100

var trialBounds = rules.Bounds{MaxAmount: MaxAmount, MaxQuantity: MaxQuantity, MaxItems: MaxItems, MaxTotal: MaxMemberTotal}

// TryRules compiles rules text and tries it before it can go live: every
// rule runs on the edge cases of a request at now, and on the samples
// given (recent real purchases). It returns the program, or every problem
// found, compiling or trying, as rules.Errors. It stops once ctx is done.
func TryRules(ctx context.Context, filename string, src []byte, now time.Time, samples []rules.Sample) (*rules.Program, error) {
	prog, err := rules.Parse(filename, src)
	if err != nil {
		return nil, err
	}
	errs, err := prog.Trial(ctx, append(prog.EdgeCases(trialBounds, now), samples...), MaxPoints)
	switch {
	case err != nil:
		return nil, err
	case errs != nil:
		return nil, errs
	}
	return prog, nil
}

// rulesError makes the problems of a rules text an unprocessable *Error
// whose Details hold every positioned problem.
func rulesError(err error) error {
	var errs rules.Errors
	if !errors.As(err, &errs) {
		return err
	}
	e := Errorf(EUNPROCESSABLE, "the rules do not compile: %d problem(s); the first: %s", len(errs), errs[0].Message)
	if errs[0].Rule != "" {
		e = Errorf(EUNPROCESSABLE, "the rules fail when they run: %d problem(s); the first: %s", len(errs), errs[0].Message)
	}
	for _, pe := range errs {
		e.Details = append(e.Details, Detail{Rule: pe.Rule, Line: pe.Line, Column: pe.Column, Message: pe.Message})
	}
	e.cause = err
	return e
}

// CheckRules compiles rules text and tries it, on the edge cases of a
// request and on the most recent purchases of the database, without
// changing anything. A text that does not compile, or a rule that fails
// on a sample, is an unprocessable *Error whose Details hold every
// positioned problem.
func (e *Engine) CheckRules(ctx context.Context, filename string, src []byte) (*rules.Program, error) {
	samples, err := e.RecentSamples(ctx, TrialPurchases)
	if err != nil {
		return nil, err
	}
	prog, err := TryRules(ctx, filename, src, e.Now(), samples)
	if err != nil {
		return nil, rulesError(err)
	}
	return prog, nil
}

// RecentSamples returns up to n of the latest purchases with their members
// as they are now, seen at the tier they were made at, to try rules on.
// It looks back a day, then a week, a month and a year until it has n.
func (e *Engine) RecentSamples(ctx context.Context, n int) ([]rules.Sample, error) {
	now := e.Now()
	var samples []rules.Sample
	err := e.store.View(ctx, func(tx Tx) error {
		var ps []*Purchase
		for _, back := range []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 31 * 24 * time.Hour, 366 * 24 * time.Hour} {
			var err error
			if ps, err = tx.PurchasesBetween(now.Add(-back), now.Add(maxFutureSkew), n); err != nil || len(ps) >= n {
				break
			}
		}
		members := map[string]*Member{}
		for _, p := range ps {
			if err := ctx.Err(); err != nil {
				return err
			}
			m, ok := members[p.MemberID]
			if !ok {
				var err error
				if m, err = tx.Member(p.MemberID); err != nil {
					return err
				}
				members[p.MemberID] = m
			}
			if m == nil {
				continue
			}
			rm := ruleMember(m)
			rm.Tier = p.EarnedAtTier
			samples = append(samples, rules.Sample{
				Name: fmt.Sprintf("purchase %q", p.ID),
				Input: rules.EarnInput{Purchase: rules.Purchase{
					Amount: p.Amount, Currency: p.Currency, StoreID: p.StoreID, TerminalID: p.TerminalID,
					OccurredAt: p.OccurredAt, Items: ruleItems(p.Items),
				}, Member: rm},
			})
		}
		return nil
	})
	return samples, err
}

// OnRulesChange registers fn to run with every program that becomes live
// after startup, such as a scheduler that follows the jobs' schedules.
func (e *Engine) OnRulesChange(fn func(*rules.Program)) {
	e.rules.mu.Lock()
	defer e.rules.mu.Unlock()
	e.rules.onChange = append(e.rules.onChange, fn)
}

// PublishRules makes rules text live if it compiles and passes its trial
// (CheckRules). Then, in this order: save writes it to the rules file
// (when save is not nil), it is stored as a new version (unless identical
// to the live one), and it is swapped in atomically, so that no purchase
// sees a half-loaded program and the new rules are never live without
// being in the file. Text that is refused, or that cannot be saved,
// leaves the old rules live; refused text is remembered as the last
// error. When tier levels change, members are re-evaluated for promotion
// in the background.
func (e *Engine) PublishRules(ctx context.Context, filename string, src []byte, by string, save func([]byte) error) (RulesVersion, error) {
	e.rules.mu.Lock()
	defer e.rules.mu.Unlock()
	old, current := e.Program()
	if old != nil && old.Hash == rules.HashOf(src) {
		e.rules.lastError = nil
		if save != nil {
			if err := e.saveRules(save, src, current); err != nil {
				return RulesVersion{}, err
			}
		}
		return current, nil
	}
	prog, err := e.CheckRules(ctx, filename, src)
	if err != nil {
		var ee *Error
		if errors.As(err, &ee) && ee.Code == EUNPROCESSABLE {
			if by == RulesByFile {
				e.rules.lastError = &RulesError{At: e.Now(), By: by, Hash: rules.HashOf(src), Details: ee.Details}
			}
			e.log.Error("rules refused; the old rules stay live", "by", by, "problems", len(ee.Details), "errors", ee.cause)
		}
		return RulesVersion{}, err
	}
	if save != nil {
		if err := e.saveRules(save, src, current); err != nil {
			return RulesVersion{}, err
		}
	}
	v, err := e.LoadRules(ctx, prog, by)
	if err != nil {
		return RulesVersion{}, err
	}
	e.rules.lastError = nil
	if old != nil && old.Hash != prog.Hash {
		for _, fn := range e.rules.onChange {
			fn(prog)
		}
		if !sameTiers(old.Tiers, prog.Tiers) {
			e.rules.bg.Add(1)
			go func() {
				defer e.rules.bg.Done()
				n, err := e.promoteAll(context.Background())
				if err != nil {
					e.log.Error("re-evaluating tiers after a rules change", "err", err)
					return
				}
				e.log.Info("tiers re-evaluated after a rules change", "members", n)
			}()
		}
	}
	return v, nil
}

// FollowRules makes the database's latest rules live when they are not
// the live ones: another server sharing the database published them. It
// does what publishing does on the server that published, except what that
// server did already (the trial, storing the version, re-evaluating tiers):
// the OnRulesChange functions run and save, when not nil, writes the text
// to this server's rules file. It tells whether the live rules changed.
// Servers call it every few seconds; a version that no longer compiles
// here (written by a newer program) is an error and changes nothing.
func (e *Engine) FollowRules(ctx context.Context, save func([]byte) error) (bool, error) {
	latest, err := e.LatestRules(ctx)
	if err != nil || latest == nil {
		return false, err
	}
	e.rules.mu.Lock()
	defer e.rules.mu.Unlock()
	if _, live := e.Program(); live.Version == latest.Version && live.Hash == latest.Hash {
		return false, nil
	}
	prog, err := rules.Parse(fmt.Sprintf("version %d", latest.Version), []byte(latest.Source))
	if err != nil {
		return false, fmt.Errorf("follow rules version %d: %w", latest.Version, err)
	}
	if err := checkBonuses(prog); err != nil {
		return false, fmt.Errorf("follow rules version %d: %w", latest.Version, err)
	}
	if save != nil {
		if err := save([]byte(latest.Source)); err != nil {
			return false, fmt.Errorf("follow rules version %d: %w", latest.Version, err)
		}
	}
	e.live.Store(&liveRules{prog: prog, version: *latest})
	e.rules.lastError = nil
	e.log.Info("rules live, published by another server", "version", latest.Version, "hash", latest.Hash[:min(12, len(latest.Hash))], "by", latest.By)
	for _, fn := range e.rules.onChange {
		fn(prog)
	}
	return true, nil
}

// saveRules writes rules text with save; a failure leaves the live rules
// as they are, and says so.
func (e *Engine) saveRules(save func([]byte) error, src []byte, live RulesVersion) error {
	if err := save(src); err != nil {
		e.log.Error("saving the rules file failed; the old rules stay live", "version", live.Version, "err", err)
		return &Error{Code: EINTERNAL, cause: err,
			Message: fmt.Sprintf("the rules could not be written to the rules file, so they are not live: version %d stays live (the server log has the reason)", live.Version)}
	}
	return nil
}

// LastRulesError returns the rules file's refused text while the file
// holds it: nil once a version goes live or the file is put back to the
// live text (PublishRules of the live text clears it).
func (e *Engine) LastRulesError() *RulesError {
	e.rules.mu.Lock()
	defer e.rules.mu.Unlock()
	return e.rules.lastError
}

// Wait blocks until background work started by the engine (re-evaluation
// after a rules change) has finished.
func (e *Engine) Wait() { e.rules.bg.Wait() }

func sameTiers(a, b rules.Tiers) bool {
	if a.Metric != b.Metric || a.Window != b.Window || a.CalendarYear != b.CalendarYear || len(a.Levels) != len(b.Levels) {
		return false
	}
	for i := range a.Levels {
		x, y := a.Levels[i], b.Levels[i]
		if x.Name != y.Name || x.Threshold != y.Threshold || !x.Multiplier.Equal(y.Multiplier) || !reflect.DeepEqual(x.Extra, y.Extra) {
			return false
		}
	}
	return true
}

// promoteAll moves up every member whose metric qualifies for a higher tier
// under the live rules, and puts members whose tier no longer exists on the
// tier they qualify for. Demotions stay with evaluate-tiers and its grace.
func (e *Engine) promoteAll(ctx context.Context) (int64, error) {
	live, err := e.mustProgram()
	if err != nil {
		return 0, err
	}
	_, moved, err := e.moveTiers(ctx, live, e.Now(), true)
	if err != nil {
		return moved, fmt.Errorf("promote: %w", err)
	}
	return moved, nil
}
