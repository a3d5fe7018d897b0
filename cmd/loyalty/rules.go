package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/loyaltyhq/loyalty/rules"
)

func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: loyalty rules check|simulate|diff …")
		return errUsage
	}
	switch args[0] {
	case "check":
		return runRulesCheck(args[1:], stdout, stderr)
	case "simulate":
		return runRulesSimulate(ctx, args[1:], stdout, stderr)
	case "diff":
		return runRulesDiff(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "loyalty rules: unknown command %q (check, simulate, diff)\n", args[0])
	return errUsage
}

// runRulesCheck prints "ok" for each good file, or every error as
// FILE:LINE:COL: message, and fails if any file has an error.
func runRulesCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rules check", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: loyalty rules check FILE...")
		return errUsage
	}
	failed := false
	for _, name := range fs.Args() {
		src, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", name, errors.Unwrap(err))
			failed = true
			continue
		}
		if _, err := rules.Parse(name, src); err != nil {
			fmt.Fprintln(stdout, err)
			failed = true
			continue
		}
		if fs.NArg() == 1 {
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
