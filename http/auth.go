package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"

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
// comparison takes the same time whatever the key's length.
type Keys struct {
	keys []storedKey
}

type storedKey struct {
	name, role string
	digest     [sha256.Size]byte
}

// LoadKeys reads a keys file: a YAML list of {name, key, role}.
func LoadKeys(path string) (*Keys, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []Key
	if err := yaml.Unmarshal(src, &list); err != nil {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	return NewKeys(list)
}

// NewKeys validates a list of keys.
func NewKeys(list []Key) (*Keys, error) {
	ks := &Keys{}
	names := map[string]bool{}
	for i, k := range list {
		switch {
		case k.Name == "":
			return nil, fmt.Errorf("key %d: name is required", i+1)
		case names[k.Name]:
			return nil, fmt.Errorf("key %q: duplicate name", k.Name)
		case len(k.Key) < 16:
			return nil, fmt.Errorf("key %q: the key must be at least 16 characters", k.Name)
		}
		switch k.Role {
		case RoleAdmin, RoleMarketer, RolePOS, RoleReader:
		default:
			return nil, fmt.Errorf("key %q: role %q is not admin, marketer, pos or reader", k.Name, k.Role)
		}
		names[k.Name] = true
		ks.keys = append(ks.keys, storedKey{name: k.Name, role: k.Role, digest: sha256.Sum256([]byte(k.Key))})
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("the keys file lists no keys")
	}
	return ks, nil
}

// lookup finds the key; it compares against every key so the time taken
// does not tell which key came close.
func (ks *Keys) lookup(presented string) (storedKey, bool) {
	d := sha256.Sum256([]byte(presented))
	var found storedKey
	ok := false
	for _, k := range ks.keys {
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
