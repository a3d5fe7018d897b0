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

// RulesError is the last rules text that was refused, kept so a marketer
// who saved a typo sees why the old rules are still live.
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

// CompileRules parses and checks rules text without changing anything. A
// text that does not compile is an unprocessable *Error whose Details hold
// every positioned problem.
func CompileRules(filename string, src []byte) (*rules.Program, error) {
	prog, err := rules.Parse(filename, src)
	if err == nil {
		return prog, nil
	}
	var errs rules.Errors
	if !errors.As(err, &errs) {
		return nil, err
	}
	e := Errorf(EUNPROCESSABLE, "the rules do not compile: %d problem(s); the first: %s", len(errs), errs[0].Message)
	for _, pe := range errs {
		e.Details = append(e.Details, Detail{Line: pe.Line, Column: pe.Column, Message: pe.Message})
	}
	return nil, e
}

// OnRulesChange registers fn to run with every program that becomes live
// after startup, such as a scheduler that follows the jobs' schedules.
func (e *Engine) OnRulesChange(fn func(*rules.Program)) {
	e.rules.mu.Lock()
	defer e.rules.mu.Unlock()
	e.rules.onChange = append(e.rules.onChange, fn)
}

// PublishRules makes rules text live if it compiles: it is stored as a new
// version (unless identical to the live one) and swapped in atomically, so
// no purchase sees a half-loaded program. Text that does not compile leaves
// the old rules live and is remembered as the last error. When tier levels
// change, members are re-evaluated for promotion in the background.
func (e *Engine) PublishRules(filename string, src []byte, by string) (RulesVersion, error) {
	e.rules.mu.Lock()
	defer e.rules.mu.Unlock()
	prog, err := CompileRules(filename, src)
	if err != nil {
		var ee *Error
		if errors.As(err, &ee) {
			e.rules.lastError = &RulesError{At: e.Now(), By: by, Hash: rules.HashOf(src), Details: ee.Details}
			e.log.Error("rules refused; the old rules stay live", "by", by, "problems", len(ee.Details), "errors", err)
		}
		return RulesVersion{}, err
	}
	old, _ := e.Program()
	v, err := e.LoadRules(prog, by)
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

// LastRulesError returns the last refused rules text, if the latest attempt
// failed.
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
	_, moved, err := e.moveTiers(ctx, live.prog, e.Now(), true)
	if err != nil {
		return moved, fmt.Errorf("promote: %w", err)
	}
	return moved, nil
}
