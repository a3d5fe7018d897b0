// Package http serves the loyalty API over HTTP with fiber. It decodes
// requests, calls the engine and encodes answers; it computes nothing
// itself, and one error handler maps engine error codes to statuses.
package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/loyaltyhq/loyalty/engine"
)

// BodyLimit is the largest request body accepted.
const BodyLimit = 1 << 20

// Config wires a Server.
type Config struct {
	Engine *engine.Engine
	Logger *slog.Logger
	// AccessLogger writes the one line per request; nil means Logger. The
	// command gives it a buffered writer (a write per request costs more
	// than the line).
	AccessLogger *slog.Logger
	// TestClock, when set, lets POST /v1/clock move the engine's time.
	TestClock *engine.TestClock
	// NextRun tells when a job runs next, if it is scheduled.
	NextRun func(job string) (time.Time, bool)
	// Keys are the API keys; nil leaves the API open (loopback only), and
	// refuses requests addressed to other hosts or sent by other sites'
	// pages.
	Keys *Keys
	// CORSOrigins are the web origins whose pages may call the API (see
	// ParseOrigins); none sends no CORS headers.
	CORSOrigins []string
	// Metrics are served on /metrics; nil makes a fresh set.
	Metrics *Metrics
	// Backup writes a consistent copy of the database to w, for GET
	// /v1/admin/backup; nil leaves that route answering not_found. It is a
	// function so that this package needs no storage import.
	Backup func(w io.Writer) (int64, error)
	// NoBackup, when set, says why this server streams no backup (its
	// database has its own tools): GET /v1/admin/backup answers 422 with it.
	NoBackup string
	// Health, when set, tells /healthz whether the database answers.
	Health func(ctx context.Context) error
	// SaveRules writes published rules text to the rules file.
	SaveRules func(src []byte) error
	// ReadTimeout bounds how long a client may take to send a request;
	// zero means 10 s.
	ReadTimeout time.Duration
	// RequestTimeout bounds a long read (diff, simulate, validate, an
	// analytics page); zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// CouponGuesses bounds each caller's lookups of coupon codes that do
	// not exist; zero means DefaultGuessLimit.
	CouponGuesses GuessLimit
}

// DefaultRequestTimeout is how long a long read may run by default.
const DefaultRequestTimeout = 2 * time.Minute

// Server is the HTTP front of an Engine.
type Server struct {
	app     *fiber.App
	cfg     Config
	log     *slog.Logger
	access  *slog.Logger
	metrics *Metrics
	guesses *guessGuard

	// stopping ends when Shutdown starts, and stops long reads; forced,
	// its parent, ends when Shutdown gives up waiting, and stops the rest.
	stopping, forced context.Context
	stop, force      context.CancelCauseFunc
}

// NewServer builds the routes.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AccessLogger == nil {
		cfg.AccessLogger = cfg.Logger
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Logger, access: cfg.AccessLogger, metrics: cfg.Metrics, guesses: newGuessGuard(cfg.CouponGuesses, time.Now)}
	s.forced, s.force = context.WithCancelCause(context.Background())
	s.stopping, s.stop = context.WithCancelCause(s.forced)
	s.app = fiber.New(fiber.Config{
		AppName:   "loyalty",
		BodyLimit: BodyLimit,
		// Bodies are streamed so that an import (ImportLimit) is read as
		// it arrives; limitBody holds every other route to BodyLimit.
		StreamRequestBody:     true,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		DisableStartupMessage: true,
		ErrorHandler:          s.handleError,
	})
	s.app.Use(s.requestID, s.observe, s.recover, s.serverContext, s.limitBody, s.guardOpen)
	if len(cfg.CORSOrigins) > 0 {
		s.app.Use(corsFor(cfg.CORSOrigins))
	}
	s.routes()
	srv := s.app.Server()
	srv.Handler = s.refuseUnknownMethods(srv.Handler)
	srv.ErrorHandler = closeIdle(srv.ErrorHandler)
	return s
}

// knownMethods are the methods fiber routes; it answers any other in plain
// text before a middleware runs.
var knownMethods = map[string]bool{}

func init() {
	for _, m := range fiber.DefaultMethods {
		knownMethods[m] = true
	}
}

// refuseUnknownMethods answers a method HTTP does not define with the API's
// error shape instead of fiber's plain-text answer.
func (s *Server) refuseUnknownMethods(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(rc *fasthttp.RequestCtx) {
		if knownMethods[string(rc.Method())] {
			next(rc)
			return
		}
		c := s.app.AcquireCtx(rc)
		defer s.app.ReleaseCtx(c)
		id := uuid.NewString()
		c.Locals("request_id", id)
		c.Set(fiber.HeaderXRequestID, id)
		err := engine.Errorf(engine.EINVALID, "method %q is not an HTTP method this API knows; it uses GET, POST, PUT and PATCH", utils.CopyString(c.Method()))
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("answering an unknown method", "err", herr)
		}
		s.metrics.requests.WithLabelValues("unknown", "", strconv.Itoa(c.Response().StatusCode())).Inc()
		s.access.Info("request", "method", "unknown", "status", c.Response().StatusCode(), "request_id", id)
	}
}

