package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
)

// plainStore hides the store's shortcuts (engine.MetricSummer,
// engine.LotBalancer) so that an engine on it reads every record.
type plainStore struct{ engine.Store }

// plainTx has the methods of engine.Tx and nothing more.
type plainTx struct{ engine.Tx }

func (s plainStore) View(ctx context.Context, fn func(engine.Tx) error) error {
	return s.Store.View(ctx, func(tx engine.Tx) error { return fn(plainTx{tx}) })
}

func (s plainStore) Update(ctx context.Context, fn func(engine.Tx) error) error {
	return s.Store.Update(ctx, func(tx engine.Tx) error { return fn(plainTx{tx}) })
}

// TestShortcutsChangeNothing runs one random history of purchases,
// refunds, redemptions and jobs on two engines over the pass's kind of
// store, one taking the store's shortcuts and one reading every record,
// and requires the same answers from both.
func TestShortcutsChangeNothing(t *testing.T) {
	src := strings.NewReplacer(
		`threshold: "500.00"`, `threshold: "60.00"`,
		`threshold: "2000.00"`, `threshold: "150.00"`,
		"pending: 0d", "pending: 2d",
	).Replace(string(rules.Example))
	prog, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	clock := engine.NewTestClock(&fixedClock{t: start})
	// Each store's own check runs on cleanup (storetesting.Open).
	newEngine := func(wrap func(engine.Store) engine.Store) *engine.Engine {
		db := storetesting.Open(t, storeKind)
		e := engine.New(wrap(db), engine.Options{Clock: clock, JobChunk: 7, Logger: slog.New(slog.DiscardHandler)})
		if _, err := e.LoadRules(t.Context(), prog, "test"); err != nil {
			t.Fatal(err)
		}
		return e
	}
	fast := newEngine(func(db engine.Store) engine.Store { return db })
	plain := newEngine(func(db engine.Store) engine.Store { return plainStore{db} })
	engines := []*engine.Engine{fast, plain}
	ctx := context.Background()
	var ids [2][]string

	// same runs op on both engines and compares the answers with member ids
	// blanked, since each engine makes its own.
	same := func(what string, op func(e *engine.Engine, member func(int) string) (any, error)) {
		t.Helper()
		var answers [2]string
		for i, e := range engines {
			v, err := op(e, func(n int) string { return ids[i][n] })
			b, jerr := json.Marshal(v)
			if jerr != nil {
				t.Fatal(jerr)
			}
			answers[i] = blankIDs(fmt.Sprintf("%s %v", b, err), ids[i])
		}
		if answers[0] != answers[1] {
			t.Fatalf("%s:\nwith shortcuts: %s\nwithout:        %s", what, answers[0], answers[1])
		}
	}
	const members = 6
	for range members {
		for i, e := range engines {
			m, err := e.CreateMember(ctx, engine.MemberInput{})
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = append(ids[i], m.ID)
		}
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	var purchases []string
	for step := range 300 {
		n := rnd.IntN(members)
		switch r := rnd.IntN(20); {
		case r < 12:
			id := fmt.Sprintf("p%d", step)
			cents := 100 + rnd.IntN(4000)
			occurred := clock.Now().Add(-time.Duration(rnd.IntN(72)) * time.Hour).Format(time.RFC3339)
			same("purchase "+id, func(e *engine.Engine, member func(int) string) (any, error) {
				res, _, err := e.Purchase(ctx, engine.PurchaseRequest{
					ID: id, MemberID: member(n), Currency: "USD", Amount: fmt.Sprintf("%d.%02d", cents/100, cents%100), OccurredAt: occurred,
					Items: []engine.ItemRequest{{SKU: "LATTE", Category: "coffee", Quantity: 1, Amount: "1.00"}},
				})
				return res, err
			})
			purchases = append(purchases, id)
		case r < 14 && len(purchases) > 0:
			p := purchases[rnd.IntN(len(purchases))]
			same("refund of "+p, func(e *engine.Engine, _ func(int) string) (any, error) {
				res, _, err := e.Refund(ctx, p, engine.RefundRequest{ID: fmt.Sprintf("r%d", step), Amount: "1.00"})
				return res, err
			})
		case r < 15:
			points := int64(1 + rnd.IntN(40))
			same("redemption", func(e *engine.Engine, member func(int) string) (any, error) {
				res, _, err := e.Redeem(ctx, member(n), engine.RedemptionRequest{ID: fmt.Sprintf("x%d", step), Points: points})
				return res, err
			})
		case r < 16:
			job := []string{engine.JobExpirePoints, engine.JobEvaluateTiers}[rnd.IntN(2)]
			same("job "+job, func(e *engine.Engine, _ func(int) string) (any, error) {
				run, err := e.RunJob(ctx, job)
				if run != nil {
					return run.Processed, err
				}
				return nil, err
			})
		default:
			if err := clock.Advance(time.Duration(1+rnd.IntN(24*20)) * time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		same("balance", func(e *engine.Engine, member func(int) string) (any, error) {
			return e.Balance(ctx, member(n))
		})
	}
}

func blankIDs(s string, ids []string) string {
	for i, id := range ids {
		s = strings.ReplaceAll(s, id, fmt.Sprintf("member-%d", i))
	}
	// Coupon codes are drawn at random, by each engine its own.
	return couponCode.ReplaceAllString(s, `"code":"…"`)
}

var couponCode = regexp.MustCompile(`"code":"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}"`)
