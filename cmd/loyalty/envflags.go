package main

import (
	"flag"
	"fmt"
	"os"
)

// envFlags sets flags from environment variables (flag name to variable),
// for flags whose type has no string default to pass to envDefault. The
// command line, parsed after, still wins.
func envFlags(fs *flag.FlagSet, vars map[string]string) error {
	for name, env := range vars {
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	}
	return nil
}
