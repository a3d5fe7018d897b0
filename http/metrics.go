package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/version"
)

// Metrics counts what the server and the engine do, for GET /metrics in
// Prometheus' text format. Each Metrics has its own registry, so several
// servers in one process (tests) do not share counts.
type Metrics struct {
	reg *prometheus.Registry

	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	purchases prometheus.Counter
	earned    *prometheus.CounterVec
	redeemed  prometheus.Counter
	returned  prometheus.Counter
	refunded  prometheus.Counter
	expired   prometheus.Counter
	deducted  *prometheus.CounterVec
	jobRuns   *prometheus.CounterVec
	jobTime   *prometheus.HistogramVec
	ruleFails *prometheus.CounterVec
	hookTries *prometheus.CounterVec
}

// NewMetrics registers the metrics; dbSize, when set, is read at every
// scrape for loyalty_db_size_bytes.
func NewMetrics(dbSize func() int64) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_http_requests_total",
			Help: "HTTP requests by method, route pattern and status. Requests refused before reaching a route carry the prefix that refused them (/v1 for a bad key); a path that matches no route is route=\"unknown\", a method HTTP does not define method=\"unknown\"; status 499 is a long read stopped because its client went away.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "loyalty_http_request_duration_seconds",
			Help:    "Time from reading a request to having its answer ready, by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		purchases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loyalty_purchases_total",
			Help: "Purchases recorded (retries answered from the first answer are not counted).",
		}),
		earned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_points_earned_total",
			Help: "Points credited, by kind: purchase, enrol, referral, birthday, bonus, adjustment (positive adjustments), or the ledger type of any other credit. With the series below it adds up to the ledger: earned + redemptions_cancelled - redeemed - refunded - expired - deducted = the members' balances.",
		}, []string{"kind"}),
		redeemed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loyalty_points_redeemed_total",
			Help: "Points spent by redemptions; those of cancelled redemptions come back in loyalty_points_redemptions_cancelled_total.",
		}),
		returned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loyalty_points_redemptions_cancelled_total",
			Help: "Points given back by cancelled redemptions.",
		}),
		refunded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loyalty_points_refunded_total",
			Help: "Points taken back by refunds (of purchases, and of the referral bonuses they paid).",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loyalty_points_expired_total",
			Help: "Points written off by the expire-points job.",
		}),
		deducted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_points_deducted_total",
			Help: "Points taken off otherwise, by kind: adjustment (negative adjustments), or the ledger type of any other debit.",
		}, []string{"kind"}),
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_job_runs_total",
			Help: "Job runs by job_name and result (ok or error). The label is not job, which Prometheus sets to the scrape job.",
		}, []string{"job_name", "result"}),
		jobTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "loyalty_job_duration_seconds",
			Help:    "How long job runs took, by job_name.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"job_name"}),
		ruleFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_rule_failures_total",
			Help: "Purchases refused because an earn rule failed on them (422), by rule.",
		}, []string{"rule"}),
		hookTries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loyalty_webhook_deliveries_total",
			Help: "Attempts of webhook deliveries by endpoint and outcome: succeeded, retry (failed, to be tried again), failed (after the last attempt) or disabled (the endpoint answered 410, or its queue passed its bound).",
		}, []string{"webhook", "outcome"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.purchases, m.earned, m.redeemed, m.returned, m.refunded, m.expired, m.deducted, m.jobRuns, m.jobTime, m.ruleFails, m.hookTries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	v := version.Get()
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "loyalty_build_info",
		Help:        "Always 1; its labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": v.Version, "commit": v.Commit},
	}, func() float64 { return 1 }))
	if dbSize != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "loyalty_db_size_bytes",
			Help: "Size of the database file.",
		}, func() float64 { return float64(dbSize()) }))
	}
	return m
}

// WebhookAttempted counts an attempt of a webhook delivery by endpoint and
// outcome (webhook.Options.Attempted).
func (m *Metrics) WebhookAttempted(webhookID, outcome string) {
	m.hookTries.WithLabelValues(webhookID, outcome).Inc()
}

// WatchWebhooks adds loyalty_webhook_pending_deliveries{webhook} and
// loyalty_webhook_oldest_pending_seconds{webhook}, read with queues
// (Engine.WebhookQueues) at each scrape.
func (m *Metrics) WatchWebhooks(queues func(context.Context) ([]engine.WebhookQueue, error)) {
	m.reg.MustRegister(queueCollector(queues))
}

var (
	pendingDesc = prometheus.NewDesc("loyalty_webhook_pending_deliveries",
		"Deliveries each webhook endpoint has still to get (counted up to the queue bound and one).",
		[]string{"webhook"}, nil)
	oldestDesc = prometheus.NewDesc("loyalty_webhook_oldest_pending_seconds",
		"Age of the oldest delivery each webhook endpoint has still to get; 0 when none.",
		[]string{"webhook"}, nil)
)

type queueCollector func(context.Context) ([]engine.WebhookQueue, error)

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- oldestDesc
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	qs, err := c(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(pendingDesc, err)
		return
	}
	for _, q := range qs {
		age := 0.0
		if !q.Oldest.IsZero() {
			age = max(time.Since(q.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(q.Pending), q.WebhookID)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, q.WebhookID)
	}
}

