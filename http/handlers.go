package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/version"
)

// decode reads a JSON body strictly (DecodeJSON); textFields name the
// fields that carry a file's text.
func decode(c *fiber.Ctx, v any, textFields ...string) error {
	return DecodeJSON(c.Body(), v, textFields...)
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return engine.Errorf(engine.EINVALID, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return engine.Errorf(engine.EINVALID, "the body must be a JSON %s", typ.Type.Kind())
		}
		want := typ.Type.Kind().String()
		switch {
		case strings.HasSuffix(field, "amount"):
			want = `decimal string like "12.50"`
		case want == "int64":
			want = "whole number"
		}
		return engine.FieldErrorf(engine.EINVALID, field, "must be a %s, not a JSON %s", want, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return engine.Errorf(engine.EINVALID, "malformed JSON: the body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return engine.FieldErrorf(engine.EINVALID, name, "is not a known field")
	}
	return engine.Errorf(engine.EINVALID, "malformed JSON: %v", err)
}

// param returns a path parameter, percent-decoded as a path segment is:
// the router sees the path as sent (UnescapePath is off), so an escaped
// "/" stays inside its segment, and "+" stays a plus where fiber's own
// unescaping, made for query strings, turned it into a space. A malformed
// escape is taken as written. The copy leaves fasthttp's reusable buffer
// behind.
func param(c *fiber.Ctx, name string) string {
	raw := utils.CopyString(c.Params(name))
	if s, err := url.PathUnescape(raw); err == nil {
		return s
	}
	return raw
}

func query(c *fiber.Ctx, name string) string { return utils.CopyString(c.Query(name)) }

// limit reads a page size: absent is the default, and 0 is refused like
// 501, so that a client asking for "none" learns that it gets a page.
func limit(c *fiber.Ctx) (int, error) {
	s := c.Query("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > engine.MaxPageSize {
		return 0, engine.FieldErrorf(engine.EINVALID, "limit", "must be a whole number from 1 to %d; leave it out for %d", engine.MaxPageSize, engine.DefaultPageSize)
	}
	return n, nil
}

// created answers a write that may be a replay: 201 the first time, 200 with
// Idempotent-Replayed after.
func created(c *fiber.Ctx, v any, replayed bool) error {
	if replayed {
		c.Set("Idempotent-Replayed", "true")
		return c.Status(fiber.StatusOK).JSON(v)
	}
	return c.Status(fiber.StatusCreated).JSON(v)
}

// healthz answers 503 while the server cannot do its job: before the rules
// are loaded, and while the store fails writes, until one succeeds again.
// healthz answers whether this server can take writes, and which build
// it is, so that a rollout can be watched from the health checks.
func (s *Server) healthz(c *fiber.Ctx) error {
	v := version.Get()
	answer := func(status int, body fiber.Map) error {
		body["version"], body["commit"] = v.Version, v.Commit
		return c.Status(status).JSON(body)
	}
	if prog, _ := s.cfg.Engine.Program(); prog == nil {
		return answer(fiber.StatusServiceUnavailable, fiber.Map{"status": "starting"})
	}
	if s.cfg.Health != nil {
		if err := s.cfg.Health(c.UserContext()); err != nil {
			// The reason stays in the log: /healthz needs no key.
			s.log.Warn("health check: the database does not answer", "err", err)
			return answer(fiber.StatusServiceUnavailable, fiber.Map{"status": "unavailable", "reason": "the database does not answer"})
		}
	}
	if h := s.cfg.Engine.StoreHealth(c.UserContext()); h.Failing {
		return answer(fiber.StatusServiceUnavailable, fiber.Map{
			"status": "failing", "since": h.Since,
			"reason": "the database refuses writes: " + h.Err,
		})
	}
	return answer(fiber.StatusOK, fiber.Map{"status": "ok"})
}

func (s *Server) getClock(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"now": s.cfg.Engine.Now()})
}

func (s *Server) setClock(c *fiber.Ctx) error {
	if s.cfg.TestClock == nil {
		return engine.Errorf(engine.EFORBIDDEN, "the clock can only be moved when the server runs with --test-clock")
	}
	var req engine.ClockRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	now, err := s.cfg.Engine.MoveClock(c.UserContext(), req)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"now": now})
}

func (s *Server) createMember(c *fiber.Ctx) error {
	var in engine.MemberInput
	if err := decode(c, &in); err != nil {
		return err
	}
	m, replayed, err := s.cfg.Engine.Enrol(c.UserContext(), in)
	if err != nil {
		return err
	}
	return created(c, m, replayed)
}

