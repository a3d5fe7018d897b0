package http

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
)

func (s *Server) createWebhook(c *fiber.Ctx) error {
	var in engine.WebhookInput
	if err := decode(c, &in); err != nil {
		return err
	}
	w, err := s.cfg.Engine.CreateWebhook(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(w)
}

func (s *Server) listWebhooks(c *fiber.Ctx) error {
	ws, err := s.cfg.Engine.Webhooks(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"webhooks": ws})
}

func (s *Server) getWebhook(c *fiber.Ctx) error {
	w, err := s.cfg.Engine.Webhook(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(w)
}

func (s *Server) patchWebhook(c *fiber.Ctx) error {
	var in engine.WebhookInput
	if err := decode(c, &in); err != nil {
		return err
	}
	w, err := s.cfg.Engine.UpdateWebhook(c.UserContext(), param(c, "id"), in)
	if err != nil {
		return err
	}
	return c.JSON(w)
}

func (s *Server) deleteWebhook(c *fiber.Ctx) error {
	if err := s.cfg.Engine.DeleteWebhook(c.UserContext(), param(c, "id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) rotateWebhook(c *fiber.Ctx) error {
	// The overlap runs on the wall clock the delivery worker signs by,
	// not on the engine's clock, which a test clock may have moved.
	secret, err := s.cfg.Engine.RotateWebhookSecret(c.UserContext(), param(c, "id"), time.Now())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"secret": secret})
}

func (s *Server) testWebhook(c *fiber.Ctx) error {
	if err := s.cfg.Engine.TestWebhook(c.UserContext(), param(c, "id")); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "queued"})
}

func (s *Server) webhookDeliveries(c *fiber.Ctx) error {
	n, err := limit(c)
	if err != nil {
		return err
	}
	page, err := s.cfg.Engine.WebhookDeliveries(c.UserContext(), param(c, "id"), query(c, "status"), query(c, "cursor"), n)
	if err != nil {
		return err
	}
	return c.JSON(page)
}

func (s *Server) replayWebhook(c *fiber.Ctx) error {
	var in struct {
		Since string `json:"since"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	if in.Since == "" {
		return engine.FieldErrorf(engine.EINVALID, "since", "is required: an RFC 3339 time")
	}
	since, err := time.Parse(time.RFC3339Nano, in.Since)
	if err != nil {
		return engine.FieldErrorf(engine.EINVALID, "since", "must be an RFC 3339 time like 2026-12-01T00:00:00Z")
	}
	n, err := s.cfg.Engine.ReplayWebhook(c.UserContext(), param(c, "id"), since)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"deliveries": n})
}
