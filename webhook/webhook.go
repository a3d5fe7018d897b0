// Package webhook delivers the engine's events to the webhook endpoints
// that subscribe to them, by the Standard Webhooks specification: each
// event is POSTed with a webhook-id (the event's id, the same on every
// attempt), a webhook-timestamp and a v1 HMAC-SHA256 signature.
//
// The delivery state is in the store, so that a crash loses nothing: a
// fan-out pass turns each new event of the feed into one pending delivery
// per endpoint that wants it, and moves a cursor kept in the store past
// it, in one transaction; an endpoint's worker sends its due deliveries
// and records each outcome. Delivery is thus at least once: a server
// killed between sending and recording sends again after restart, with the
// same webhook-id, by which receivers deduplicate.
//
// With several servers on one database, the fan-out and each endpoint's
// sending are done by one server at a time, under the store's leases.
// An endpoint's worker sends at most Options.PerEndpoint deliveries at
// once and all of them together at most Options.MaxConcurrent, so a slow
// or dead endpoint holds only its own deliveries back, never another
// endpoint's nor a till's: sending happens outside every transaction.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// DefaultSchedule is the wait before each retry: an endpoint down for up
// to about three days gets every event.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// DefaultTimeout is how long an attempt waits for the endpoint's answer.
const DefaultTimeout = 15 * time.Second

// DefaultMaxPending is the most pending deliveries an endpoint may have;
// the engine refuses a replay past the same bound.
const DefaultMaxPending = engine.DefaultMaxPendingDeliveries

// Options configure a Worker; zero values take the defaults.
type Options struct {
	// Holder names this server in the store's leases: unique per process.
	Holder string
	// Exclusive says that no other server shares the store (a bbolt
	// file): the worker then takes no leases, and an idle worker writes
	// nothing.
	Exclusive bool
	// Timeout bounds each attempt, from connecting to the answer's end.
	Timeout time.Duration
	// Schedule is the wait before each retry; after the last, a delivery
	// that still fails is failed.
	Schedule []time.Duration
	// PerEndpoint bounds one endpoint's deliveries in flight (default 4);
	// MaxConcurrent all of them (default PerEndpoint for each of the
	// engine's MaxWebhooks endpoints).
	PerEndpoint, MaxConcurrent int
	// Poll is how often the worker looks for new events and due retries.
	Poll time.Duration
	// Now is the wall clock: timestamps a receiver checks against its own.
	Now func() time.Time
	// Client sends the requests; by default one that follows no redirect.
	Client *http.Client
	Log    *slog.Logger
	// MaxPending bounds an endpoint's pending deliveries: one with more is
	// hopeless, and is disabled rather than let its queue grow without
	// limit. Checked every QueueCheck.
	MaxPending int
	QueueCheck time.Duration
	// Attempted, when set, is told the outcome of every attempt:
	// succeeded, retry, failed or disabled (a 410, or the queue bound).
	Attempted func(webhookID, outcome string)
}

// Outcomes of an attempt, for Options.Attempted.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeRetry     = "retry"
	OutcomeFailed    = "failed"
	OutcomeDisabled  = "disabled"
)

// Worker delivers events; Run runs it.
type Worker struct {
	db   engine.Store
	opts Options
	sem  chan struct{}

	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
}

// maxBody is the most of an answer's body read: receivers answer
// little, and a huge answer must not cost memory or time.
const maxBody = 64 << 10

// scanPending is how many pending deliveries of an endpoint one page of a
// pass looks through for due ones.
const scanPending = 1000

// fanOutChunk is how many events one fan-out transaction takes.
const fanOutChunk = 500

// cursorSetting is the store setting that holds the fan-out's cursor: the
// seq of the last event turned into deliveries.
const cursorSetting = engine.WebhookCursorSetting