// closeIdle drops a connection on which nothing arrived before the read
// timeout, as an idle keep-alive connection already is, instead of sending
// an answer to a request nobody made. fasthttp hands over the network
// error itself when it read nothing, and wraps it once it has read part of
// a request, which still gets its 400.
func closeIdle(next func(*fasthttp.RequestCtx, error)) func(*fasthttp.RequestCtx, error) {
	return func(rc *fasthttp.RequestCtx, err error) {
		if _, nothingRead := err.(net.Error); nothingRead {
			rc.Conn().Close()
			return
		}
		next(rc, err)
	}
}

// App exposes the fiber app, for tests that use app.Test.
func (s *Server) App() *fiber.App { return s.app }

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections, stops long reads and streams at
// once (they answer 503 unavailable, or end the stream), and waits for the
// other requests in flight, writes among them, to finish; after timeout it
// cancels what still runs and returns.
func (s *Server) Shutdown(timeout time.Duration) error {
	s.stop(errShuttingDown)
	defer s.force(errShuttingDown)
	return s.app.ShutdownWithTimeout(timeout)
}

func (s *Server) routes() {
	app := s.app
	app.Get("/healthz", s.healthz)
	app.Get("/metrics", s.metrics.handler())

	v1 := app.Group("/v1", s.authenticate)
	v1.Get("/clock", anyRole, s.getClock)
	v1.Post("/clock", adminOnly, s.setClock)

	v1.Post("/members", pos, s.createMember)
	v1.Post("/members/import", adminOnly, s.importMembers)
	v1.Get("/members", anyRole, s.findMembers)
	v1.Get("/members/:id", anyRole, s.getMember)
	v1.Patch("/members/:id", pos, s.patchMember)
	v1.Get("/members/:id/balance", anyRole, s.getBalance)
	v1.Get("/members/:id/ledger", anyRole, s.getLedger)
	v1.Post("/members/:id/redemptions", pos, s.postRedemption)
	v1.Post("/members/:id/adjustments", adminOnly, s.postAdjustment)
	v1.Post("/members/:id/merge", adminOnly, s.mergeMember)
	v1.Get("/members/:id/export", adminOnly, s.exportMember)
	v1.Post("/members/:id/erase", adminOnly, s.eraseMember)
	v1.Post("/transfers", pos, s.postTransfer)
	v1.Post("/redemptions/:id/cancel", pos, s.cancelRedemption)

	v1.Get("/rewards", anyRole, s.listRewards)
	v1.Post("/members/:id/rewards", pos, s.takeReward)
	v1.Get("/members/:id/coupons", anyRole, s.memberCoupons)
	v1.Get("/coupons/:code", pos, s.guardCoupons, s.getCoupon)
	v1.Post("/coupons/:code/use", pos, s.guardCoupons, s.useCoupon)
	v1.Post("/coupons/:code/cancel", pos, s.guardCoupons, s.cancelCoupon)

	v1.Post("/purchases", pos, s.postPurchase)
	v1.Get("/purchases/:id", anyRole, s.getPurchase)
	v1.Post("/purchases/:id/refunds", pos, s.postRefund)

	v1.Get("/rules", anyRole, s.getRules)
	v1.Put("/rules", marketer, s.putRules)
	v1.Post("/rules/validate", marketer, s.longRead, s.validateRules)
	v1.Post("/rules/simulate", marketer, s.longRead, s.simulateRules)
	v1.Post("/rules/diff", marketer, s.longRead, s.diffRules)
	v1.Get("/rules/schema", anyRole, s.rulesSchema)
	v1.Get("/rules/versions", anyRole, s.listRulesVersions)
	v1.Get("/rules/versions/:n", anyRole, s.getRulesVersion)
	v1.Get("/events", marketer, s.listEvents)

	v1.Post("/webhooks", adminOnly, s.createWebhook)
	v1.Get("/webhooks", adminOnly, s.listWebhooks)
	v1.Get("/webhooks/:id", adminOnly, s.getWebhook)
	v1.Patch("/webhooks/:id", adminOnly, s.patchWebhook)
	v1.Delete("/webhooks/:id", adminOnly, s.deleteWebhook)
	v1.Post("/webhooks/:id/rotate", adminOnly, s.rotateWebhook)
	v1.Post("/webhooks/:id/test", adminOnly, s.testWebhook)
	v1.Get("/webhooks/:id/deliveries", adminOnly, s.webhookDeliveries)
	v1.Post("/webhooks/:id/replay", adminOnly, s.replayWebhook)

	v1.Get("/jobs", anyRole, s.listJobs)
	v1.Post("/jobs/:name/run", adminOnly, s.stopsAtShutdown, s.runJob)

	v1.Get("/analytics/summary", marketer, s.analyticsSummary)
	v1.Get("/analytics/members", marketer, s.longRead, s.analyticsMembers)
	v1.Get("/analytics/rewards", marketer, s.rewardsReport)

	v1.Get("/admin/backup", adminOnly, s.backup)

	s.faceRoutes(app, v1)

	app.Use(func(c *fiber.Ctx) error {
		c.Locals(localNoRoute, true)
		return engine.Errorf(engine.ENOTFOUND, "no route %s %s", c.Method(), c.Path())
	})
}

