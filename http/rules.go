package http

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
)

// rulesBody returns the rules text of a request: the body itself, as a
// marketer's tool or curl --data-binary @rules.yaml sends it.
func rulesBody(c *fiber.Ctx) ([]byte, error) {
	src := append([]byte(nil), c.Body()...)
	if len(src) == 0 {
		return nil, engine.Errorf(engine.EINVALID, "send the rules file as the body")
	}
	return src, nil
}

func (s *Server) getRules(c *fiber.Ctx) error {
	prog, v := s.cfg.Engine.Program()
	if prog == nil {
		return engine.Errorf(engine.EINTERNAL, "no rules loaded")
	}
	return c.JSON(liveRulesView{
		Version: v.Version, Hash: v.Hash, LoadedAt: v.LoadedAt, By: v.By,
		LastError: s.cfg.Engine.LastRulesError(), Source: v.Source,
	})
}

// liveRulesView is GET /v1/rules: the source comes last so the short fields
// stay readable in a terminal.
type liveRulesView struct {
	Version   int                `json:"version"`
	Hash      string             `json:"hash"`
	LoadedAt  time.Time          `json:"loaded_at"`
	By        string             `json:"by"`
	LastError *engine.RulesError `json:"last_error"`
	Source    string             `json:"source"`
}

// putRules publishes new rules, writing them to the rules file before they
// go live, so the file on disk always holds what is live.
func (s *Server) putRules(c *fiber.Ctx) error {
	src, err := rulesBody(c)
	if err != nil {
		return err
	}
	v, err := s.cfg.Engine.PublishRules(c.UserContext(), "rules", src, whoIs(c).name, s.cfg.SaveRules)
	if err != nil {
		return err
	}
	return c.JSON(versionView{Version: v.Version, Hash: v.Hash, LoadedAt: v.LoadedAt, By: v.By})
}

func (s *Server) validateRules(c *fiber.Ctx) error {
	src, err := rulesBody(c)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Engine.CheckRules(c.UserContext(), "rules", src); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"ok": true})
}

func (s *Server) simulateRules(c *fiber.Ctx) error {
	var req engine.SimulateRequest
	if err := decode(c, &req, "rules"); err != nil {
		return err
	}
	res, err := s.cfg.Engine.Simulate(c.UserContext(), req)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// diffRequest compares the live rules (or old) with new over the purchases
// of the last period.
type diffRequest struct {
	Old  string `json:"old"`
	New  string `json:"new"`
	Last string `json:"last"`
}

// diffRules takes either JSON ({"old", "new", "last"}) or, for curl
// --data-binary @new.yaml, the new rules text as the body with ?last=.
func (s *Server) diffRules(c *fiber.Ctx) error {
	var req diffRequest
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationJSON) {
		if err := decode(c, &req, "old", "new"); err != nil {
			return err
		}
	} else {
		req.New, req.Last = string(c.Body()), query(c, "last")
	}
	if req.New == "" {
		return engine.FieldErrorf(engine.EINVALID, "new", "is required: the rules text to compare")
	}
	before, _ := s.cfg.Engine.Program()
	if req.Old != "" {
		var err error
		if before, err = s.cfg.Engine.CheckRules(c.UserContext(), "old", []byte(req.Old)); err != nil {
			return err
		}
	}
	after, err := s.cfg.Engine.CheckRules(c.UserContext(), "new", []byte(req.New))
	if err != nil {
		return err
	}
	last := req.Last
	if last == "" {
		last = "30d"
	}
	d, err := rules.ParseDuration(last)
	if err != nil {
		return engine.FieldErrorf(engine.EINVALID, "last", "must be a duration like 30d or 3mo")
	}
	now := s.cfg.Engine.Now()
	since := now.AddDate(0, -d.Months, 0).Add(-d.Fixed)
	rep, err := s.cfg.Engine.DiffRules(c.UserContext(), before, after, since)
	if err != nil {
		return err
	}
	return c.JSON(rep)
}

func (s *Server) rulesSchema(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "application/schema+json")
	return c.Send(rules.Schema)
}

func (s *Server) listEvents(c *fiber.Ctx) error {
	n, err := limit(c)
	if err != nil {
		return err
	}
	// after is the cursor's name before the feed was documented.
	cursor := query(c, "cursor")
	if cursor == "" {
		cursor = query(c, "after")
	}
	page, err := s.cfg.Engine.Events(c.UserContext(), cursor, query(c, "type"), n)
	if err != nil {
		return err
	}
	return c.JSON(page)
}

// versionView is a rules version in a list: the text is left out to keep
// the list small; GET /v1/rules/versions/{n} has it.
type versionView struct {
	Version  int       `json:"version"`
	Hash     string    `json:"hash"`
	LoadedAt time.Time `json:"loaded_at"`
	By       string    `json:"by"`
	Source   string    `json:"source,omitempty"`
}
