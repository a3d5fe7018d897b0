package rules

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sample is a purchase to try rules on before they go live.
type Sample struct {
	// Name says which purchase it is in a message: `purchase "p-81"` or
	// "the largest purchase, with 200 items".
	Name  string
	Input EarnInput
}

// Trial runs the earn rules, and the when of every reward, on each sample
// before they go live, so that a rule which fails (a division by zero, a number too large, more than
// the budget) is refused at publish time rather than at the till. Each
// rule runs alone, whatever its active dates and caps, with the whole
// budget and no more than maxPoints points; then all the rules run
// together as the till would run them, within one budget and maxPoints
// for the purchase. The problems come back as Errors, at most one per
// rule, positioned at the expression that failed and naming the sample;
// nil when every rule passed. A trial of many rules on many samples takes
// a while, so it stops between samples once ctx is done and returns ctx's
// error.
func (p *Program) Trial(ctx context.Context, samples []Sample, maxPoints int64) (Errors, error) {
	var errs Errors
	failed := map[string]bool{}
	record := func(re *RuleError, sample string) {
		name := re.Rule
		if re.Reward {
			name = "reward " + re.Rule
		}
		failed[name] = true
		errs = append(errs, Error{File: p.file, Line: re.Line, Column: re.Column, Rule: name,
			Message: fmt.Sprintf("%v (on %s)", re, sample)})
	}
	for _, smp := range samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in := smp.Input
		in.Uses = nil
		s := p.state()
		p.fill(s, &in)
		for _, r := range p.Rules {
			if r.points == nil || failed[r.Name] {
				continue
			}
			s.meter.reset(p.limits())
			res, err := p.evalRule(s, r)
			if err == nil && res.Points > maxPoints {
				err = &exprFailure{site: &r.pointsAt, err: fmt.Errorf("earns %d points, more than the %d a rule may earn on one purchase (add max_per_purchase)", res.Points, maxPoints)}
			}
			if err != nil {
				record(p.ruleError(r, err), smp.Name)
			}
		}
		// A reward's when runs on the sample's member, alone, with the
		// whole budget, as it runs when a member looks at the catalogue.
		for _, r := range p.Rewards {
			if r.when == nil || failed["reward "+r.Name] {
				continue
			}
			s.meter.reset(p.limits())
			if _, err := p.evalWhen(s, r); err != nil {
				record(p.rewardError(r, err), smp.Name)
			}
		}
		p.release(s)

		b, err := p.Earn(in)
		var re *RuleError
		switch {
		case errors.As(err, &re):
			if !failed[re.Rule] {
				record(re, smp.Name)
			}
		case err == nil && b.Total > maxPoints:
			// No single rule is to blame; the last that earned is where the
			// total went over.
			r := p.Rule(b.Rules[len(b.Rules)-1].Rule)
			if !failed[r.Name] {
				record(p.ruleError(r, fmt.Errorf("the rules together earn %d points, more than the %d a purchase may earn", b.Total, maxPoints)), smp.Name)
			}
		}
	}
	errs.sort()
	return errs, nil
}

// Bounds are the largest values a purchase request may carry, which the
// edge cases are made of.
type Bounds struct {
	MaxAmount   int64 // minor units, of a purchase or one of its lines
	MaxQuantity int64
	MaxItems    int
	MaxTotal    int64 // of a member's lifetime spend, in minor units
}

// EdgeCases are purchases at the edges of what a till may send, by
// members at every tier: nothing at all, the largest amount, the most
// items. A rule that holds on these and on recent real purchases is
// unlikely to fail at the till. at is when they happen.
func (p *Program) EdgeCases(b Bounds, at time.Time) []Sample {
	first, top := p.Tiers.Levels[0].Name, p.Tiers.Levels[len(p.Tiers.Levels)-1].Name
	largest := p.FormatMoney(b.MaxAmount)
	nobody := Member{ID: "edge-case", Tier: first}
	veteran := Member{
		ID: "edge-case", Tier: top, EnrolledAt: at.AddDate(-100, 0, 0), PurchaseCount: b.MaxTotal,
		LifetimeSpend: b.MaxTotal, BirthdayMonth: 12, ChurnRisk: true, CLV: b.MaxTotal,
	}
	// The lines are named after the texts the rules compare with, so that
	// rules for one category or product run too.
	words := append(p.literals, "edge-case")
	many := make([]Item, b.MaxItems)
	for i := range many {
		many[i] = Item{SKU: words[(i+1)%len(words)], Category: words[i%len(words)], Quantity: b.MaxQuantity, Amount: b.MaxAmount / int64(max(b.MaxItems, 1))}
	}
	// Each sample is 31 hours before the one before it, so that together
	// they fall on different weekdays and hours.
	var k time.Duration
	buy := func(amount int64, items ...Item) Purchase {
		k++
		return Purchase{Amount: amount, Currency: p.Currency, OccurredAt: at.Add(-31 * time.Hour * (k - 1)), Items: items}
	}
	samples := []Sample{
		{"a purchase of " + p.FormatMoney(0) + " with no items", EarnInput{Purchase: buy(0), Member: nobody}},
		{"a purchase of " + p.FormatMoney(0) + " with one free item", EarnInput{Purchase: buy(0, Item{SKU: "edge-case", Quantity: 1}), Member: nobody}},
		{"a purchase of " + largest + " (the largest) with no items", EarnInput{Purchase: buy(b.MaxAmount), Member: veteran}},
		{fmt.Sprintf("a purchase of %s with %d items of quantity %d", largest, b.MaxItems, b.MaxQuantity), EarnInput{Purchase: buy(b.MaxAmount, many...), Member: veteran}},
	}
	unit := int64(1)
	for range p.CurrencyDigits {
		unit *= 10
	}
	for _, l := range p.Tiers.Levels {
		m := Member{ID: "edge-case", Tier: l.Name, EnrolledAt: at.AddDate(-1, 0, 0), PurchaseCount: 1, LifetimeSpend: 10 * unit}
		samples = append(samples, Sample{
			Name:  fmt.Sprintf("a purchase of %s with one item by a member of tier %q", p.FormatMoney(10*unit), l.Name),
			Input: EarnInput{Purchase: buy(10*unit, Item{SKU: "edge-case", Category: "edge-case", Quantity: 1, Amount: 10 * unit}), Member: m},
		})
	}
	return samples
}
