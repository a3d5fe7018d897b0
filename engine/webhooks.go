package engine

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Webhook endpoint statuses.
const (
	WebhookEnabled  = "enabled"
	WebhookDisabled = "disabled"
)

// Delivery statuses: pending until a 2xx answer (succeeded) or the last
// attempt of the schedule (failed).
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// Webhook is an endpoint that receives the events it subscribes to.
type Webhook struct {
	ID          string
	URL         string
	Events      []string // types, or "*" for all
	Description string
	Status      string
	// DisabledReason says why the server disabled the endpoint (it
	// answered 410); empty when enabled or disabled by an admin.
	DisabledReason string
	Secret         string // "whsec_" and base64 of 32 random bytes
	// OldSecret, the secret before the latest rotation, signs too until
	// OldSecretUntil, so that receivers can move to the new one.
	OldSecret      string
	OldSecretUntil time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Delivery is the sending of one event to one endpoint, over as many
// attempts as it takes.
type Delivery struct {
	WebhookID      string
	Seq            uint64 // the event's
	EventID        string
	Type           string
	Status         string
	Attempts       int
	LastAttemptAt  time.Time
	LastStatusCode int
	LastError      string
	// NextAttemptAt is when the next attempt is due, wall-clock time; the
	// zero time is at once.
	NextAttemptAt time.Time
	CreatedAt     time.Time
}

// SecretOverlap is how long the secret before a rotation still signs.
const SecretOverlap = 24 * time.Hour

// MaxWebhooks bounds the endpoints: every event is matched against each.
const MaxWebhooks = 100

// Wants tells whether the endpoint is to receive ev: it is enabled and
// subscribes to ev's type. A webhook.test event goes only to the endpoint
// it tests.
func (w *Webhook) Wants(ev *Event) bool {
	if w.Status != WebhookEnabled {
		return false
	}
	if ev.Type == EventWebhookTest {
		var d webhookTestData
		return json.Unmarshal(ev.Payload, &d) == nil && d.WebhookID == w.ID
	}
	return slices.Contains(w.Events, "*") || slices.Contains(w.Events, ev.Type)
}

// Secrets lists the secrets that sign a delivery made at now: the
// current one first.
func (w *Webhook) Secrets(now time.Time) []string {
	if w.OldSecret != "" && now.Before(w.OldSecretUntil) {
		return []string{w.Secret, w.OldSecret}
	}
	return []string{w.Secret}
}

// WebhookInput is the body of POST /v1/webhooks, and of PATCH, where
// every field is optional.
type WebhookInput struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Description *string   `json:"description"`
	Status      *string   `json:"status"`
}

// WebhookView is an endpoint as the API shows it; Secret only in the
// answer that made it.
type WebhookView struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Events         []string  `json:"events"`
	Description    string    `json:"description"`
	Status         string    `json:"status"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	Secret         string    `json:"secret,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func (w *Webhook) view() *WebhookView {
	return &WebhookView{
		ID: w.ID, URL: w.URL, Events: w.Events, Description: w.Description, Status: w.Status,
		DisabledReason: w.DisabledReason, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
	}
}

// DeliveryView is a delivery as the API shows it.
type DeliveryView struct {
	EventID        string     `json:"event_id"`
	Seq            uint64     `json:"seq"`
	Type           string     `json:"type"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	LastStatusCode int        `json:"last_status_code"`
	LastError      string     `json:"last_error"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
}

// DeliveryPage is a page of an endpoint's deliveries, in event order.
type DeliveryPage struct {
	Deliveries []DeliveryView `json:"deliveries"`
	NextCursor string         `json:"next_cursor"`
}

func (d *Delivery) view() DeliveryView {
	v := DeliveryView{
		EventID: d.EventID, Seq: d.Seq, Type: d.Type, Status: d.Status, Attempts: d.Attempts,
		LastStatusCode: d.LastStatusCode, LastError: d.LastError,
	}
	if !d.LastAttemptAt.IsZero() {
		t := d.LastAttemptAt
		v.LastAttemptAt = &t
	}
	if d.Status == DeliveryPending {
		t := d.NextAttemptAt
		if t.IsZero() {
			t = d.CreatedAt
		}
		v.NextAttemptAt = &t
	}
	return v
}