// New returns a worker delivering the events of db.
func New(db engine.Store, opts Options) *Worker {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Schedule == nil {
		opts.Schedule = DefaultSchedule
	}
	if opts.PerEndpoint <= 0 {
		opts.PerEndpoint = 4
	}
	if opts.MaxConcurrent <= 0 {
		// Room for every endpoint's own bound: with less, a few hung
		// endpoints would take every slot and hold the others back.
		opts.MaxConcurrent = opts.PerEndpoint * engine.MaxWebhooks
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.QueueCheck <= 0 {
		opts.QueueCheck = time.Minute
	}
	if opts.Attempted == nil {
		opts.Attempted = func(string, string) {}
	}
	if opts.Holder == "" {
		opts.Holder = "webhook-worker"
	}
	if opts.Client == nil {
		opts.Client = &http.Client{
			Timeout: opts.Timeout,
			// A redirect is an answer that is not 2xx: following it would
			// send signed events where the admin did not point them.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Worker{db: db, opts: opts, sem: make(chan struct{}, opts.MaxConcurrent), running: map[string]bool{}}
}

// leaseTTL is how long a lease holds without renewal: longer than a
// round of attempts (at most Timeout, then their records), so that it is
// renewed before it runs out; and so how long the deliveries of a server
// that died wait for another to take them.
func (w *Worker) leaseTTL() time.Duration { return w.opts.Timeout + 10*time.Second }

// Run delivers until ctx ends, then waits for the attempts in flight.
func (w *Worker) Run(ctx context.Context) {
	defer w.wg.Wait()
	t := time.NewTicker(w.opts.Poll)
	defer t.Stop()
	for {
		if err := w.fanOut(ctx); err != nil && ctx.Err() == nil {
			w.opts.Log.Warn("webhooks: fan-out failed; it runs again", "err", err)
		}
		if err := w.startEndpoints(ctx); err != nil && ctx.Err() == nil {
			w.opts.Log.Warn("webhooks: reading the endpoints failed", "err", err)
		}
		select {
		case <-ctx.Done():
			w.release("webhooks/fan-out")
			return
		case <-t.C:
		}
	}
}

func (w *Worker) release(lease string) {
	if w.opts.Exclusive {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.db.Update(ctx, func(tx engine.Tx) error { return tx.ReleaseLease(lease, w.opts.Holder) })
}

func (w *Worker) take(ctx context.Context, lease string) (bool, error) {
	if w.opts.Exclusive {
		return true, nil
	}
	var held bool
	err := w.db.Update(ctx, func(tx engine.Tx) error {
		var err error
		held, err = tx.TakeLease(lease, w.opts.Holder, w.leaseTTL())
		return err
	})
	return held, err
}

// fanOut turns the events after the cursor into pending deliveries. The
// events are read in a View and written in an Update that checks the
// cursor is unchanged, so a pass that lost its lease in between writes
// nothing twice.
func (w *Worker) fanOut(ctx context.Context) error {
	held, err := w.take(ctx, "webhooks/fan-out")
	if err != nil || !held {
		return err
	}
	for {
		var cursor []byte
		err := w.db.View(ctx, func(tx engine.Tx) error {
			var err error
			cursor, err = tx.Setting(cursorSetting)
			return err
		})
		if err != nil {
			return err
		}
		var evs []*engine.Event
		var hooks []*engine.Webhook
		err = w.db.View(ctx, func(tx engine.Tx) error {
			// Events first: only the first call of a transaction lists
			// every event committed before it (engine.Store).
			after, _ := strconv.ParseUint(string(cursor), 10, 64)
			var err error
			if evs, err = tx.Events(after, fanOutChunk); err != nil {
				return err
			}
			hooks, err = tx.Webhooks()
			return err
		})
		if err != nil || len(evs) == 0 {
			return err
		}
		now := w.opts.Now().UTC().Truncate(time.Microsecond)
		err = w.db.Update(ctx, func(tx engine.Tx) error {
			again, err := tx.Setting(cursorSetting)
			if err != nil {
				return err
			}
			if !bytes.Equal(again, cursor) {
				return errCursorMoved
			}
			for _, ev := range evs {
				for _, h := range hooks {
					if !h.Wants(ev) || ev.At.Before(h.CreatedAt) {
						continue
					}
					if d, err := tx.Delivery(h.ID, ev.Seq); err != nil || d != nil {
						if err != nil {
							return err
						}
						continue // a replay made it already
					}
					id := engine.ViewEvent(ev).ID
					if err := tx.PutDelivery(&engine.Delivery{
						WebhookID: h.ID, Seq: ev.Seq, EventID: id, Type: ev.Type, Status: engine.DeliveryPending, CreatedAt: now,
					}); err != nil {
						return err
					}
				}
			}
			return tx.PutSetting(cursorSetting, []byte(strconv.FormatUint(evs[len(evs)-1].Seq, 10)))
		})
		if errors.Is(err, errCursorMoved) {
			return nil
		}
		if err != nil || len(evs) < fanOutChunk {
			return err
		}
	}
}

var errCursorMoved = errors.New("another server moved the fan-out cursor")

// startEndpoints starts a sender for each enabled endpoint without one.
func (w *Worker) startEndpoints(ctx context.Context) error {
	var hooks []*engine.Webhook
	err := w.db.View(ctx, func(tx engine.Tx) error {
		var err error
		hooks, err = tx.Webhooks()
		return err
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range hooks {
		if h.Status != engine.WebhookEnabled || w.running[h.ID] {
			continue
		}
		w.running[h.ID] = true
		w.wg.Add(1)
		go func(id string) {
			defer w.wg.Done()
			w.endpoint(ctx, id)
			w.mu.Lock()
			delete(w.running, id)
			w.mu.Unlock()
		}(h.ID)
	}
	return nil
}

// endpoint sends an endpoint's due deliveries while it is enabled and
// this server holds its lease.
func (w *Worker) endpoint(ctx context.Context, id string) {
	lease := "webhook/" + id
	defer w.release(lease)
	var checked time.Time
	for ctx.Err() == nil {
		held, err := w.take(ctx, lease)
		if err != nil && ctx.Err() == nil {
			w.opts.Log.Warn("webhooks: taking an endpoint's lease failed", "webhook", id, "err", err)
		}
		if held && time.Since(checked) >= w.opts.QueueCheck {
			checked = time.Now()
			if gone, err := w.checkQueue(ctx, id); err != nil || gone {
				if err != nil && ctx.Err() == nil {
					w.opts.Log.Warn("webhooks: counting an endpoint's queue failed", "webhook", id, "err", err)
				}
				if gone {
					return
				}
			}
		}
		if held {
			more, gone, err := w.round(ctx, id)
			if err != nil && ctx.Err() == nil {
				w.opts.Log.Warn("webhooks: a round of deliveries failed", "webhook", id, "err", err)
			}
			if gone {
				return
			}
			if more {
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.opts.Poll):
		}
	}
}

// checkQueue disables an endpoint with more than MaxPending pending
// deliveries, and tells whether it did.
func (w *Worker) checkQueue(ctx context.Context, id string) (bool, error) {
	// Counted in a read: on bbolt a write shares its commit with the tills'
	// purchases, which would wait out the scan of a long queue every
	// check. Only a queue past the bound is counted again, in the write
	// that disables it.
	over := false
	err := w.db.View(ctx, func(tx engine.Tx) error {
		ds, err := tx.Deliveries(id, engine.DeliveryPending, 0, w.opts.MaxPending+1)
		over = len(ds) > w.opts.MaxPending
		return err
	})
	if err != nil || !over {
		return false, err
	}
	disabled := false
	err = w.db.Update(ctx, func(tx engine.Tx) error {
		disabled = false
		ds, err := tx.Deliveries(id, engine.DeliveryPending, 0, w.opts.MaxPending+1)
		if err != nil || len(ds) <= w.opts.MaxPending {
			return err
		}
		hook, err := tx.Webhook(id)
		if err != nil || hook == nil || hook.Status != engine.WebhookEnabled {
			return err
		}
		hook.Status = engine.WebhookDisabled
		hook.DisabledReason = fmt.Sprintf("more than %d deliveries pending: the endpoint looks hopeless", w.opts.MaxPending)
		disabled = true
		return tx.PutWebhook(hook)
	})
	if disabled {
		w.opts.Log.Warn("webhooks: an endpoint's queue passed its bound; it is disabled", "webhook", id, "max_pending", w.opts.MaxPending)
		w.opts.Attempted(id, OutcomeDisabled)
	}
	return disabled, err
}

// round sends the due deliveries of one scan, in waves of PerEndpoint
// side by side, and tells whether more may be due and whether the
// endpoint is gone or disabled. Each wave's outcomes are recorded in one
// transaction, which renews the endpoint's lease: a round that lost it
// stops.
func (w *Worker) round(ctx context.Context, id string) (more, gone bool, err error) {
	var hook *engine.Webhook
	var due []*engine.Delivery
	now := w.opts.Now()
	batch := w.opts.PerEndpoint * wavesPerRound
	err = w.db.View(ctx, func(tx engine.Tx) error {
		var err error
		if hook, err = tx.Webhook(id); err != nil || hook == nil || hook.Status != engine.WebhookEnabled {
			return err
		}
		// Page on past deliveries waiting out their retries: a backlog
		// from an outage must not hide the new events behind it.
		var after uint64
		for scanned := 0; scanned < w.opts.MaxPending+scanPending; {
			ds, err := tx.Deliveries(id, engine.DeliveryPending, after, scanPending)
			if err != nil {
				return err
			}
			for _, d := range ds {
				if !d.NextAttemptAt.After(now) {
					due = append(due, d)
					if len(due) == batch {
						more = true
						return nil
					}
				}
			}
			if len(ds) < scanPending {
				return nil
			}
			scanned += len(ds)
			after = ds[len(ds)-1].Seq
		}
		return nil
	})
	if err != nil {
		return false, false, err
	}
	if hook == nil || hook.Status != engine.WebhookEnabled {
		return false, true, nil
	}
	for len(due) > 0 {
		wave := due[:min(len(due), w.opts.PerEndpoint)]
		due = due[len(wave):]
		results := make([]attempt, len(wave))
		var wg sync.WaitGroup
		for i, d := range wave {
			select {
			case w.sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return false, false, ctx.Err()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-w.sem }()
				results[i] = w.attempt(ctx, hook, d)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			// Stopped mid-attempt: the deliveries stay as they were, and
			// are sent again after restart.
			return false, false, nil
		}
		held, disabled, err := w.record(ctx, id, results)
		if err != nil || !held || disabled {
			return false, disabled, err
		}
	}
	return more, false, nil
}

// wavesPerRound is how many waves of PerEndpoint deliveries one scan of
// the pending ones feeds.
const wavesPerRound = 8

// outcome is what one attempt got.
type outcome struct {
	status     int
	err        string
	retryAfter time.Duration // from a 429 or 503's Retry-After; 0 when none
	gone       bool          // the event is no longer in the feed
}

// attempt is one attempt of a delivery and its outcome, with the
// delivery as it was when the attempt began.
type attempt struct {
	seq      uint64
	attempts int
	created  time.Time
	at       time.Time
	out      outcome
}

// attempt sends d once.
func (w *Worker) attempt(ctx context.Context, hook *engine.Webhook, d *engine.Delivery) attempt {
	a := attempt{seq: d.Seq, attempts: d.Attempts, created: d.CreatedAt}
	var ev *engine.Event
	err := w.db.View(ctx, func(tx engine.Tx) error {
		evs, err := tx.Events(d.Seq-1, 1)
		if err == nil && len(evs) == 1 && evs[0].Seq == d.Seq {
			ev = evs[0]
		}
		return err
	})
	a.at = w.opts.Now()
	switch {
	case err != nil:
		a.out = outcome{err: "reading the event: " + err.Error()}
	case ev == nil:
		a.out = outcome{err: "the event was pruned from the feed before it could be delivered", gone: true}
	default:
		a.out = w.send(ctx, hook, ev, a.at)
	}
	return a
}

// Body is what a delivery POSTs: the event without its id (the
// webhook-id header) and seq.
type Body struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Sign returns the webhook-signature header of a body sent with id at
// timestamp ts, signed with each secret.
func Sign(secrets []string, id string, ts int64, body []byte) string {
	var sigs []string
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			continue // not a secret this package made; a test sees no signature
		}
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%d.", id, ts)
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

func (w *Worker) send(ctx context.Context, hook *engine.Webhook, ev *engine.Event, at time.Time) outcome {
	v := engine.ViewEvent(ev)
	body, err := json.Marshal(Body{Type: v.Type, Timestamp: v.Timestamp, Data: v.Data})
	if err != nil {
		return outcome{err: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: err.Error()}
	}
	ts := at.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "loyalty-webhooks")
	req.Header.Set("webhook-id", v.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(hook.Secrets(at), v.ID, ts, body))
	res, err := w.opts.Client.Do(req)
	if err != nil {
		return outcome{err: err.Error()}
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxBody))
	out := outcome{status: res.StatusCode}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		out.err = res.Status
	}
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable {
		out.retryAfter = retryAfter(res.Header.Get("Retry-After"), at)
	}
	return out
}

// maxRetryAfter caps the wait an endpoint may ask for.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		d = time.Duration(min(max(n, 0), int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// jitter spreads a wait by ±10%, so that the retries of many deliveries
// that failed together do not arrive together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// record writes a wave's outcomes into their deliveries, disables the
// endpoint on a 410, and renews the lease, in one transaction; it tells
// whether the lease is still held and whether the endpoint was disabled.
func (w *Worker) record(ctx context.Context, hookID string, results []attempt) (held, disabled bool, err error) {
	var outcomes []string
	err = w.db.Update(context.WithoutCancel(ctx), func(tx engine.Tx) error {
		held, disabled, outcomes = false, false, outcomes[:0]
		for _, a := range results {
			d, err := tx.Delivery(hookID, a.seq)
			if err != nil {
				return err
			}
			if d == nil || d.Status != engine.DeliveryPending || d.Attempts != a.attempts || !d.CreatedAt.Equal(a.created) {
				// Deleted with its endpoint, done meanwhile, or replayed
				// while this attempt was on its way: the replay's own
				// attempt is still to come.
				continue
			}
			at, out := a.at.UTC().Truncate(time.Microsecond), a.out
			d.Attempts++
			d.LastAttemptAt, d.LastStatusCode, d.LastError = at, out.status, out.err
			outcome := OutcomeRetry
			switch {
			case out.status >= 200 && out.status <= 299:
				d.Status, d.NextAttemptAt = engine.DeliverySucceeded, time.Time{}
				outcome = OutcomeSucceeded
			case out.gone:
				d.Status, d.NextAttemptAt = engine.DeliveryFailed, time.Time{}
				outcome = OutcomeFailed
			case out.status == http.StatusGone:
				outcome = OutcomeDisabled
				// The receiver says the endpoint is no more: it gets no
				// events until an admin enables it again, and this
				// delivery goes first then.
				hook, err := tx.Webhook(hookID)
				if err != nil || hook == nil {
					return err
				}
				if hook.Status == engine.WebhookEnabled {
					hook.Status, hook.DisabledReason = engine.WebhookDisabled, "the endpoint answered 410 Gone"
					if err := tx.PutWebhook(hook); err != nil {
						return err
					}
					disabled = true
				}
				d.NextAttemptAt = at
			case d.Attempts > len(w.opts.Schedule):
				d.Status, d.NextAttemptAt = engine.DeliveryFailed, time.Time{}
				outcome = OutcomeFailed
			case out.retryAfter > 0:
				d.NextAttemptAt = at.Add(out.retryAfter)
			default:
				d.NextAttemptAt = at.Add(jitter(w.opts.Schedule[d.Attempts-1]))
			}
			if err := tx.PutDelivery(d); err != nil {
				return err
			}
			outcomes = append(outcomes, outcome)
		}
		if w.opts.Exclusive {
			held = true
			return nil
		}
		var err error
		held, err = tx.TakeLease("webhook/"+hookID, w.opts.Holder, w.leaseTTL())
		return err
	})
	if err != nil {
		return false, false, err
	}
	for _, o := range outcomes {
		w.opts.Attempted(hookID, o)
	}
	if disabled {
		w.opts.Log.Warn("webhooks: an endpoint answered 410 Gone and is disabled", "webhook", hookID)
	}
	return held, disabled, nil
}
