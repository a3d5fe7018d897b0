package engine

import (
	"context"
	"strconv"
	"time"
)

// EventView is an event of the feed as the API shows it.
type EventView struct {
	Seq      uint64            `json:"seq"`
	Type     string            `json:"type"`
	MemberID string            `json:"member_id,omitempty"`
	At       time.Time         `json:"at"`
	Data     map[string]string `json:"data,omitempty"`
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
			page.Events = append(page.Events, EventView{Seq: ev.Seq, Type: ev.Type, MemberID: ev.MemberID, At: ev.At, Data: ev.Data})
			page.NextCursor = strconv.FormatUint(ev.Seq, 10)
		}
		return err
	})
	return page, err
}
