// Package pgtest gives tests throwaway PostgreSQL databases on the server
// that LOYALTY_TEST_POSTGRES names (.ci/postgres starts one). Without it,
// tests that need PostgreSQL skip, saying so; with LOYALTY_REQUIRE_POSTGRES=1
// (as CI sets) they fail instead, so CI never skips them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the variables this package reads.
const (
	EnvServer  = "LOYALTY_TEST_POSTGRES"
	EnvRequire = "LOYALTY_REQUIRE_POSTGRES"
)

// Available tells whether a test server is configured.
func Available() bool { return os.Getenv(EnvServer) != "" }

// Skip skips tb unless a test server is configured, or fails it when one
// is required.
func Skip(tb testing.TB) {
	tb.Helper()
	if Available() {
		return
	}
	if os.Getenv(EnvRequire) == "1" {
		tb.Fatalf("%s is not set but %s=1: PostgreSQL tests must run", EnvServer, EnvRequire)
	}
	tb.Skipf("%s is not set; skipping PostgreSQL tests", EnvServer)
}

// URL creates an empty database for tb and returns its URL; the database
// is dropped when tb ends.
func URL(tb testing.TB) string {
	tb.Helper()
	Skip(tb)
	server := os.Getenv(EnvServer)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "loyalty_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("pgtest: connect to %s: %v", EnvServer, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() { drop(tb, server, name) })
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("pgtest: %s: %v", EnvServer, err)
	}
	u.Path = "/" + name
	return u.String()
}

func drop(tb testing.TB, server, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Errorf("pgtest: drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		tb.Errorf("pgtest: drop %s: %v", name, err)
	}
}
