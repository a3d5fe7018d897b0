package http

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"unicode"

	"github.com/gofiber/fiber/v2"
	"go.yaml.in/yaml/v3"

	"github.com/loyaltyhq/loyalty/engine"
)

// Roles an API key can have.
const (
	RoleAdmin    = "admin"
	RoleMarketer = "marketer"
	RolePOS      = "pos"
	RoleReader   = "reader"
)

// Key is one API key of the keys file.
type Key struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
	Role string `yaml:"role"`
}

// Keys holds the API keys. Keys are kept as SHA-256 digests so every
// comparison takes the same time whatever the key's length. The set can be
// replaced while the server runs (Replace), so keys rotate without a
// restart.
type Keys struct {
	keys atomic.Pointer[[]storedKey]
}

type storedKey struct {
	name, role string
	digest     [sha256.Size]byte
}

// LoadKeys reads a keys file: a YAML list of {name, key, role}. A field
// the list does not know is an error, so a misspelt role never leaves a
// key without one.
func LoadKeys(path string) (*Keys, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []Key
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil && err != io.EOF {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	ks, err := NewKeys(list)
	if err != nil {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	return ks, nil
}

// MinKeyLen is the shortest API key accepted.
const MinKeyLen = 16

// NewKeys validates a list of keys. Two entries with one key would leave
// the role it gets to the order of the file, and a key with spaces is one
// nobody can send in a header as written, so both are refused.
func NewKeys(list []Key) (*Keys, error) {
	var keys []storedKey
	names := map[string]bool{}
	owner := map[string]string{} // key → name of its entry
	for i, k := range list {
		switch {
		case strings.TrimSpace(k.Name) == "":
			return nil, fmt.Errorf("key %d: name is required", i+1)
		case names[k.Name]:
			return nil, fmt.Errorf("key %q: duplicate name", k.Name)
		case strings.TrimSpace(k.Key) == "":
			return nil, fmt.Errorf("key %q: the key is blank", k.Name)
		case strings.IndexFunc(k.Key, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0:
			return nil, fmt.Errorf("key %q: the key may not contain spaces or control characters", k.Name)
		case len(k.Key) < MinKeyLen:
			return nil, fmt.Errorf("key %q: the key must be at least %d characters", k.Name, MinKeyLen)
		case owner[k.Key] != "":
			return nil, fmt.Errorf("key %q: the same key as %q; give each key its own", k.Name, owner[k.Key])
		}
		switch k.Role {
		case RoleAdmin, RoleMarketer, RolePOS, RoleReader:
		default:
			return nil, fmt.Errorf("key %q: role %q is not admin, marketer, pos or reader", k.Name, k.Role)
		}
		names[k.Name], owner[k.Key] = true, k.Name
		keys = append(keys, storedKey{name: k.Name, role: k.Role, digest: sha256.Sum256([]byte(k.Key))})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("the keys file lists no keys")
	}
	ks := &Keys{}
	ks.keys.Store(&keys)
	return ks, nil
}

// Replace makes other's keys the ones accepted, at once for every request
// that starts after it; other was validated when it was made.
func (ks *Keys) Replace(other *Keys) { ks.keys.Store(other.keys.Load()) }

// Names lists the keys' names, in file order, for the log.
func (ks *Keys) Names() []string {
	var names []string
	for _, k := range *ks.keys.Load() {
		names = append(names, k.name)
	}
	return names
}

// lookup finds the key; it compares against every key so the time taken
// does not tell which key came close.
func (ks *Keys) lookup(presented string) (storedKey, bool) {
	d := sha256.Sum256([]byte(presented))
	var found storedKey
	ok := false
	for _, k := range *ks.keys.Load() {
		if subtle.ConstantTimeCompare(d[:], k.digest[:]) == 1 {
			found, ok = k, true
		}
	}
	return found, ok
}

// caller is who made a request.
type caller struct {
	name, role string
}

// authenticate resolves the bearer key. Without a keys file every request
// acts as an open admin; the server then listens on loopback only.
func (s *Server) authenticate(c *fiber.Ctx) error {
	if s.cfg.Keys == nil {
		c.Locals("caller", caller{name: "open", role: RoleAdmin})
		return c.Next()
	}
	h := c.Get(fiber.HeaderAuthorization)
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return engine.Errorf(engine.EUNAUTHORIZED, "send an API key as Authorization: Bearer <key>")
	}
	k, ok := s.cfg.Keys.lookup(token)
	if !ok {
		return engine.Errorf(engine.EUNAUTHORIZED, "unknown API key")
	}
	c.Locals("caller", caller{name: k.name, role: k.role})
	return c.Next()
}

// allow lets a route through for the roles given; admin may do everything.
func allow(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		who := whoIs(c)
		if who.role == RoleAdmin {
			return c.Next()
		}
		for _, r := range roles {
			if r == who.role {
				return c.Next()
			}
		}
		return engine.Errorf(engine.EFORBIDDEN, "a %s key may not %s %s", who.role, c.Method(), c.Route().Path)
	}
}

func whoIs(c *fiber.Ctx) caller {
	who, _ := c.Locals("caller").(caller)
	return who
}

// The permission of each route: every role reads, tills write purchases
// and points, marketers write rules, and admin does everything.
var (
	anyRole   = allow(RoleMarketer, RolePOS, RoleReader)
	adminOnly = allow()
	pos       = allow(RolePOS)
	marketer  = allow(RoleMarketer)
)
