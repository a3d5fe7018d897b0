package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: loyalty rules check|simulate|diff …")
		return errUsage
	}
	switch args[0] {
	case "check":
		return runRulesCheck(ctx, args[1:], stdout, stderr)
	case "simulate":
		return runRulesSimulate(ctx, args[1:], stdout, stderr)
	case "diff":
		return runRulesDiff(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "loyalty rules: unknown command %q (check, simulate, diff)\n", args[0])
	return errUsage
}

// runRulesCheck prints "ok" for each good file, or every error as
// FILE:LINE:COL: message, and fails if any file has an error. A file is
// good when it compiles and its rules pass their trial: the edge cases of
// a request, and with --db that database's recent purchases.
func runRulesCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules check", stderr)
	dbPath := fs.String("db", "", "database to try the rules on its recent purchases (a backup, or a stopped server's file)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "usage: loyalty rules check FILE... [--db FILE]")
		return errUsage
	}
	var samples []rules.Sample
	if *dbPath != "" {
		_, s, closeDB, err := openSamples(ctx, *dbPath)
		if err != nil {
			return err
		}
		defer closeDB()
		samples = s
	}
	failed := false
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", name, errors.Unwrap(err))
			failed = true
			continue
		}
		if _, err := engine.TryRules(ctx, name, src, time.Now().UTC(), samples); err != nil {
			fmt.Fprintln(stdout, err)
			failed = true
			continue
		}
		if len(files) == 1 {
			fmt.Fprintln(stdout, "ok")
		} else {
			fmt.Fprintf(stdout, "%s: ok\n", name)
		}
	}
	if failed {
		return exitError(1)
	}
	return nil
}
