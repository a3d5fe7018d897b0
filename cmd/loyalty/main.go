// Command loyalty runs the loyalty engine: the HTTP service and the tools
// around it (rules checking, database verification).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `loyalty: a loyalty-program engine

Usage:
  loyalty serve [--addr 127.0.0.1:8080] [--db loyalty.db|postgres://…] [--rules rules.yaml] [--test-clock]
  loyalty rules check FILE...
  loyalty rules simulate FILE --purchase p.json [--member m.json]
  loyalty rules diff OLD NEW (--db FILE [--last 30d] | --purchases FILE.json) [--json]
  loyalty verify --db FILE|postgres://…
  loyalty migrate --db postgres://…
  loyalty copy --from FILE --to postgres://…
  loyalty backup (--url URL [--key KEY] | --db FILE) --to FILE

Run "loyalty COMMAND -h" for the flags of a command.
`

// errUsage marks a command line that could not be understood; it exits 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code, so tests can
// drive the CLI without a process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "rules":
		err = runRules(ctx, args[1:], stdout, stderr)
	case "verify":
		err = runVerify(ctx, args[1:], stdout, stderr)
	case "backup":
		err = runBackup(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], stdout, stderr)
	case "copy":
		err = runCopy(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "loyalty: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &exit):
		return int(exit)
	}
	fmt.Fprintf(stderr, "loyalty: %v\n", err)
	return 1
}

// exitError ends a command with a code after it has printed its own output.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// envDefault returns the environment variable's value or def, so every flag
// can also be set from the environment.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses and turns a bad command line into errUsage (the flag
// package has already printed why).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