// newSecret returns a new signing secret.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func checkWebhookInput(in WebhookInput, create bool) error {
	if create && in.URL == nil {
		return FieldErrorf(EINVALID, "url", "is required")
	}
	if in.URL != nil {
		if err := checkText("url", *in.URL, 2048); err != nil {
			return err
		}
		u, err := url.Parse(*in.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return FieldErrorf(EINVALID, "url", "must be an absolute http or https URL")
		}
	}
	if create && in.Events == nil {
		return FieldErrorf(EINVALID, "events", "is required: a list of event types, or [\"*\"] for all")
	}
	if in.Events != nil {
		if len(*in.Events) == 0 || len(*in.Events) > len(KnownEventTypes) {
			return FieldErrorf(EINVALID, "events", "must list from 1 to %d event types, or [\"*\"] for all", len(KnownEventTypes))
		}
		for i, typ := range *in.Events {
			if typ != "*" && !KnownEventType(typ) {
				return FieldErrorf(EINVALID, "events["+strconv.Itoa(i)+"]", "%q is not an event type (docs/API.md lists them)", typ)
			}
		}
	}
	if in.Description != nil {
		if err := checkText("description", *in.Description, MaxTextLen); err != nil {
			return err
		}
	}
	if in.Status != nil && *in.Status != WebhookEnabled && *in.Status != WebhookDisabled {
		return FieldErrorf(EINVALID, "status", "must be %q or %q", WebhookEnabled, WebhookDisabled)
	}
	return nil
}

// CreateWebhook adds an endpoint, enabled unless the input says
// otherwise, with a new secret, shown here only.
func (e *Engine) CreateWebhook(ctx context.Context, in WebhookInput) (*WebhookView, error) {
	if err := checkWebhookInput(in, true); err != nil {
		return nil, err
	}
	now := e.Now()
	w := &Webhook{
		ID: "wh_" + strings.ReplaceAll(uuid.NewString(), "-", ""), URL: *in.URL, Events: slices.Clone(*in.Events),
		Status: WebhookEnabled, Secret: newSecret(), CreatedAt: now, UpdatedAt: now,
	}
	if in.Description != nil {
		w.Description = *in.Description
	}
	if in.Status != nil {
		w.Status = *in.Status
	}
	err := e.store.Update(ctx, func(tx Tx) error {
		all, err := tx.Webhooks()
		if err != nil {
			return err
		}
		if len(all) >= MaxWebhooks {
			return Errorf(EUNPROCESSABLE, "there are %d webhook endpoints already, the most there may be", len(all))
		}
		return tx.PutWebhook(w)
	})
	if err != nil {
		return nil, err
	}
	v := w.view()
	v.Secret = w.Secret
	return v, nil
}

func getWebhook(tx Tx, id string) (*Webhook, error) {
	w, err := tx.Webhook(id)
	if err != nil {
		return nil, err
	}
	if w == nil {
		return nil, Errorf(ENOTFOUND, "webhook %q not found", id)
	}
	return w, nil
}

// Webhooks lists the endpoints, without their secrets.
func (e *Engine) Webhooks(ctx context.Context) ([]*WebhookView, error) {
	out := []*WebhookView{}
	err := e.store.View(ctx, func(tx Tx) error {
		all, err := tx.Webhooks()
		for _, w := range all {
			out = append(out, w.view())
		}
		return err
	})
	return out, err
}

// Webhook returns one endpoint, without its secret.
func (e *Engine) Webhook(ctx context.Context, id string) (*WebhookView, error) {
	var v *WebhookView
	err := e.store.View(ctx, func(tx Tx) error {
		w, err := getWebhook(tx, id)
		if err == nil {
			v = w.view()
		}
		return err
	})
	return v, err
}