// WatchJobs adds loyalty_job_last_success_timestamp_seconds{job}, read
// from the store at each scrape with lastSuccesses (Engine.LastSuccesses),
// so that it is right from the first scrape after a restart and an alert
// on a backup older than a day does not fire because the server restarted.
func (m *Metrics) WatchJobs(lastSuccesses func(context.Context) (map[string]time.Time, error)) {
	m.reg.MustRegister(jobsCollector(lastSuccesses))
}

var lastSuccessDesc = prometheus.NewDesc("loyalty_job_last_success_timestamp_seconds",
	"When the newest successful run of each job finished (engine time, Unix seconds); absent until a job has succeeded once.",
	[]string{"job_name"}, nil)

type jobsCollector func(context.Context) (map[string]time.Time, error)

func (c jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lastSuccessDesc }

func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	last, err := c(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(lastSuccessDesc, err)
		return
	}
	for job, at := range last {
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, float64(at.UnixNano())/1e9, job)
	}
}

// Hooks returns engine hooks that feed the job metrics and every points
// metric: the points series count committed ledger entries, whatever wrote
// them (a request, a job), so they add up to the ledger.
func (m *Metrics) Hooks() engine.Hooks {
	return engine.Hooks{
		JobRun: func(r engine.JobRun) {
			result := "ok"
			if r.Error != "" {
				result = "error"
			}
			m.jobRuns.WithLabelValues(r.Name, result).Inc()
			m.jobTime.WithLabelValues(r.Name).Observe(r.FinishedAt.Sub(r.StartedAt).Seconds())
		},
		Ledger:     m.ledgerEntry,
		RuleFailed: func(rule string) { m.ruleFails.WithLabelValues(rule).Inc() },
	}
}

// ledgerEntry counts an entry's points in the one series its kind and sign
// belong to.
func (m *Metrics) ledgerEntry(en engine.LedgerEntry) {
	points := float64(en.Points)
	switch {
	case en.Points > 0 && en.Type == engine.LedgerRedeemCancel:
		m.returned.Add(points)
	case en.Points > 0:
		m.earned.WithLabelValues(engine.EntryKind(en)).Add(points)
	case en.Points < 0 && en.Type == engine.LedgerRedeem:
		m.redeemed.Add(-points)
	case en.Points < 0 && en.Type == engine.LedgerRefund:
		m.refunded.Add(-points)
	case en.Points < 0 && en.Type == engine.LedgerExpire:
		m.expired.Add(-points)
	case en.Points < 0:
		m.deducted.WithLabelValues(engine.EntryKind(en)).Add(-points)
	}
}

// handler serves the registry; it needs no key, like /healthz, so a
// scraper needs no secret.
func (m *Metrics) handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

// observe answers errors itself, so the status is known here, then counts
// the request and writes its one access log line. The route is the pattern
// (/v1/members/:id), never the raw path, so metrics stay bounded and logs
// carry no member ids in the route field; headers are never logged.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	var fail []any
	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			return fmt.Errorf("answer error %v: %w", err, herr)
		}
		fail = failureAttrs(err)
	}
	took := time.Since(start)
	// The method is a view of fasthttp's reusable buffer; the registry
	// keeps label values, so it gets a copy.
	method, route := utils.CopyString(c.Method()), c.Route().Path
	if c.Locals(localNoRoute) == true {
		route = "unknown"
	}
	status := c.Response().StatusCode()
	s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	s.metrics.latency.WithLabelValues(method, route).Observe(took.Seconds())
	if !s.access.Enabled(c.UserContext(), slog.LevelInfo) {
		return nil
	}
	// Typed attributes: this line is written for every request, and the
	// variadic ...any form boxed each value and built a slice per request.
	id, _ := c.Locals("request_id").(string)
	attrs := [...]slog.Attr{slog.String("method", method), slog.String("route", route), slog.Int("status", status),
		slog.Duration("duration", took), slog.String("request_id", id)}
	if fail == nil {
		s.access.LogAttrs(c.UserContext(), slog.LevelInfo, "request", attrs[:]...)
		return nil
	}
	s.access.Info("request", append(append(make([]any, 0, len(attrs)+len(fail)), attrsAny(attrs[:])...), fail...)...)
	return nil
}

func attrsAny(attrs []slog.Attr) []any {
	out := make([]any, len(attrs))
	for i, a := range attrs {
		out[i] = a
	}
	return out
}

// failureAttrs are what the access line says of a refused request: its
// error code and, for positioned problems (rules that do not compile or
// fail their trial), how many and where the first is, so that the log
// alone says where a refused rules file is wrong. Messages stay out: they
// may quote member data.
func failureAttrs(err error) []any {
	var ee *engine.Error
	if !errors.As(err, &ee) {
		return []any{"error_code", engine.EINTERNAL}
	}
	attrs := []any{"error_code", ee.Code}
	if ee.Field != "" {
		attrs = append(attrs, "field", ee.Field)
	}
	if len(ee.Details) > 0 {
		d := ee.Details[0]
		attrs = append(attrs, "problems", len(ee.Details), "first_at", fmt.Sprintf("%d:%d", d.Line, d.Column))
		if d.Rule != "" {
			attrs = append(attrs, "rule", d.Rule)
		}
	}
	return attrs
}
