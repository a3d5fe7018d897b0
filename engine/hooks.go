package engine

import (
	"context"
	"strings"
)

// Hooks are told about what the engine did once it is committed, so that
// metrics can count it without the engine knowing about them. Each hook is
// optional, must be quick, and must not call back into the engine.
type Hooks struct {
	// JobRun receives the record of every job run, failed or not.
	JobRun func(run JobRun)
	// Ledger receives every ledger entry once the write that appended it
	// has committed, whatever wrote it (a purchase, a job, an
	// adjustment…), so that counts kept from it add up to the ledger.
	Ledger func(entry LedgerEntry)
	// RuleFailed receives the name of an earn rule that failed on a
	// purchase, which was refused.
	RuleFailed func(rule string)
}

func (h Hooks) jobRun(r *JobRun) {
	if h.JobRun != nil {
		h.JobRun(*r)
	}
}

func (h Hooks) ruleFailed(rule string) {
	if h.RuleFailed != nil {
		h.RuleFailed(rule)
	}
}

// EntryKind names what moved an entry's points, for metrics: purchase,
// adjustment, the bonuses told apart by their reference (enrol, referral,
// birthday, or bonus), else the ledger type (redeem, redeem_cancel,
// refund, expire…).
func EntryKind(en LedgerEntry) string {
	switch en.Type {
	case LedgerEarn:
		return "purchase"
	case LedgerAdjust:
		return "adjustment"
	case LedgerBonus:
		for _, k := range []string{"enrol", "referral", "birthday"} {
			if strings.HasPrefix(en.Ref, k+":") {
				return k
			}
		}
		return "bonus"
	}
	return en.Type
}

// ledgerStore hands every committed ledger entry to a hook. It sees the
// entries as the write function appends them; fn may run more than once
// (Store.Update), so only the entries of its last run are handed on, and
// only once Update has committed.
type ledgerStore struct {
	Store
	hook func(LedgerEntry)
}

func (s ledgerStore) Update(ctx context.Context, fn func(Tx) error) error {
	var entries []LedgerEntry
	err := s.Store.Update(ctx, func(tx Tx) error {
		entries = entries[:0]
		return fn(watchLedger(tx, &entries))
	})
	if err == nil {
		for _, en := range entries {
			s.hook(en)
		}
	}
	return err
}

// ledgerTx records the entries appended through it.
type ledgerTx struct {
	Tx
	entries *[]LedgerEntry
}

func (t ledgerTx) AppendLedger(en *LedgerEntry) error {
	if err := t.Tx.AppendLedger(en); err != nil {
		return err
	}
	*t.entries = append(*t.entries, *en)
	return nil
}

// watchLedger wraps tx in a ledgerTx that offers the same shortcuts
// (fastpath.go) as tx, so that watching costs the purchase path nothing.
func watchLedger(tx Tx, entries *[]LedgerEntry) Tx {
	w := ledgerTx{Tx: tx, entries: entries}
	lb, isLB := tx.(LotBalancer)
	ms, isMS := tx.(MetricSummer)
	switch {
	case isLB && isMS:
		return struct {
			ledgerTx
			LotBalancer
			MetricSummer
		}{w, lb, ms}
	case isLB:
		return struct {
			ledgerTx
			LotBalancer
		}{w, lb}
	case isMS:
		return struct {
			ledgerTx
			MetricSummer
		}{w, ms}
	}
	return w
}