// UpdateWebhook changes what the input gives. Enabling an endpoint the
// server disabled clears the reason, and its pending deliveries resume.
func (e *Engine) UpdateWebhook(ctx context.Context, id string, in WebhookInput) (*WebhookView, error) {
	if err := checkWebhookInput(in, false); err != nil {
		return nil, err
	}
	now := e.Now()
	var v *WebhookView
	err := e.store.Update(ctx, func(tx Tx) error {
		w, err := getWebhook(tx, id)
		if err != nil {
			return err
		}
		if in.URL != nil {
			w.URL = *in.URL
		}
		if in.Events != nil {
			w.Events = slices.Clone(*in.Events)
		}
		if in.Description != nil {
			w.Description = *in.Description
		}
		if in.Status != nil {
			w.Status = *in.Status
			w.DisabledReason = ""
		}
		w.UpdatedAt = now
		v = w.view()
		return tx.PutWebhook(w)
	})
	return v, err
}

// DeleteWebhook removes an endpoint and its deliveries.
func (e *Engine) DeleteWebhook(ctx context.Context, id string) error {
	return e.store.Update(ctx, func(tx Tx) error {
		if _, err := getWebhook(tx, id); err != nil {
			return err
		}
		return tx.DeleteWebhook(id)
	})
}

// RotateWebhookSecret gives an endpoint a new secret and returns it; the
// old one signs too for SecretOverlap.
func (e *Engine) RotateWebhookSecret(ctx context.Context, id string, wall time.Time) (string, error) {
	secret := newSecret()
	err := e.store.Update(ctx, func(tx Tx) error {
		w, err := getWebhook(tx, id)
		if err != nil {
			return err
		}
		w.OldSecret, w.OldSecretUntil, w.Secret = w.Secret, wall.Add(SecretOverlap).UTC().Truncate(time.Microsecond), secret
		w.UpdatedAt = e.Now()
		return tx.PutWebhook(w)
	})
	return secret, err
}

// TestWebhook records a webhook.test event, which goes to that endpoint
// alone.
func (e *Engine) TestWebhook(ctx context.Context, id string) error {
	now := e.Now()
	return e.store.Update(ctx, func(tx Tx) error {
		if _, err := getWebhook(tx, id); err != nil {
			return err
		}
		return emit(tx, now, EventWebhookTest, "", webhookTestData{WebhookID: id})
	})
}

// WebhookDeliveries lists an endpoint's deliveries in event order, after
// a cursor, of one status ("" for all).
func (e *Engine) WebhookDeliveries(ctx context.Context, id, status, cursor string, limit int) (*DeliveryPage, error) {
	limit, err := PageSize(limit)
	if err != nil {
		return nil, err
	}
	switch status {
	case "", DeliveryPending, DeliverySucceeded, DeliveryFailed:
	default:
		return nil, FieldErrorf(EINVALID, "status", "must be %s, %s or %s", DeliveryPending, DeliverySucceeded, DeliveryFailed)
	}
	after, err := parseCursor("cursor", cursor)
	if err != nil {
		return nil, err
	}
	page := &DeliveryPage{Deliveries: []DeliveryView{}, NextCursor: strconv.FormatUint(after, 10)}
	err = e.store.View(ctx, func(tx Tx) error {
		if _, err := getWebhook(tx, id); err != nil {
			return err
		}
		ds, err := tx.Deliveries(id, status, after, limit)
		for _, d := range ds {
			page.Deliveries = append(page.Deliveries, d.view())
			page.NextCursor = strconv.FormatUint(d.Seq, 10)
		}
		return err
	})
	return page, err
}

