package http

import (
	"bufio"
	"encoding/csv"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
)

func (s *Server) listRewards(c *fiber.Ctx) error {
	catalogue, offers, err := s.cfg.Engine.Rewards(c.UserContext(), query(c, "member_id"))
	if err != nil {
		return err
	}
	if offers != nil {
		return c.JSON(fiber.Map{"rewards": offers})
	}
	return c.JSON(fiber.Map{"rewards": catalogue})
}

func (s *Server) takeReward(c *fiber.Ctx) error {
	var req engine.RewardRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	res, replayed, err := s.cfg.Engine.TakeReward(c.UserContext(), param(c, "id"), req)
	if err != nil {
		return err
	}
	if !replayed {
		s.metrics.redeemed.Add(float64(max(-res.Points, 0)))
	}
	return created(c, res, replayed)
}

func (s *Server) memberCoupons(c *fiber.Ctx) error {
	cs, err := s.cfg.Engine.MemberCoupons(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"coupons": cs})
}

func (s *Server) getCoupon(c *fiber.Ctx) error {
	v, err := s.cfg.Engine.Coupon(c.UserContext(), param(c, "code"))
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) useCoupon(c *fiber.Ctx) error {
	var req engine.CouponUse
	if err := decode(c, &req); err != nil {
		return err
	}
	v, replayed, err := s.cfg.Engine.UseCoupon(c.UserContext(), param(c, "code"), req)
	if err != nil {
		return err
	}
	if replayed {
		c.Set("Idempotent-Replayed", "true")
	}
	return c.JSON(v)
}

func (s *Server) cancelCoupon(c *fiber.Ctx) error {
	v, err := s.cfg.Engine.CancelCoupon(c.UserContext(), param(c, "code"), whoIs(c).role == RoleAdmin)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// rewardsReport answers the coupons of each reward, as JSON or, with
// format=csv, as a CSV file.
func (s *Server) rewardsReport(c *fiber.Ctx) error {
	format := c.Query("format")
	if format != "" && format != "json" && format != "csv" {
		return engine.FieldErrorf(engine.EINVALID, "format", "must be json or csv")
	}
	rep, err := s.cfg.Engine.RewardsReport(c.UserContext())
	if err != nil {
		return err
	}
	if format != "csv" {
		return c.JSON(fiber.Map{"rewards": rep})
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="rewards.csv"`)
	w := bufio.NewWriter(c.Response().BodyWriter())
	cw := csv.NewWriter(w)
	rows := [][]string{{"reward", "title", "issued", "used", "expired", "cancelled", "outstanding", "points_spent", "stock_left"}}
	for _, r := range rep {
		stock := ""
		if r.StockLeft != nil {
			stock = strconv.FormatInt(*r.StockLeft, 10)
		}
		n := func(v int64) string { return strconv.FormatInt(v, 10) }
		rows = append(rows, []string{r.Reward, cell(r.Title), n(r.Issued), n(r.Used), n(r.Expired), n(r.Cancelled), n(r.Outstanding), n(r.PointsSpent), stock})
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return w.Flush()
}

// Guessing coupon codes. A code has 50 random bits, so a guess finds one of
// n live coupons with a chance of n in 2^50; guessGuard also bounds the
// guesses: each caller (an API key, or the client's address when the
// server runs without keys) may look up a few codes that do not exist,
// and then one per interval, and meanwhile every coupon request it makes
// is answered 429 rate_limited, the coupons it knows included, so the
// limit tells nothing either. docs/API.md works the figures out.

// GuessLimit bounds a caller's lookups of unknown coupon codes: Burst at
// once, then one per Every.
type GuessLimit struct {
	Burst int
	Every time.Duration
}

// DefaultGuessLimit lets a till mistype a code 20 times, then once a
// minute: about half a million guesses a year per key.
var DefaultGuessLimit = GuessLimit{Burst: 20, Every: time.Minute}

// guessGuard keeps a token bucket of misses per caller.
type guessGuard struct {
	limit GuessLimit
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*guessBucket
}

type guessBucket struct {
	tokens float64
	at     time.Time
}

// maxGuessBuckets bounds the callers remembered; past it, those whose
// allowance has refilled are forgotten, which changes nothing for them.
const maxGuessBuckets = 10_000

func newGuessGuard(limit GuessLimit, now func() time.Time) *guessGuard {
	if limit.Burst <= 0 || limit.Every <= 0 {
		limit = DefaultGuessLimit
	}
	return &guessGuard{limit: limit, now: now, buckets: map[string]*guessBucket{}}
}

// bucket returns who's bucket, refilled to now; the caller holds mu.
func (g *guessGuard) bucket(who string) *guessBucket {
	now := g.now()
	b := g.buckets[who]
	if b == nil {
		if len(g.buckets) >= maxGuessBuckets {
			for k, old := range g.buckets {
				if g.refill(old, now) >= float64(g.limit.Burst) {
					delete(g.buckets, k)
				}
			}
		}
		b = &guessBucket{tokens: float64(g.limit.Burst), at: now}
		g.buckets[who] = b
	}
	b.tokens, b.at = g.refill(b, now), now
	return b
}

func (g *guessGuard) refill(b *guessBucket, now time.Time) float64 {
	gained := float64(now.Sub(b.at)) / float64(g.limit.Every)
	return math.Min(float64(g.limit.Burst), b.tokens+math.Max(gained, 0))
}

// wait tells how long who must wait before its next coupon request; zero
// when it may make one now.
func (g *guessGuard) wait(who string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.bucket(who)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(g.limit.Every))
}

// miss spends one of who's guesses.
func (g *guessGuard) miss(who string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.bucket(who)
	b.tokens = math.Max(b.tokens-1, 0)
}

// guardCoupons answers 429 to a caller out of guesses, and charges a guess
// for every coupon request whose code exists nowhere.
func (s *Server) guardCoupons(c *fiber.Ctx) error {
	who := "address " + c.IP()
	if s.cfg.Keys != nil {
		who = "key " + whoIs(c).name
	}
	if wait := s.guesses.wait(who); wait > 0 {
		secs := int64(math.Ceil(wait.Seconds()))
		c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(secs, 10))
		return engine.Errorf(engine.ERATELIMITED, "too many lookups of coupon codes that do not exist: try again in %d s", secs)
	}
	err := c.Next()
	if engine.ErrorCode(err) == engine.ENOTFOUND {
		s.guesses.miss(who)
	}
	return err
}