func (s *Server) findMembers(c *fiber.Ctx) error {
	if name := query(c, "name"); name != "" {
		return s.searchMembers(c, name)
	}
	var key, value string
	for _, k := range []string{engine.KeyExternalID, engine.KeyEmail, engine.KeyPhone} {
		if v := query(c, k); v != "" {
			if key != "" {
				return engine.Errorf(engine.EINVALID, "look members up by one of external_id, email, phone or name")
			}
			key, value = k, v
		}
	}
	if key == "" {
		return engine.Errorf(engine.EINVALID, "look members up by external_id, email, phone or name")
	}
	ms, err := s.cfg.Engine.FindMembers(c.UserContext(), key, value)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"members": ms})
}

func (s *Server) getMember(c *fiber.Ctx) error {
	m, err := s.cfg.Engine.Member(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func (s *Server) patchMember(c *fiber.Ctx) error {
	var p engine.MemberPatch
	if err := decode(c, &p); err != nil {
		return err
	}
	if p.Status != nil && whoIs(c).role != RoleAdmin {
		return engine.Errorf(engine.EFORBIDDEN, "only an admin key may block or unblock a member")
	}
	m, err := s.cfg.Engine.UpdateMember(c.UserContext(), param(c, "id"), p)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func (s *Server) getBalance(c *fiber.Ctx) error {
	b, err := s.cfg.Engine.Balance(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(b)
}

func (s *Server) getLedger(c *fiber.Ctx) error {
	n, err := limit(c)
	if err != nil {
		return err
	}
	page, err := s.cfg.Engine.Ledger(c.UserContext(), param(c, "id"), query(c, "cursor"), n)
	if err != nil {
		return err
	}
	return c.JSON(page)
}

func (s *Server) postPurchase(c *fiber.Ctx) error {
	var req engine.PurchaseRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	res, replayed, err := s.cfg.Engine.Purchase(c.UserContext(), req)
	if err != nil {
		return err
	}
	if !replayed {
		s.metrics.purchases.Inc()
	}
	return created(c, res, replayed)
}

func (s *Server) getPurchase(c *fiber.Ctx) error {
	p, err := s.cfg.Engine.GetPurchase(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(p)
}

func (s *Server) listRulesVersions(c *fiber.Ctx) error {
	vs, err := s.cfg.Engine.RulesVersions(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]versionView, len(vs))
	for i, v := range vs {
		out[i] = versionView{Version: v.Version, Hash: v.Hash, LoadedAt: v.LoadedAt, By: v.By}
	}
	return c.JSON(fiber.Map{"versions": out})
}

func (s *Server) getRulesVersion(c *fiber.Ctx) error {
	n, err := strconv.Atoi(c.Params("n"))
	if err != nil || n < 1 {
		return engine.Errorf(engine.ENOTFOUND, "rules version %q not found", c.Params("n"))
	}
	v, err := s.cfg.Engine.RulesVersion(c.UserContext(), n)
	if err != nil {
		return err
	}
	return c.JSON(versionView{Version: v.Version, Hash: v.Hash, LoadedAt: v.LoadedAt, By: v.By, Source: v.Source})
}

func (s *Server) listJobs(c *fiber.Ctx) error {
	jobs, err := s.cfg.Engine.Jobs(c.UserContext())
	if err != nil {
		return err
	}
	if s.cfg.NextRun != nil {
		for i := range jobs {
			if t, ok := s.cfg.NextRun(jobs[i].Name); ok {
				jobs[i].NextRun = &t
			}
		}
	}
	return c.JSON(jobs)
}

func (s *Server) runJob(c *fiber.Ctx) error {
	run, err := s.cfg.Engine.RunJob(c.UserContext(), param(c, "name"))
	if err != nil {
		return err
	}
	if run.Error != "" {
		return fmt.Errorf("job %s failed: %s", run.Name, run.Error)
	}
	return c.JSON(run)
}

func (s *Server) postRefund(c *fiber.Ctx) error {
	var req engine.RefundRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	res, replayed, err := s.cfg.Engine.Refund(c.UserContext(), param(c, "id"), req)
	if err != nil {
		return err
	}
	return created(c, res, replayed)
}

func (s *Server) postRedemption(c *fiber.Ctx) error {
	var req engine.RedemptionRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	res, replayed, err := s.cfg.Engine.Redeem(c.UserContext(), param(c, "id"), req)
	if err != nil {
		return err
	}
	return created(c, res, replayed)
}

func (s *Server) cancelRedemption(c *fiber.Ctx) error {
	res, err := s.cfg.Engine.CancelRedemption(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (s *Server) postAdjustment(c *fiber.Ctx) error {
	var req engine.AdjustmentRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	res, replayed, err := s.cfg.Engine.Adjust(c.UserContext(), param(c, "id"), whoIs(c).name, req)
	if err != nil {
		return err
	}
	return created(c, res, replayed)
}