// ReplayWebhook sends again every event since a time that the endpoint
// subscribes to, with the ids they had, as new deliveries due at once,
// and returns how many. Events after the delivery worker's cursor are
// left to it: it delivers them anyway.
func (e *Engine) ReplayWebhook(ctx context.Context, id string, since time.Time) (int64, error) {
	if err := e.replayFits(ctx, id, since); err != nil {
		return 0, err
	}
	var n int64
	var after uint64
	for {
		var evs []*Event
		err := e.store.View(ctx, func(tx Tx) error {
			// Events first: only the first call of a transaction lists
			// every event committed before it (Store).
			var err error
			if evs, err = tx.Events(after, replayChunk); err != nil {
				return err
			}
			_, err = getWebhook(tx, id)
			return err
		})
		if err != nil {
			return n, err
		}
		if len(evs) == 0 {
			return n, nil
		}
		after = evs[len(evs)-1].Seq
		now := e.Now()
		var done int64
		err = e.store.Update(ctx, func(tx Tx) error {
			done = 0
			w, err := getWebhook(tx, id)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if ev.At.Before(since) || !w.wantsType(ev) {
					continue
				}
				d, err := tx.Delivery(id, ev.Seq)
				if err != nil {
					return err
				}
				if d == nil {
					d = &Delivery{WebhookID: id, Seq: ev.Seq, EventID: ViewEvent(ev).ID, Type: ev.Type, CreatedAt: now}
				}
				// A new CreatedAt marks it replayed, so that an attempt
				// made before does not count as the replay's.
				d.Status, d.Attempts, d.NextAttemptAt, d.CreatedAt = DeliveryPending, 0, time.Time{}, now
				if err := tx.PutDelivery(d); err != nil {
					return err
				}
				done++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += done
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
}

// replayChunk is how many events a replay goes through per transaction.
const replayChunk = 500

// wantsType is Wants without the status: a disabled endpoint's replay
// waits for it to be enabled.
func (w *Webhook) wantsType(ev *Event) bool {
	c := *w
	c.Status = WebhookEnabled
	return c.Wants(ev)
}

// WebhookQueue is what an endpoint still has to get.
type WebhookQueue struct {
	WebhookID string
	// Pending counts its pending deliveries, at most the limit asked for.
	Pending int
	// Oldest is when the oldest pending delivery was made (wall clock);
	// zero when none is pending.
	Oldest time.Time
}

// WebhookQueues returns each endpoint's queue, counting at most limit
// pending deliveries each.
func (e *Engine) WebhookQueues(ctx context.Context, limit int) ([]WebhookQueue, error) {
	var out []WebhookQueue
	err := e.store.View(ctx, func(tx Tx) error {
		hooks, err := tx.Webhooks()
		if err != nil {
			return err
		}
		for _, w := range hooks {
			q, err := webhookQueue(tx, w.ID, limit)
			if err != nil {
				return err
			}
			out = append(out, q)
		}
		return nil
	})
	return out, err
}

func webhookQueue(tx Tx, id string, limit int) (WebhookQueue, error) {
	q := WebhookQueue{WebhookID: id}
	ds, err := tx.Deliveries(id, DeliveryPending, 0, limit)
	if err != nil {
		return q, err
	}
	q.Pending = len(ds)
	for _, d := range ds {
		if q.Oldest.IsZero() || d.CreatedAt.Before(q.Oldest) {
			q.Oldest = d.CreatedAt
		}
	}
	return q, nil
}

// replayFits refuses a replay that would leave the endpoint with more
// pending deliveries than the worker's bound, past which it would disable
// a healthy endpoint as hopeless. It counts in reads, outside the writes.
func (e *Engine) replayFits(ctx context.Context, id string, since time.Time) error {
	var pending []*Delivery
	err := e.store.View(ctx, func(tx Tx) error {
		if _, err := getWebhook(tx, id); err != nil {
			return err
		}
		var err error
		pending, err = tx.Deliveries(id, DeliveryPending, 0, e.maxPending+1)
		return err
	})
	if err != nil {
		return err
	}
	already := make(map[uint64]bool, len(pending))
	for _, d := range pending {
		already[d.Seq] = true
	}
	total := len(pending)
	for after := uint64(0); ; {
		var evs []*Event
		var w *Webhook
		err := e.store.View(ctx, func(tx Tx) error {
			var err error
			if evs, err = tx.Events(after, replayChunk); err != nil {
				return err
			}
			w, err = getWebhook(tx, id)
			return err
		})
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		after = evs[len(evs)-1].Seq
		for _, ev := range evs {
			if !ev.At.Before(since) && w.wantsType(ev) && !already[ev.Seq] {
				total++
			}
		}
		if total > e.maxPending {
			refusal := Errorf(EUNPROCESSABLE, "the replay would leave more than %d deliveries pending for the endpoint, past which it is disabled as hopeless; replay a shorter span", e.maxPending)
			refusal.Info = map[string]string{"max_pending": strconv.Itoa(e.maxPending)}
			return refusal
		}
	}
}