// localNoRoute marks a request that matched no route, so that metrics
// label it "unknown" rather than with the catch-all's pattern, "/".
const localNoRoute = "no_route"

// requestID tags each request so a client's report can be matched with the
// server log.
func (s *Server) requestID(c *fiber.Ctx) error {
	id := c.Get(fiber.HeaderXRequestID)
	if id == "" || len(id) > 128 {
		id = uuid.NewString()
	}
	c.Locals("request_id", id)
	c.Set(fiber.HeaderXRequestID, id)
	return c.Next()
}

// recover turns a panic in a handler into a 500 for that request, logged
// with the request id, instead of a dead server.
func (s *Server) recover(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.Next()
}

// errorBody is the one shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Details is a list of positioned problems ([]engine.Detail), or an
	// object of facts such as {"reason": "used"} (engine.Error.Info).
	Details any `json:"details,omitempty"`
}

var statusOf = map[string]int{
	engine.EINVALID:       fiber.StatusBadRequest,
	engine.EUNAUTHORIZED:  fiber.StatusUnauthorized,
	engine.EFORBIDDEN:     fiber.StatusForbidden,
	engine.ENOTFOUND:      fiber.StatusNotFound,
	engine.ECONFLICT:      fiber.StatusConflict,
	engine.EINSUFFICIENT:  fiber.StatusUnprocessableEntity,
	engine.EUNPROCESSABLE: fiber.StatusUnprocessableEntity,
	engine.EINTERNAL:      fiber.StatusInternalServerError,
	engine.EUNAVAILABLE:   fiber.StatusServiceUnavailable,
	engine.ERATELIMITED:   fiber.StatusTooManyRequests,
}

// handleError is the only place where errors become statuses.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	if errors.Is(err, errClientGone) {
		c.Context().SetConnectionClose()
		return c.SendStatus(statusClientClosed)
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		err = fiberError(fe)
	}
	var ee *engine.Error
	body := errorBody{}
	switch {
	case errors.As(err, &ee) && ee.Code != engine.EINTERNAL:
		body.Error = errorDetail{Code: ee.Code, Message: ee.Message, Field: ee.Field}
		switch {
		case len(ee.Details) > 0:
			body.Error.Details = ee.Details
		case ee.Info != nil:
			body.Error.Details = ee.Info
		}
	case ee != nil:
		// An internal *Error was written for the client, such as the rules
		// that could not be saved; what caused it goes to the log only.
		s.log.Error("request failed", "request_id", c.Locals("request_id"), "method", c.Method(), "route", c.Route().Path, "err", err, "cause", errors.Unwrap(ee))
		body.Error = errorDetail{Code: engine.EINTERNAL, Message: ee.Message + " (request " + fmt.Sprint(c.Locals("request_id")) + ")"}
	default:
		s.log.Error("request failed", "request_id", c.Locals("request_id"), "method", c.Method(), "route", c.Route().Path, "err", err)
		body.Error = errorDetail{Code: engine.EINTERNAL, Message: "internal error; see the server log for request " + fmt.Sprint(c.Locals("request_id"))}
	}
	return c.Status(statusOf[body.Error.Code]).JSON(body)
}

// fiberError translates errors fiber raises before a handler runs.
func fiberError(fe *fiber.Error) error {
	switch fe.Code {
	case fiber.StatusRequestEntityTooLarge:
		return engine.Errorf(engine.EINVALID, "body is larger than %d bytes", BodyLimit)
	case fiber.StatusNotFound:
		return engine.Errorf(engine.ENOTFOUND, "%s", fe.Message)
	case fiber.StatusMethodNotAllowed:
		return engine.Errorf(engine.ENOTFOUND, "%s", fe.Message)
	case fiber.StatusBadRequest, fiber.StatusRequestHeaderFieldsTooLarge, fiber.StatusRequestTimeout:
		return engine.Errorf(engine.EINVALID, "%s", fe.Message)
	}
	return fe
}
