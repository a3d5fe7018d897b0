package http

import (
	"embed"
	"io/fs"
	nethttp "net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/loyaltyhq/loyalty/engine"
)

// The console is static files (plain ES modules and vendored libraries,
// with no build step) embedded in the binary; it calls only the public
// /v1 API with the key the person signed in with, so it can do nothing a
// key cannot do with curl.
//
//go:embed console
var consoleFiles embed.FS

// consoleHandler serves /console/. Its pages load only their own files:
// the policy forbids other origins, inline scripts and framing.
func consoleHandler() fiber.Handler {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	files := filesystem.New(filesystem.Config{Root: nethttp.FS(sub), Index: "index.html"})
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		c.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		c.Set("X-Content-Type-Options", "nosniff")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return files(c)
	}
}

// faceRoutes are the routes for people: the console, the member card page,
// and the few reads they need.
func (s *Server) faceRoutes(app *fiber.App, v1 fiber.Router) {
	app.Get("/m/:token", s.getCard)
	app.Get("/console", func(c *fiber.Ctx) error {
		// The route also matches /console/ (routing is not strict).
		if c.Path() != "/console" {
			return c.Next()
		}
		return c.Redirect("/console/", fiber.StatusMovedPermanently)
	})
	app.Use("/console/", consoleHandler())
	v1.Get("/whoami", anyRole, s.whoami)
	v1.Post("/members/:id/card-link", pos, s.postCardLink)
	v1.Get("/analytics/points", marketer, s.longRead, s.pointsByDay)
}

// whoami tells a caller its own key's name and role, and how the program
// writes money and times, so a client (the console) offers only what the
// key may do. It tells nothing about other keys.
func (s *Server) whoami(c *fiber.Ctx) error {
	who := whoIs(c)
	prog, v := s.cfg.Engine.Program()
	body := fiber.Map{"name": who.name, "role": who.role, "open": s.cfg.Keys == nil, "test_clock": s.cfg.TestClock != nil}
	if prog != nil {
		body["program"] = fiber.Map{
			"name": prog.Name, "currency": prog.Currency, "currency_digits": prog.CurrencyDigits,
			"timezone": prog.Location.String(), "rules_version": v.Version,
		}
	}
	return c.JSON(body)
}

// searchMembers answers GET /v1/members?name=…, a page of the members
// whose name holds it; it takes no other key.
func (s *Server) searchMembers(c *fiber.Ctx, name string) error {
	for _, k := range []string{engine.KeyExternalID, engine.KeyEmail, engine.KeyPhone} {
		if c.Query(k) != "" {
			return engine.Errorf(engine.EINVALID, "look members up by one of external_id, email, phone or name")
		}
	}
	n, err := limit(c)
	if err != nil {
		return err
	}
	page, err := s.cfg.Engine.SearchMembers(c.UserContext(), name, query(c, "cursor"), n)
	if err != nil {
		return err
	}
	return c.JSON(page)
}

// pointsByDay answers the points earned, redeemed, expired and deducted
// per day of the last days (default 30).
func (s *Server) pointsByDay(c *fiber.Ctx) error {
	days := 30
	if q := c.Query("days"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil {
			return engine.FieldErrorf(engine.EINVALID, "days", "must be a whole number from 1 to %d", engine.MaxPointsDays)
		}
		days = n
	}
	out, err := s.cfg.Engine.PointsByDay(c.UserContext(), days)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"days": out})
}
