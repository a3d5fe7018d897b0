package engine

import (
	"context"
	"fmt"
	"io"
)

// Verify checks the ledger invariants for every member in one consistent
// snapshot: the balance equals the sum of the ledger and the sum of the
// lots' remaining points less the debt, no lot is negative or overspent, and
// the ledger's running balance agrees with its entries. It prints one line
// per problem and returns how many it found.
func (e *Engine) Verify(ctx context.Context, w io.Writer) (int, error) {
	problems := 0
	report := func(format string, args ...any) {
		problems++
		fmt.Fprintf(w, format+"\n", args...)
	}
	err := e.store.View(func(tx Tx) error {
		after := ""
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			members, err := tx.Members(after, 1000)
			if err != nil {
				return err
			}
			for _, m := range members {
				after = m.ID
				if err := verifyMember(tx, m, report); err != nil {
					return err
				}
			}
			if len(members) < 1000 {
				return nil
			}
		}
	})
	return problems, err
}

func verifyMember(tx Tx, m *Member, report func(string, ...any)) error {
	entries, err := tx.Ledger(m.ID, 0, 0)
	if err != nil {
		return err
	}
	var sum int64
	for _, en := range entries {
		sum += en.Points
	}
	if sum != m.Points {
		report("member %s: balance %d but the ledger sums to %d", m.ID, m.Points, sum)
	}
	if uint64(len(entries)) != m.LedgerSeq {
		report("member %s: ledger has %d entries but the member counts %d", m.ID, len(entries), m.LedgerSeq)
	}
	if len(entries) > 0 && entries[0].BalanceAfter != m.Points {
		report("member %s: newest ledger entry says balance %d, member says %d", m.ID, entries[0].BalanceAfter, m.Points)
	}
	lots, err := tx.Lots(m.ID)
	if err != nil {
		return err
	}
	var remaining int64
	for _, l := range lots {
		if l.Remaining < 0 || l.Remaining > l.Points {
			report("member %s: lot %s has %d of %d points left", m.ID, l.ID, l.Remaining, l.Points)
		}
		remaining += l.Remaining
	}
	if m.Debt < 0 {
		report("member %s: negative debt %d", m.ID, m.Debt)
	}
	if remaining-m.Debt != m.Points {
		report("member %s: balance %d but lots hold %d less debt %d", m.ID, m.Points, remaining, m.Debt)
	}
	if m.Debt > 0 && remaining > 0 {
		report("member %s: owes %d points while lots still hold %d", m.ID, m.Debt, remaining)
	}
	return nil
}
