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
	"strings"
	"syscall"

	"github.com/loyaltyhq/loyalty/internal/version"
)

// usage is the top-level help. Its serve line is made from serve's flag
// set, so it lists every flag serve has.
func usage() string {
	return `loyalty: a loyalty-program engine

Usage:
` + serveUsage() + `
  loyalty rules check FILE... [--db FILE]
  loyalty rules simulate FILE --purchase p.json [--member m.json]
  loyalty rules diff OLD NEW (--db FILE [--last 30d] | --purchases FILE.json) [--json]
  loyalty verify --db FILE|postgres://…
  loyalty migrate --db postgres://…
  loyalty copy --from FILE --to postgres://…
  loyalty backup (--url URL [--key KEY] | --db FILE) --to FILE
  loyalty health [--url URL] [--insecure]
  loyalty import FILE [--url URL] [--key KEY]
  loyalty version

Every flag of serve can also be set by its environment variable:
LOYALTY_ and the flag's name in capitals (--cors-origins is
LOYALTY_CORS_ORIGINS). Run "loyalty COMMAND -h" for what each flag means.
`
}

// serveUsage is "loyalty serve" and every flag of serve, wrapped.
func serveUsage() string {
	var b strings.Builder
	line := "  loyalty serve"
	serveFlags(&Config{}, io.Discard).VisitAll(func(f *flag.Flag) {
		word := "[--" + f.Name
		if name, _ := flag.UnquoteUsage(f); name != "" {
			word += " " + name
		}
		word += "]"
		if len(line)+1+len(word) > 80 {
			b.WriteString(line + "\n")
			line = "       "
		}
		line += " " + word
	})
	b.WriteString(line)
	return b.String()
}

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
		fmt.Fprint(stderr, usage())
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
	case "health":
		err = runHealth(ctx, args[1:], stdout, stderr)
	case "import":
		err = runImport(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.Get())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	default:
		fmt.Fprintf(stderr, "loyalty: unknown command %q\n\n%s", args[0], usage())
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
