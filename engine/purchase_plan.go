package engine

import (
	"reflect"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// earnPlan is the rules' verdict on a purchase, reached in a read
// transaction before the write one so that the write transaction, which
// every concurrent purchase waits on, need not evaluate the rules. It holds
// while what the evaluation read is unchanged: the member as the rules see
// it and the counters of capped rules.
type earnPlan struct {
	member rules.Member
	uses   map[string]rules.RuleUses
	bd     rules.Breakdown
}

// planEarn evaluates the rules for req in a read transaction. It returns
// nil when there is nothing to plan (a replay, an unknown or blocked
// member, a failing rule): the write transaction then decides and answers
// as it would without a plan.
func (e *Engine) planEarn(live *liveRules, req *PurchaseRequest, d purchaseData, now time.Time) *earnPlan {
	var plan *earnPlan
	_ = e.store.View(func(tx Tx) error {
		if p, err := tx.Purchase(req.ID); err != nil || p != nil {
			return err
		}
		m, err := e.purchaseMember(tx, req)
		if err != nil || m.Status == StatusBlocked {
			return err
		}
		uses := ruleUsesReader(tx, live.prog, m.ID, d.occurredAt)
		read := map[string]rules.RuleUses{}
		in := earnInput(live.prog, m, req, d, now)
		in.Uses = func(rule string) rules.RuleUses {
			u := uses.get(rule)
			read[rule] = u
			return u
		}
		bd, err := live.prog.Earn(in)
		if err != nil || uses.err != nil {
			return nil
		}
		plan = &earnPlan{member: in.Member, uses: read, bd: bd}
		return nil
	})
	return plan
}

// breakdown returns the plan's breakdown if the plan still applies to a
// member the rules see as member, re-reading through uses the counters it
// read; nil if it does not.
func (p *earnPlan) breakdown(member rules.Member, uses *ruleUses) *rules.Breakdown {
	if p == nil || !reflect.DeepEqual(p.member, member) {
		return nil
	}
	for rule, u := range p.uses {
		if uses.get(rule) != u {
			return nil
		}
	}
	return &p.bd
}

func earnInput(prog *rules.Program, m *Member, req *PurchaseRequest, d purchaseData, now time.Time) rules.EarnInput {
	return rules.EarnInput{
		Purchase: rules.Purchase{
			Amount: d.amount, Currency: req.Currency, StoreID: req.StoreID, TerminalID: req.TerminalID,
			OccurredAt: d.occurredAt, Items: ruleItems(d.items),
		},
		Member: ruleMember(m, prog, now),
	}
}
