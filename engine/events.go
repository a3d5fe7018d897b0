package engine

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Event types; docs/API.md has the catalogue with each type's data.
const (
	EventMemberEnrolled         = "member.enrolled"
	EventMemberUpdated          = "member.updated"
	EventMemberMerged           = "member.merged"
	EventMemberErased           = "member.erased"
	EventMemberAnalyticsChanged = "member.analytics_changed"

	EventPurchaseCreated = "purchase.created"
	EventRefundCreated   = "refund.created"

	EventRedemptionCreated   = "redemption.created"
	EventRedemptionCancelled = "redemption.cancelled"

	EventPointsAdjusted    = "points.adjusted"
	EventPointsTransferred = "points.transferred"
	EventPointsImported    = "points.imported"
	EventPointsExpired     = "points.expired"
	EventPointsExpiring    = "points.expiring"

	EventBonusGranted = "bonus.granted"
	EventTierChanged  = "tier.changed"

	EventCouponIssued    = "coupon.issued"
	EventCouponUsed      = "coupon.used"
	EventCouponCancelled = "coupon.cancelled"
	EventCouponExpired   = "coupon.expired"
	// EventCouponExpiring is the notice of a coupon about to expire, as
	// points.expiring is of points.
	EventCouponExpiring = "coupon.expiring"

	EventRulesPublished = "rules.published"
	EventWebhookTest    = "webhook.test"
)

// KnownEventTypes lists every event type, in the catalogue's order: what
// a webhook endpoint may subscribe to (besides "*").
var KnownEventTypes = []string{
	EventMemberEnrolled, EventMemberUpdated, EventMemberMerged, EventMemberErased,
	EventPurchaseCreated, EventRefundCreated, EventRedemptionCreated, EventRedemptionCancelled,
	EventPointsAdjusted, EventPointsTransferred, EventPointsImported, EventPointsExpired, EventPointsExpiring,
	EventBonusGranted, EventTierChanged,
	EventCouponIssued, EventCouponUsed, EventCouponCancelled, EventCouponExpired, EventCouponExpiring,
	EventRulesPublished, EventMemberAnalyticsChanged, EventWebhookTest,
}

// KnownEventType tells whether typ is in the catalogue.
func KnownEventType(typ string) bool {
	return slices.Contains(KnownEventTypes, typ)
}

// matchType tells whether an event of type typ passes filter: one type,
// or a prefix ending in "*" ("points.*", or "*" for all).
func matchType(filter, typ string) bool {
	if prefix, ok := strings.CutSuffix(filter, "*"); ok {
		return strings.HasPrefix(typ, prefix)
	}
	return filter == typ
}

// EventView is an event of the feed as the API shows it.
type EventView struct {
	ID        string          `json:"id"`
	Seq       uint64          `json:"seq"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// EventPage is a page of the feed, oldest first. NextCursor is always set,
// so a consumer polls with it and gets only what is new.
type EventPage struct {
	Events     []EventView `json:"events"`
	NextCursor string      `json:"next_cursor"`
}

// Events returns the events after a cursor ("" for the start), of the
// types filter passes ("" for all; see matchType). The cursor moves past
// events the filter skips too, so that a filtered poll never reads them
// again.
func (e *Engine) Events(ctx context.Context, cursor, filter string, limit int) (*EventPage, error) {
	limit, err := PageSize(limit)
	if err != nil {
		return nil, err
	}
	from, err := parseCursor("cursor", cursor)
	if err != nil {
		return nil, err
	}
	if filter != "" && filter != "*" {
		if p, ok := strings.CutSuffix(filter, "*"); ok {
			if !slices.ContainsFunc(KnownEventTypes, func(t string) bool { return strings.HasPrefix(t, p) }) {
				return nil, FieldErrorf(EINVALID, "type", "no event type starts with %q", p)
			}
		} else if !KnownEventType(filter) {
			return nil, FieldErrorf(EINVALID, "type", "%q is not an event type", filter)
		}
	}
	page := &EventPage{Events: []EventView{}, NextCursor: strconv.FormatUint(from, 10)}
	err = e.store.View(ctx, func(tx Tx) error {
		// A filter that passes few events reads on, a bounded number of
		// pages, so that a page is rarely empty while more is to come.
		for range filteredPages {
			evs, err := tx.Events(from, limit)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				from = ev.Seq
				page.NextCursor = strconv.FormatUint(ev.Seq, 10)
				if filter == "" || matchType(filter, ev.Type) {
					page.Events = append(page.Events, ViewEvent(ev))
					if len(page.Events) == limit {
						return nil
					}
				}
			}
			if len(evs) < limit || filter == "" {
				return nil
			}
		}
		return nil
	})
	return page, err
}

// filteredPages bounds the pages of events a filtered read of the feed
// goes through for one answer.
const filteredPages = 10

// parseCursor reads a cursor of the feed: an event's seq ("" for 0).
func parseCursor(field, cursor string) (uint64, error) {
	if cursor == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(cursor, 10, 64)
	if err != nil {
		return 0, FieldErrorf(EINVALID, field, "is not a cursor this API returned")
	}
	return n, nil
}

// ViewEvent shows a stored event. An expiry notice written before events
// had an id and a payload gets them from what it holds: an id derived
// from its seq, so it stays the same on every read.
func ViewEvent(ev *Event) EventView {
	v := EventView{ID: ev.ID, Seq: ev.Seq, Type: ev.Type, Timestamp: ev.At, Data: ev.Payload}
	if v.ID == "" {
		v.ID = fmt.Sprintf("evt_legacy_%d", ev.Seq)
	}
	if v.Data == nil {
		points, _ := strconv.ParseInt(ev.Notice["points"], 10, 64)
		v.Data, _ = json.Marshal(expiringData{MemberID: ev.MemberID, Points: points, ExpiresOn: ev.Notice["on"]})
	}
	return v
}

// expiringData is the data of a points.expiring event.
type expiringData struct {
	MemberID  string `json:"member_id"`
	Points    int64  `json:"points"`
	ExpiresOn string `json:"expires_on"`
}

// newEventID returns a new event id: unique, and opaque to receivers.
func newEventID() string {
	u := uuid.New()
	return "evt_" + hex.EncodeToString(u[:])
}

// emit records an event of type typ about member (or "" for none), with
// data as its payload, in the transaction that makes the change: the event
// commits if and only if the change does. data is encoded as JSON, in the
// shape the catalogue (docs/API.md) gives for typ.
func emit(tx Tx, now time.Time, typ, member string, data any) error {
	payload, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("event %s: %w", typ, err)
	}
	return tx.AppendEvent(&Event{ID: newEventID(), Type: typ, MemberID: member, At: now, Payload: payload})
}

// emit records an event of the change w is making (see emit).
func (w writer) emit(typ, member string, data any) error {
	return emit(w.tx, w.now, typ, member, data)
}
