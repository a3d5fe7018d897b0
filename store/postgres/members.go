package postgres

import (
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
)

// transferDetail: a transfer's lot draws and answer.
var transferDetail = &detail{t: reflect.TypeFor[engine.Transfer](),
	columns: []string{"ID", "FromMemberID", "ToMemberID", "At", "Points", "Reason", "RequestHash"}}

// Transfer implements engine.Tx.
func (t *tx) Transfer(id string) (*engine.Transfer, error) {
	var out *engine.Transfer
	err := t.query("transfer "+id, `SELECT id, from_member_id, to_member_id, at, points, reason, request_hash, detail FROM transfers WHERE id = $1`,
		[]any{id}, func(rows pgx.Rows) error {
			var tr engine.Transfer
			var detail []byte
			if err := rows.Scan(&tr.ID, &tr.FromMemberID, &tr.ToMemberID, &tr.At, &tr.Points, &tr.Reason, &tr.RequestHash, &detail); err != nil {
				return err
			}
			tr.At = tr.At.UTC()
			if err := transferDetail.decode(detail, &tr); err != nil {
				return fmt.Errorf("transfer %s: detail: %w", tr.ID, err)
			}
			out = &tr
			return nil
		})
	return out, err
}

// PutTransfer implements engine.Tx.
func (t *tx) PutTransfer(tr *engine.Transfer) error {
	if tr.ID == "" {
		return fmt.Errorf("postgres: put transfer: %w", errEmptyID)
	}
	detail, err := transferDetail.encode(tr)
	if err != nil {
		return fmt.Errorf("postgres: put transfer %s: %w", tr.ID, err)
	}
	return t.execOther("put transfer "+tr.ID, `INSERT INTO transfers (id, from_member_id, to_member_id, at, points, reason, request_hash, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET from_member_id = excluded.from_member_id, to_member_id = excluded.to_member_id,
			at = excluded.at, points = excluded.points, reason = excluded.reason, request_hash = excluded.request_hash,
			detail = excluded.detail`,
		tr.ID, tr.FromMemberID, tr.ToMemberID, tr.At, tr.Points, tr.Reason, tr.RequestHash, detail)
}

// MemberEvents implements engine.Tx: numbered events in seq order, then
// those the sequencer has not reached, in the order they were written.
// There is no index of events by member (migration 0009 says why).
func (t *tx) MemberEvents(memberID string) ([]*engine.Event, error) {
	var out []*engine.Event
	err := t.query("events of "+memberID, `SELECT coalesce(seq, 0), coalesce(id, ''), type, member_id, at, payload, data
		FROM events WHERE member_id = $1 ORDER BY seq NULLS LAST, n`,
		[]any{memberID}, func(rows pgx.Rows) error {
			e, err := scanEvent(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	return out, err
}

// RewriteEvent implements engine.Tx. An event written before events had
// ids is named by its seq; one with an id by the id, which stays the same
// while the sequencer numbers it.
func (t *tx) RewriteEvent(e *engine.Event) error {
	notice, err := jsonOf(e.Notice)
	if err != nil {
		return fmt.Errorf("postgres: rewrite event %s: %w", e.ID, err)
	}
	if e.ID != "" {
		return t.execOther("rewrite event "+e.ID, `UPDATE events SET payload = $2, data = $3 WHERE id = $1`, e.ID, e.Payload, notice)
	}
	seq, err := toInt64("event seq", e.Seq)
	if err != nil {
		return err
	}
	return t.execOther(fmt.Sprintf("rewrite event %d", e.Seq), `UPDATE events SET payload = $2, data = $3 WHERE seq = $1 AND id IS NULL`, seq, e.Payload, notice)
}

var _ engine.MembersFinder = (*tx)(nil)

// MembersByKeys implements engine.MembersFinder: one query where
// MemberByKey would take a round trip a value, which an import of a
// chunk of members would otherwise pay three times a line.
func (t *tx) MembersByKeys(key string, values []string) ([]*engine.Member, error) {
	col, ok := uniqueColumns[key]
	if !ok {
		return nil, fmt.Errorf("postgres: members by %q: not a unique key", key)
	}
	if len(values) == 0 {
		return nil, nil
	}
	return t.members("members by "+key, `SELECT `+memberCols+` FROM members WHERE `+col+` = ANY($1) AND `+col+` <> ''`+t.forUpdate(), values)
}
