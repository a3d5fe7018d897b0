package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// TestServeRefusesABadKeysFile starts serve on keys files that would run
// with a surprise: the role of a key given twice depends on the order of
// the file, a key of spaces is a key nobody chose, a misspelt field leaves
// a key without its role. Each must stop the start with a message that
// says which entry and why, before anything listens.
func TestServeRefusesABadKeysFile(t *testing.T) {
	cases := []struct{ name, file, want string }{
		{"same key twice", `
- {name: till, key: shared-key-0123456789, role: pos}
- {name: ops, key: shared-key-0123456789, role: admin}`, `key "ops": the same key as "till"`},
		{"key of spaces", `
- {name: ops, key: "                ", role: admin}`, `key "ops": the key is blank`},
		{"key with a space", `
- {name: ops, key: "admin key 0123456789", role: admin}`, `key "ops": the key may not contain spaces`},
		{"short key", `
- {name: ops, key: short, role: admin}`, `key "ops": the key must be at least 16 characters`},
		{"name twice", `
- {name: ops, key: admin-key-0123456789, role: admin}
- {name: ops, key: other-key-0123456789, role: pos}`, `key "ops": duplicate name`},
		{"misspelt field", `
- {name: ops, key: admin-key-0123456789, rol: admin}`, `field rol not found`},
		{"field twice", `
- {name: ops, key: admin-key-0123456789, role: pos, role: admin}`, `already defined`},
		{"blank name", `
- {name: " ", key: admin-key-0123456789, role: admin}`, `key 1: name is required`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keys, rulesPath := filepath.Join(dir, "keys.yaml"), filepath.Join(dir, "rules.yaml")
			os.WriteFile(keys, []byte(tc.file), 0o600)
			os.WriteFile(rulesPath, rules.Example, 0o644)
			// A serve that accepts the file runs until the context ends
			// and exits 0.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--keys", keys, "--db", filepath.Join(dir, "x.db"), "--rules", rulesPath}, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != 1 || !strings.Contains(out, tc.want) || !strings.Contains(out, keys) {
				t.Fatalf("exit %d, want 1 with %q:\n%s", code, tc.want, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
				t.Fatal("the database was opened before the keys were checked")
			}
		})
	}
}

// TestServeCORSOriginsNeedKeys: pages of other sites may only be let in
// where a key guards the API, and an origin must be exact.
func TestServeCORSOriginsNeedKeys(t *testing.T) {
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	for _, tc := range []struct{ origins, want string }{
		{"https://app.example", "--cors-origins needs --keys"},
		{"https://*.example", `origin "https://*.example": want a scheme and a host`},
	} {
		code, out := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--cors-origins", tc.origins, "--db", filepath.Join(dir, "x.db"), "--rules", rulesPath)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("--cors-origins %s: exit %d, want 1 with %q:\n%s", tc.origins, code, tc.want, out)
		}
	}
}
