package engine

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Event types; docs/API.md has the catalogue with each type's data.
const (
	EventPointsExpiring = "points.expiring"
	EventBonusGranted   = "bonus.granted"

	EventCouponIssued    = "coupon.issued"
	EventCouponUsed      = "coupon.used"
	EventCouponCancelled = "coupon.cancelled"
	EventCouponExpired   = "coupon.expired"
	// EventCouponExpiring is the notice of a coupon about to expire, as
	// points.expiring is of points.
	EventCouponExpiring = "coupon.expiring"
)

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

// Events returns the events after a cursor ("" for the start).
func (e *Engine) Events(ctx context.Context, after string, limit int) (*EventPage, error) {
	limit, err := PageSize(limit)
	if err != nil {
		return nil, err
	}
	var from uint64
	if after != "" {
		if from, err = strconv.ParseUint(after, 10, 64); err != nil {
			return nil, FieldErrorf(EINVALID, "after", "is not a cursor this API returned")
		}
	}
	page := &EventPage{Events: []EventView{}, NextCursor: strconv.FormatUint(from, 10)}
	err = e.store.View(ctx, func(tx Tx) error {
		evs, err := tx.Events(from, limit)
		for _, ev := range evs {
			page.Events = append(page.Events, viewEvent(ev))
			page.NextCursor = strconv.FormatUint(ev.Seq, 10)
		}
		return err
	})
	return page, err
}

// viewEvent shows a stored event. An expiry notice written before events
// had an id and a payload gets them from what it holds: an id derived
// from its seq, so it stays the same on every read.
func viewEvent(ev *Event) EventView {
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
