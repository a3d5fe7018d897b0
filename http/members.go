package http

import (
	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
)

func (s *Server) postTransfer(c *fiber.Ctx) error {
	var req engine.TransferRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	res, replayed, err := s.cfg.Engine.Transfer(c.UserContext(), req)
	if err != nil {
		return err
	}
	return created(c, res, replayed)
}

func (s *Server) mergeMember(c *fiber.Ctx) error {
	var req engine.MergeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	m, err := s.cfg.Engine.Merge(c.UserContext(), param(c, "id"), req)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func (s *Server) exportMember(c *fiber.Ctx) error {
	x, err := s.cfg.Engine.ExportMember(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(x)
}

func (s *Server) eraseMember(c *fiber.Ctx) error {
	m, err := s.cfg.Engine.Erase(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(m)
}
