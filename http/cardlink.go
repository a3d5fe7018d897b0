package http

import (
	"bytes"
	_ "embed"
	"html/template"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
)

// cardLinkRequest is the body of POST /v1/members/{id}/card-link; an empty
// body takes the default lifetime.
type cardLinkRequest struct {
	TTL string `json:"ttl"`
}

func (s *Server) postCardLink(c *fiber.Ctx) error {
	var req cardLinkRequest
	if len(c.Body()) > 0 {
		if err := decode(c, &req); err != nil {
			return err
		}
	}
	ttl, err := engine.CardLinkTTL(req.TTL)
	if err != nil {
		return err
	}
	link, err := s.cfg.Engine.IssueCardLink(c.UserContext(), param(c, "id"), ttl)
	if err != nil {
		return err
	}
	// The link names the host the till asked, as it reaches this server
	// (X-Forwarded-Host and -Proto when a proxy sets them).
	return c.JSON(fiber.Map{"url": c.Protocol() + "://" + c.Hostname() + "/m/" + link.Token, "expires_at": link.ExpiresAt})
}

//go:embed cardpage.html
var cardPageHTML string

var cardPage = template.Must(template.New("card").Parse(cardPageHTML))

// cardView is what the card page's template reads: the page, or nil for
// the page that says the link is not valid, and the few ways it writes
// figures.
type cardView struct {
	Page *engine.CardPage
}

// Progress is how far the member is to the next tier, 0 to 100.
func (v cardView) Progress() int {
	t := v.Page.Balance.Tier
	if t.Next == nil {
		return 100
	}
	have, err1 := strconv.ParseFloat(t.Value, 64)
	left, err2 := strconv.ParseFloat(t.Next.Remaining, 64)
	if err1 != nil || err2 != nil || have+left <= 0 {
		return 0
	}
	return int(100 * have / (have + left))
}

// Remaining is what the member still needs for the next tier, in the
// tier's metric.
func (v cardView) Remaining() string {
	t := v.Page.Balance.Tier
	if t.Metric == "spend" {
		return t.Next.Remaining + " " + v.Page.Currency
	}
	return t.Next.Remaining + " " + t.Metric
}

// Date writes a YYYY-MM-DD date as people read it.
func (v cardView) Date(d string) string {
	t, err := time.Parse(time.DateOnly, d)
	if err != nil {
		return d
	}
	return t.Format("2 Jan 2006")
}

// Time writes a time in the program's time zone.
func (v cardView) Time(t time.Time) string {
	return t.In(v.Page.Location).Format("2 Jan 2006 15:04")
}

// cardOffer is a reward as the card shows it.
type cardOffer struct {
	Title, Note string
	Cost        int64
	Available   bool
}

// Offers are the rewards the member can take now, and those they could
// with more points (what to aim for); rewards they may not have (not
// eligible, out of stock, taken already, out of season) are left out.
func (v cardView) Offers() []cardOffer {
	var out []cardOffer
	for _, r := range v.Page.Rewards {
		switch {
		case r.Available:
			out = append(out, cardOffer{Title: r.Title, Cost: r.Cost, Available: true, Note: "Yours to take"})
		case r.Reason != nil && *r.Reason == "insufficient_points":
			out = append(out, cardOffer{Title: r.Title, Cost: r.Cost, Note: strconv.FormatInt(r.Cost-v.Page.Balance.Available, 10) + " more points"})
		}
	}
	return out
}

// getCard answers the member card page, which needs no key: the token is
// the key. An invalid token gets the same 404 page whatever is wrong with
// it. The page loads nothing else and is not cached, framed, indexed or
// sent as a referrer, since its address is what opens it.
func (s *Server) getCard(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	c.Set("X-Robots-Tag", "noindex")
	page, err := s.cfg.Engine.Card(c.UserContext(), param(c, "token"))
	status := fiber.StatusOK
	switch {
	case engine.ErrorCode(err) == engine.ENOTFOUND:
		status = fiber.StatusNotFound
	case err != nil:
		return err
	}
	var out bytes.Buffer
	if err := cardPage.Execute(&out, cardView{Page: page}); err != nil {
		return err
	}
	c.Type("html", "utf-8")
	return c.Status(status).Send(out.Bytes())
}
