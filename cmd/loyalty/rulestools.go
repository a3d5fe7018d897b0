package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// loadProgram reads, compiles and tries a rules file on the edge cases of
// a request and on samples (recent purchases of a database, if any),
// printing its errors in the FILE:LINE:COL form on failure.
func loadProgram(path string, samples []rules.Sample, stdout io.Writer) (*rules.Program, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	prog, err := engine.TryRules(context.Background(), path, src, time.Now().UTC(), samples)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return nil, exitError(1)
	}
	return prog, nil
}

// openSamples opens a database (a bbolt file or a PostgreSQL URL)
// read-only and returns its recent purchases as samples for a trial, and a
// function that closes it.
func openSamples(ctx context.Context, dsn string) (*engine.Engine, []rules.Sample, func(), error) {
	db, err := openDatabase(ctx, dsn, dbOptions{readOnly: true})
	if err != nil {
		return nil, nil, nil, err
	}
	e := engine.New(db, engine.Options{Logger: discardLogger()})
	samples, err := e.RecentSamples(ctx, engine.TrialPurchases)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return e, samples, func() { db.Close() }, nil
}

// readJSON decodes a file as strictly as the API decodes a request body.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := lhttp.DecodeJSON(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// runRulesSimulate prints what a purchase would earn under a rules file,
// through the engine's own purchase path on a throw-away database.
func runRulesSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules simulate", stderr)
	purchasePath := fs.String("purchase", "", "JSON file with the purchase, as POST /v1/purchases takes it")
	memberPath := fs.String("member", "", "JSON file with a hypothetical member (tier, enrolled_at, attributes, churn_risk…)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 || *purchasePath == "" {
		fmt.Fprintln(stderr, "usage: loyalty rules simulate FILE --purchase p.json [--member m.json]")
		return errUsage
	}
	prog, err := loadProgram(files[0], nil, stdout)
	if err != nil {
		return err
	}
	req := engine.SimulateRequest{Member: &engine.SimMember{}}
	if err := readJSON(*purchasePath, &req.Purchase); err != nil {
		return err
	}
	if *memberPath != "" {
		if err := readJSON(*memberPath, req.Member); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "loyalty-simulate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "simulate.db"), store.DefaultOptions())
	if err != nil {
		return err
	}
	defer db.Close()
	e := engine.New(db, engine.Options{Logger: discardLogger()})
	if _, err := e.LoadRules(ctx, prog, "simulate"); err != nil {
		return err
	}
	res, err := e.Simulate(ctx, req)
	if err != nil {
		return err
	}
	return printJSON(stdout, res)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// runRulesDiff replays purchases through two versions of the rules and
// reports what changes.
func runRulesDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules diff", stderr)
	dbPath := fs.String("db", "", "database to take recent purchases and members from (a backup, or a stopped server's file)")
	last := fs.String("last", "30d", "with --db: how far back to replay purchases")
	purchasesPath := fs.String("purchases", "", "JSON file with a list of purchases (each may carry a \"member\") instead of --db")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 2 || (*dbPath == "") == (*purchasesPath == "") {
		fmt.Fprintln(stderr, "usage: loyalty rules diff OLD NEW (--db FILE [--last 30d] | --purchases FILE.json) [--json]")
		return errUsage
	}
	var e *engine.Engine
	var samples []rules.Sample
	if *dbPath != "" {
		var closeDB func()
		if e, samples, closeDB, err = openSamples(ctx, *dbPath); err != nil {
			return err
		}
		defer closeDB()
	}
	before, err := loadProgram(files[0], samples, stdout)
	if err != nil {
		return err
	}
	after, err := loadProgram(files[1], samples, stdout)
	if err != nil {
		return err
	}
	var rep *engine.DiffReport
	if *purchasesPath != "" {
		var ps []engine.DiffPurchase
		if err := readJSON(*purchasesPath, &ps); err != nil {
			return err
		}
		if rep, err = engine.DiffPurchases(before, after, ps, time.Now().UTC()); err != nil {
			return err
		}
	} else {
		d, err := rules.ParseDuration(*last)
		if err != nil {
			return fmt.Errorf("--last: %w", err)
		}
		now := e.Now()
		since := now.AddDate(0, -d.Months, 0).Add(-d.Fixed)
		if rep, err = e.DiffRules(ctx, before, after, since); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	printDiff(stdout, rep)
	return nil
}

func printDiff(w io.Writer, rep *engine.DiffReport) {
	fmt.Fprintf(w, "%d purchases replayed", rep.Purchases)
	if !rep.From.IsZero() {
		fmt.Fprintf(w, " (%s to %s)", rep.From.Format(time.DateOnly), rep.To.Format(time.DateOnly))
	}
	if rep.Truncated {
		fmt.Fprintf(w, ", the first %d only", engine.MaxDiffPurchases)
	}
	fmt.Fprintf(w, "\npoints: %d before, %d after, change %+d\n", rep.Before, rep.After, rep.Change)
	fmt.Fprintf(w, "cost at analytics.point_cost: %s before, %s after, change %s\n\n", rep.CostBefore, rep.CostAfter, rep.CostChange)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rule\tbefore\tafter\tchange\t")
	for _, r := range rep.Rules {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%+d\t\n", r.Rule, r.Before, r.After, r.Change)
	}
	fmt.Fprintln(tw, "\t\t\t\t")
	fmt.Fprintln(tw, "tier\tpurchases\tbefore\tafter\tchange\t")
	for _, t := range rep.Tiers {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%+d\t\n", t.Tier, t.Purchases, t.Before, t.After, t.Change)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d members would qualify for another tier\n", rep.TierChangesTotal)
	for _, c := range rep.TierChanges {
		fmt.Fprintf(w, "  %s %s: %s -> %s\n", c.MemberID, c.ExternalID, c.Before, c.After)
	}
	printRewardsDiff(w, rep.Rewards)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func printRewardsDiff(w io.Writer, d engine.RewardsDiff) {
	if len(d.Added)+len(d.Removed)+len(d.Changed)+len(d.Issued) == 0 {
		fmt.Fprintln(w, "\nrewards: no change")
		return
	}
	fmt.Fprintln(w, "\nrewards:")
	for _, name := range d.Added {
		fmt.Fprintf(w, "  + %s (added)\n", name)
	}
	for _, name := range d.Removed {
		fmt.Fprintf(w, "  - %s (removed)\n", name)
	}
	show := func(v string) string {
		if v == "" {
			return "(none)"
		}
		return strconv.Quote(v)
	}
	for _, c := range d.Changed {
		for _, f := range c.Changes {
			fmt.Fprintf(w, "  ~ %s %s: %s -> %s\n", c.Reward, f.Field, show(f.Before), show(f.After))
		}
	}
	for _, f := range d.Issued {
		fmt.Fprintf(w, "  ~ %s: %s -> %s\n", f.Field, show(f.Before), show(f.After))
	}
}

// parseInterspersed parses flags that may come after the positional
// arguments, so `rules diff OLD NEW --db FILE` works as naturally as the
// flag package's flags-first order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
