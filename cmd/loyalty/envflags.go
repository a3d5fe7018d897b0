package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// envName is the environment variable that sets a flag: LOYALTY_ and the
// flag's name in capitals, dashes as underscores (--cors-origins is
// LOYALTY_CORS_ORIGINS).
func envName(flagName string) string {
	return "LOYALTY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envFlags is the one way the commands read their environment: it sets the
// named flags of fs (every flag when none is named) from their variables
// (envName), through the flag's own parser, so a variable takes exactly
// what the flag takes and a value the flag refuses is an error naming the
// variable, not a silent default. Each such flag's help says its variable.
// The command line, parsed after, still wins.
func envFlags(fs *flag.FlagSet, names ...string) error {
	if len(names) == 0 {
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	}
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			panic("envFlags: no flag --" + name)
		}
		env := envName(name)
		f.Usage += " (env " + env + ")"
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	}
	return nil
}

// boolFlag is a switch that reads true and false the same way from the
// command line and from the environment: 1, t, true, y, yes, on or 0, f,
// false, n, no, off, in any case; anything else is refused.
type boolFlag bool

func (b *boolFlag) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "y", "yes", "on":
		*b = true
	case "0", "f", "false", "n", "no", "off":
		*b = false
	default:
		return fmt.Errorf("%q is not a yes or a no: use true or false (also 1/0, yes/no, on/off)", s)
	}
	return nil
}

func (b *boolFlag) String() string {
	if b != nil && *b {
		return "true"
	}
	return "false"
}

// IsBoolFlag lets --flag stand for --flag=true.
func (b *boolFlag) IsBoolFlag() bool { return true }
