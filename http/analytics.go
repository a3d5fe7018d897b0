package http

import (
	"bufio"
	"context"
	"encoding/csv"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
)

func (s *Server) analyticsSummary(c *fiber.Ctx) error {
	v, err := s.cfg.Engine.AnalyticsSummary(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// analyticsMembers lists members by segment, lifecycle stage and churn
// risk: a page of JSON, or with format=csv every match as a CSV stream for
// a campaign tool.
func (s *Server) analyticsMembers(c *fiber.Ctx) error {
	f := engine.AnalyticsFilter{Segment: query(c, "segment"), Lifecycle: query(c, "lifecycle")}
	if v := c.Query("churn_risk"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return engine.FieldErrorf(engine.EINVALID, "churn_risk", "must be true or false")
		}
		f.ChurnRisk = &b
	}
	if err := f.Validate(); err != nil {
		return err
	}
	switch c.Query("format") {
	case "", "json":
	case "csv":
		return s.analyticsCSV(c, f)
	default:
		return engine.FieldErrorf(engine.EINVALID, "format", "must be json or csv")
	}
	n, err := limit(c)
	if err != nil {
		return err
	}
	page, err := s.cfg.Engine.AnalyticsMembers(c.UserContext(), f, query(c, "cursor"), n)
	if err != nil {
		return err
	}
	return c.JSON(page)
}

// csvHeader names the columns of the export; csvRow fills them.
var csvHeader = []string{
	"id", "external_id", "email", "phone", "name", "status", "tier", "points",
	"segment", "lifecycle", "churn_risk", "recency_days", "frequency", "monetary",
	"r_score", "f_score", "m_score", "rfm", "usual_interval_days", "clv",
	"realised_value", "potential_value", "referrals", "referred_spend", "computed_at",
}

func csvRow(m engine.AnalyticsMember) []string {
	a := m.Analytics
	recency, interval := "", ""
	if a.RecencyDays != nil {
		recency = strconv.FormatInt(*a.RecencyDays, 10)
	}
	if a.UsualIntervalDays != nil {
		interval = strconv.FormatFloat(*a.UsualIntervalDays, 'f', -1, 64)
	}
	itoa := strconv.Itoa
	return []string{
		m.ID, cell(m.ExternalID), cell(m.Email), m.Phone, cell(m.Name), m.Status, cell(m.Tier),
		strconv.FormatInt(m.Points, 10),
		a.Segment, a.Lifecycle, strconv.FormatBool(a.ChurnRisk), recency,
		strconv.FormatInt(a.Frequency, 10), a.Monetary,
		itoa(a.RScore), itoa(a.FScore), itoa(a.MScore), a.RFM, interval, a.CLV,
		a.RealisedValue, a.PotentialValue, strconv.FormatInt(a.Referrals, 10), a.ReferredSpend,
		a.ComputedAt.Format(time.RFC3339),
	}
}

// cell keeps a member's own text from running as a formula when the export
// is opened in a spreadsheet.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvFlushRows is how many rows go out per network write.
const csvFlushRows = 1000

// analyticsCSV streams the export: the engine reads members in bounded
// transactions while rows go out, so a million members never sit in memory.
// Once the first row is sent the status cannot change, so an error
// afterwards ends the stream early and is logged.
func (s *Server) analyticsCSV(c *fiber.Ctx, f engine.AnalyticsFilter) error {
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="members.csv"`)
	eng, log, reqID, conn := s.cfg.Engine, s.log, c.Locals("request_id"), c.Context().Conn()
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		// The stream outlives the handler and its context.
		ctx, done := s.streamContext(conn)
		defer done()
		cw := csv.NewWriter(w)
		rows := 0
		flush := func() error {
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
			return w.Flush()
		}
		err := cw.Write(csvHeader)
		if err == nil {
			err = eng.EachAnalyticsMember(ctx, f, func(m engine.AnalyticsMember) error {
				if err := cw.Write(csvRow(m)); err != nil {
					return err
				}
				rows++
				if rows%csvFlushRows == 0 {
					return flush()
				}
				return nil
			})
		}
		if err == nil {
			err = flush()
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if err != nil {
			log.Error("analytics export stopped", "request_id", reqID, "rows", rows, "err", err)
		}
	})
	return nil
}
