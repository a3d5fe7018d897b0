package postgres

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loyaltyhq/loyalty/engine"
)

var errEmptyID = errors.New("empty id")

const memberCols = `id, external_id, email, phone, name, birthday, referrer_id, status, enrolled_at, attributes,
	tier, tier_since, tier_by_promotion, points, debt, lifetime_earned, lifetime_spend, purchase_count,
	last_purchase_at, ledger_seq, points_redeemed, refunded_spend, analytics, merged_into`

func (t *tx) scanMember(rows pgx.Rows) (*engine.Member, error) {
	var m engine.Member
	var attrs, analytics []byte
	var seq int64
	err := rows.Scan(&m.ID, &m.ExternalID, &m.Email, &m.Phone, &m.Name, &m.Birthday, &m.ReferrerID, &m.Status,
		&m.EnrolledAt, &attrs, &m.Tier, &m.TierSince, &m.TierByPromotion, &m.Points, &m.Debt, &m.LifetimeEarned,
		&m.LifetimeSpend, &m.PurchaseCount, &m.LastPurchaseAt, &seq, &m.PointsRedeemed, &m.RefundedSpend, &analytics, &m.MergedInto)
	if err != nil {
		return nil, err
	}
	m.EnrolledAt, m.TierSince, m.LastPurchaseAt = m.EnrolledAt.UTC(), m.TierSince.UTC(), m.LastPurchaseAt.UTC()
	m.LedgerSeq = uint64(seq)
	if err := fromJSON(attrs, &m.Attributes); err != nil {
		return nil, fmt.Errorf("member %s: attributes: %w", m.ID, err)
	}
	if analytics != nil {
		m.Analytics = new(engine.Analytics)
		if err := fromJSON(analytics, m.Analytics); err != nil {
			return nil, fmt.Errorf("member %s: analytics: %w", m.ID, err)
		}
	}
	t.saw(&m)
	if t.write {
		t.lockedMember(m.ID)
	}
	return &m, nil
}

func (t *tx) saw(m *engine.Member) {
	if t.keys == nil {
		t.keys = map[string]memberKeys{}
	}
	t.keys[m.ID] = memberKeys{m.ExternalID, m.Email, m.Phone}
}

// members runs a query for members, which locks them in an Update.
func (t *tx) members(what, sql string, args ...any) ([]*engine.Member, error) {
	if t.write {
		defer func() { t.holdsLocks = true }()
	}
	var out []*engine.Member
	err := t.query(what, sql, args, func(rows pgx.Rows) error {
		m, err := t.scanMember(rows)
		if err == nil {
			out = append(out, m)
		}
		return err
	})
	return out, err
}

func (t *tx) member(what, sql string, args ...any) (*engine.Member, error) {
	ms, err := t.members(what, sql, args...)
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return ms[0], nil
}

// Member implements engine.Tx.
func (t *tx) Member(id string) (*engine.Member, error) {
	if !t.locked[id] {
		t.turn(id)
	}
	return t.member("member "+id, `SELECT `+memberCols+` FROM members WHERE id = $1`+t.forUpdate(), id)
}

// uniqueColumns maps the engine's unique keys to their columns. The
// queries repeat the partial indexes' condition (a value that is not
// empty), so that the planner can use them.
var uniqueColumns = map[string]string{
	engine.KeyExternalID: "external_id",
	engine.KeyEmail:      "email",
	engine.KeyPhone:      "phone",
}

// MemberByKey implements engine.Tx.
func (t *tx) MemberByKey(key, value string) (*engine.Member, error) {
	col, ok := uniqueColumns[key]
	if !ok {
		return nil, fmt.Errorf("postgres: member by %q: not a unique key", key)
	}
	if value == "" {
		return nil, nil
	}
	return t.member("member by "+key, `SELECT `+memberCols+` FROM members WHERE `+col+` = $1 AND `+col+` <> ''`+t.forUpdate(), value)
}

// Members implements engine.Tx.
func (t *tx) Members(after string, limit int) ([]*engine.Member, error) {
	return t.members("members", `SELECT `+memberCols+` FROM members WHERE id > $1 ORDER BY id LIMIT $2`+t.forUpdate(), after, limitOf(limit))
}

// PutMember implements engine.Tx. When a unique key is new to this
// transaction it first looks for another holder, so that a conflict is
// answered before anything is written and leaves the transaction usable.
func (t *tx) PutMember(m *engine.Member) error {
	if m.ID == "" {
		return fmt.Errorf("postgres: put member: %w", errEmptyID)
	}
	if !t.write {
		return errReadOnly
	}
	keys := memberKeys{m.ExternalID, m.Email, m.Phone}
	if known, ok := t.keys[m.ID]; !ok || known != keys {
		if err := t.checkKeys(m.ID, keys); err != nil {
			return err
		}
	}
	attrs, err := jsonOf(m.Attributes)
	if err != nil {
		return fmt.Errorf("postgres: put member %s: attributes: %w", m.ID, err)
	}
	analytics, err := jsonOf(m.Analytics)
	if err != nil {
		return fmt.Errorf("postgres: put member %s: analytics: %w", m.ID, err)
	}
	seq, err := toInt64("ledger seq", m.LedgerSeq)
	if err != nil {
		return err
	}
	args := []any{m.ID, m.ExternalID, m.Email, m.Phone, m.Name, m.Birthday, m.ReferrerID, m.Status, m.EnrolledAt, attrs,
		m.Tier, m.TierSince, m.TierByPromotion, m.Points, m.Debt, m.LifetimeEarned, m.LifetimeSpend, m.PurchaseCount,
		m.LastPurchaseAt, seq, m.PointsRedeemed, m.RefundedSpend, analytics, m.MergedInto}
	sql := insertMember
	if _, ok := t.keys[m.ID]; ok {
		// Read or written earlier in this transaction, so there: an
		// UPDATE costs the server less than an INSERT that conflicts.
		sql = updateMember
	}
	if err := t.enqueue(stmt{member: true, what: "put member " + m.ID, sql: sql, args: args}); err != nil {
		return err
	}
	t.saw(m)
	return nil
}

const insertMember = `INSERT INTO members (` + memberCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
	ON CONFLICT (id) DO UPDATE SET external_id = excluded.external_id, email = excluded.email, phone = excluded.phone,
		name = excluded.name, birthday = excluded.birthday, referrer_id = excluded.referrer_id, status = excluded.status,
		enrolled_at = excluded.enrolled_at, attributes = excluded.attributes, tier = excluded.tier,
		tier_since = excluded.tier_since, tier_by_promotion = excluded.tier_by_promotion, points = excluded.points,
		debt = excluded.debt, lifetime_earned = excluded.lifetime_earned, lifetime_spend = excluded.lifetime_spend,
		purchase_count = excluded.purchase_count, last_purchase_at = excluded.last_purchase_at,
		ledger_seq = excluded.ledger_seq, points_redeemed = excluded.points_redeemed,
		refunded_spend = excluded.refunded_spend, analytics = excluded.analytics, merged_into = excluded.merged_into`

const updateMember = `UPDATE members SET external_id = $2, email = $3, phone = $4, name = $5, birthday = $6,
	referrer_id = $7, status = $8, enrolled_at = $9, attributes = $10, tier = $11, tier_since = $12,
	tier_by_promotion = $13, points = $14, debt = $15, lifetime_earned = $16, lifetime_spend = $17,
	purchase_count = $18, last_purchase_at = $19, ledger_seq = $20, points_redeemed = $21,
	refunded_spend = $22, analytics = $23, merged_into = $24 WHERE id = $1`

// checkKeys answers ECONFLICT, naming the key as the bbolt store does
// (external id, then email, then phone), when another member holds one of
// keys. A holder that commits after this look wins the unique index
// instead, and Update runs the function again.
func (t *tx) checkKeys(id string, keys memberKeys) error {
	if keys == (memberKeys{}) {
		return nil
	}
	var holders []memberKeys
	err := t.query("put member "+id, `SELECT external_id, email, phone FROM members
		WHERE id <> $1 AND ((external_id = $2 AND external_id <> '') OR (email = $3 AND email <> '') OR (phone = $4 AND phone <> ''))`,
		[]any{id, keys.externalID, keys.email, keys.phone}, func(rows pgx.Rows) error {
			var k memberKeys
			err := rows.Scan(&k.externalID, &k.email, &k.phone)
			holders = append(holders, k)
			return err
		})
	if err != nil {
		return err
	}
	for _, c := range []struct {
		field string
		value func(memberKeys) string
	}{
		{engine.KeyExternalID, func(k memberKeys) string { return k.externalID }},
		{engine.KeyEmail, func(k memberKeys) string { return k.email }},
		{engine.KeyPhone, func(k memberKeys) string { return k.phone }},
	} {
		for _, h := range holders {
			if v := c.value(keys); v != "" && c.value(h) == v {
				return &engine.Error{Code: engine.ECONFLICT, Field: c.field, Message: c.field + " is already used by another member"}
			}
		}
	}
	return nil
}

// purchaseDetail splits a purchase into its columns and its detail: the
// items, breakdown, answer and what refunds took back, per rule and line,
// and whatever field is added to engine.Purchase without a column.
var purchaseDetail = &detail{t: reflect.TypeFor[engine.Purchase](),
	columns: []string{"ID", "MemberID", "StoreID", "TerminalID", "OccurredAt", "RecordedAt", "Currency", "Amount", "Points",
		"RulesVersion", "EarnedAtTier", "RequestHash", "RefundedAmount", "RefundedPoints"},
	legacy: map[string]string{"items": "Items", "breakdown": "Breakdown", "result": "Result", "refunds": "Refunds",
		"taken_by_rule": "TakenByRule", "taken_by_line": "TakenByLine", "refunded_qty": "RefundedQty",
		"refunded_line_amount": "RefundedLineAmt", "referral": "Referral"}}

const purchaseCols = `id, member_id, store_id, terminal_id, occurred_at, recorded_at, currency, amount, points,
	rules_version, earned_at_tier, request_hash, refunded_amount, refunded_points, detail`

func scanPurchase(rows pgx.Rows) (*engine.Purchase, error) {
	var p engine.Purchase
	var detail []byte
	err := rows.Scan(&p.ID, &p.MemberID, &p.StoreID, &p.TerminalID, &p.OccurredAt, &p.RecordedAt, &p.Currency,
		&p.Amount, &p.Points, &p.RulesVersion, &p.EarnedAtTier, &p.RequestHash, &p.RefundedAmount, &p.RefundedPoints, &detail)
	if err != nil {
		return nil, err
	}
	p.OccurredAt, p.RecordedAt = p.OccurredAt.UTC(), p.RecordedAt.UTC()
	if err := purchaseDetail.decode(detail, &p); err != nil {
		return nil, fmt.Errorf("purchase %s: detail: %w", p.ID, err)
	}
	return &p, nil
}

// Purchase implements engine.Tx.
func (t *tx) Purchase(id string) (*engine.Purchase, error) {
	ps, err := t.purchases("purchase "+id, `SELECT `+purchaseCols+` FROM purchases WHERE id = $1`, id)
	if err != nil || len(ps) == 0 {
		if err == nil {
			t.sawAbsent(id)
		}
		return nil, err
	}
	return ps[0], nil
}

// sawAbsent records that the purchase id is not stored as of this
// transaction's snapshot.
func (t *tx) sawAbsent(id string) {
	if !t.write {
		return
	}
	if t.absent == nil {
		t.absent = map[string]bool{}
	}
	t.absent[id] = true
}

func (t *tx) purchases(what, sql string, args ...any) ([]*engine.Purchase, error) {
	var out []*engine.Purchase
	err := t.query(what, sql, args, func(rows pgx.Rows) error {
		p, err := scanPurchase(rows)
		if err == nil {
			out = append(out, p)
		}
		return err
	})
	return out, err
}

// PutPurchase implements engine.Tx.
func (t *tx) PutPurchase(p *engine.Purchase) error {
	if p.ID == "" {
		return fmt.Errorf("postgres: put purchase: %w", errEmptyID)
	}
	detail, err := purchaseDetail.encode(p)
	if err != nil {
		return fmt.Errorf("postgres: put purchase %s: %w", p.ID, err)
	}
	sql := upsertPurchase
	if t.absent[p.ID] {
		// Looked up in this transaction and not found: a plain INSERT,
		// which a concurrent insert of the same id fails (23505) and
		// Update runs again.
		sql = insertPurchase
	}
	delete(t.absent, p.ID)
	return t.execOther("put purchase "+p.ID, sql,
		p.ID, p.MemberID, p.StoreID, p.TerminalID, p.OccurredAt, p.RecordedAt, p.Currency, p.Amount, p.Points,
		p.RulesVersion, p.EarnedAtTier, p.RequestHash, p.RefundedAmount, p.RefundedPoints, detail)
}

const insertPurchase = `INSERT INTO purchases (` + purchaseCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`

const upsertPurchase = insertPurchase + `
	ON CONFLICT (id) DO UPDATE SET member_id = excluded.member_id, store_id = excluded.store_id,
		terminal_id = excluded.terminal_id, occurred_at = excluded.occurred_at, recorded_at = excluded.recorded_at,
		currency = excluded.currency, amount = excluded.amount, points = excluded.points,
		rules_version = excluded.rules_version, earned_at_tier = excluded.earned_at_tier,
		request_hash = excluded.request_hash, refunded_amount = excluded.refunded_amount,
		refunded_points = excluded.refunded_points, detail = excluded.detail`

// PurchasesBetween implements engine.Tx.
func (t *tx) PurchasesBetween(from, to time.Time, limit int) ([]*engine.Purchase, error) {
	return t.purchases("purchases between", `SELECT `+purchaseCols+` FROM purchases
		WHERE occurred_at >= $1 AND occurred_at < $2 ORDER BY occurred_at, id LIMIT $3`, ceilMicro(from), ceilMicro(to), limitOf(limit))
}

// refundDetail: a refund's items and answer.
var refundDetail = &detail{t: reflect.TypeFor[engine.Refund](),
	columns: []string{"ID", "PurchaseID", "MemberID", "At", "Amount", "Points", "RequestHash"},
	legacy:  map[string]string{"items": "Items", "result": "Result"}}

// Refund implements engine.Tx.
func (t *tx) Refund(id string) (*engine.Refund, error) {
	var out *engine.Refund
	err := t.query("refund "+id, `SELECT id, purchase_id, member_id, at, amount, points, request_hash, detail FROM refunds WHERE id = $1`,
		[]any{id}, func(rows pgx.Rows) error {
			var r engine.Refund
			var detail []byte
			if err := rows.Scan(&r.ID, &r.PurchaseID, &r.MemberID, &r.At, &r.Amount, &r.Points, &r.RequestHash, &detail); err != nil {
				return err
			}
			r.At = r.At.UTC()
			if err := refundDetail.decode(detail, &r); err != nil {
				return fmt.Errorf("refund %s: detail: %w", r.ID, err)
			}
			out = &r
			return nil
		})
	return out, err
}

// PutRefund implements engine.Tx.
func (t *tx) PutRefund(r *engine.Refund) error {
	if r.ID == "" {
		return fmt.Errorf("postgres: put refund: %w", errEmptyID)
	}
	detail, err := refundDetail.encode(r)
	if err != nil {
		return fmt.Errorf("postgres: put refund %s: %w", r.ID, err)
	}
	return t.execOther("put refund "+r.ID, `INSERT INTO refunds (id, purchase_id, member_id, at, amount, points, request_hash, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET purchase_id = excluded.purchase_id, member_id = excluded.member_id, at = excluded.at,
			amount = excluded.amount, points = excluded.points, request_hash = excluded.request_hash, detail = excluded.detail`,
		r.ID, r.PurchaseID, r.MemberID, r.At, r.Amount, r.Points, r.RequestHash, detail)
}

// redemptionDetail: a redemption's lot draws and answer.
var redemptionDetail = &detail{t: reflect.TypeFor[engine.Redemption](),
	columns: []string{"ID", "MemberID", "At", "Points", "Reward", "Cancelled", "CancelledAt", "RequestHash"},
	legacy:  map[string]string{"draws": "Draws", "result": "Result"}}

// Redemption implements engine.Tx.
func (t *tx) Redemption(id string) (*engine.Redemption, error) {
	var out *engine.Redemption
	err := t.query("redemption "+id, `SELECT id, member_id, at, points, reward, cancelled, cancelled_at, request_hash, detail
		FROM redemptions WHERE id = $1`, []any{id}, func(rows pgx.Rows) error {
		var r engine.Redemption
		var detail []byte
		if err := rows.Scan(&r.ID, &r.MemberID, &r.At, &r.Points, &r.Reward, &r.Cancelled, &r.CancelledAt, &r.RequestHash, &detail); err != nil {
			return err
		}
		r.At, r.CancelledAt = r.At.UTC(), r.CancelledAt.UTC()
		if err := redemptionDetail.decode(detail, &r); err != nil {
			return fmt.Errorf("redemption %s: detail: %w", r.ID, err)
		}
		out = &r
		return nil
	})
	return out, err
}

// PutRedemption implements engine.Tx.
func (t *tx) PutRedemption(r *engine.Redemption) error {
	if r.ID == "" {
		return fmt.Errorf("postgres: put redemption: %w", errEmptyID)
	}
	detail, err := redemptionDetail.encode(r)
	if err != nil {
		return fmt.Errorf("postgres: put redemption %s: %w", r.ID, err)
	}
	return t.execOther("put redemption "+r.ID, `INSERT INTO redemptions (id, member_id, at, points, reward, cancelled, cancelled_at, request_hash, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET member_id = excluded.member_id, at = excluded.at, points = excluded.points,
			reward = excluded.reward, cancelled = excluded.cancelled, cancelled_at = excluded.cancelled_at,
			request_hash = excluded.request_hash, detail = excluded.detail`,
		r.ID, r.MemberID, r.At, r.Points, r.Reward, r.Cancelled, r.CancelledAt, r.RequestHash, detail)
}

// adjustmentDetail: an adjustment's answer.
var adjustmentDetail = &detail{t: reflect.TypeFor[engine.Adjustment](),
	columns: []string{"ID", "MemberID", "At", "Points", "Reason", "By", "RequestHash"},
	legacy:  map[string]string{"result": "Result"}}

// Adjustment implements engine.Tx.
func (t *tx) Adjustment(id string) (*engine.Adjustment, error) {
	var out *engine.Adjustment
	err := t.query("adjustment "+id, `SELECT id, member_id, at, points, reason, made_by, request_hash, detail FROM adjustments WHERE id = $1`,
		[]any{id}, func(rows pgx.Rows) error {
			var a engine.Adjustment
			var detail []byte
			if err := rows.Scan(&a.ID, &a.MemberID, &a.At, &a.Points, &a.Reason, &a.By, &a.RequestHash, &detail); err != nil {
				return err
			}
			a.At = a.At.UTC()
			if err := adjustmentDetail.decode(detail, &a); err != nil {
				return fmt.Errorf("adjustment %s: detail: %w", a.ID, err)
			}
			out = &a
			return nil
		})
	return out, err
}

// PutAdjustment implements engine.Tx.
func (t *tx) PutAdjustment(a *engine.Adjustment) error {
	if a.ID == "" {
		return fmt.Errorf("postgres: put adjustment: %w", errEmptyID)
	}
	detail, err := adjustmentDetail.encode(a)
	if err != nil {
		return fmt.Errorf("postgres: put adjustment %s: %w", a.ID, err)
	}
	return t.execOther("put adjustment "+a.ID, `INSERT INTO adjustments (id, member_id, at, points, reason, made_by, request_hash, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET member_id = excluded.member_id, at = excluded.at, points = excluded.points,
			reason = excluded.reason, made_by = excluded.made_by, request_hash = excluded.request_hash, detail = excluded.detail`,
		a.ID, a.MemberID, a.At, a.Points, a.Reason, a.By, a.RequestHash, detail)
}

// AppendLedger implements engine.Tx. A seq already used is a unique
// violation: Update runs the function again, since under concurrency it
// means another transaction appended first, and gives up if it persists.
func (t *tx) AppendLedger(e *engine.LedgerEntry) error {
	if e.MemberID == "" {
		return fmt.Errorf("postgres: append ledger: %w", errEmptyID)
	}
	seq, err := toInt64("ledger seq", e.Seq)
	if err != nil {
		return err
	}
	return t.execOther(fmt.Sprintf("append ledger %s/%d", e.MemberID, e.Seq), `INSERT INTO ledger
		(member_id, seq, id, type, points, balance_after, at, ref, rules_version, note)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.MemberID, seq, e.ID, e.Type, e.Points, e.BalanceAfter, e.At, e.Ref, e.RulesVersion, e.Note)
}

// Ledger implements engine.Tx.
func (t *tx) Ledger(memberID string, before uint64, limit int) ([]*engine.LedgerEntry, error) {
	t.lockMember(memberID)
	upTo := int64(math.MaxInt64)
	if before > 0 && before-1 < math.MaxInt64 {
		upTo = int64(before - 1)
	}
	var out []*engine.LedgerEntry
	err := t.query("ledger of "+memberID, `SELECT member_id, seq, id, type, points, balance_after, at, ref, rules_version, note
		FROM ledger WHERE member_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT $3`,
		[]any{memberID, upTo, limitOf(limit)}, func(rows pgx.Rows) error {
			var e engine.LedgerEntry
			var seq int64
			if err := rows.Scan(&e.MemberID, &seq, &e.ID, &e.Type, &e.Points, &e.BalanceAfter, &e.At, &e.Ref, &e.RulesVersion, &e.Note); err != nil {
				return err
			}
			e.Seq, e.At = uint64(seq), e.At.UTC()
			out = append(out, &e)
			return nil
		})
	return out, err
}

const lotCols = `member_id, id, points, remaining, earned_at, available_at, expires_at, ref`

// expiresAt is a lot's expiry as stored: NULL for never.
func expiresAt(l *engine.Lot) any {
	if l.ExpiresAt.IsZero() {
		return nil
	}
	return l.ExpiresAt
}

func (t *tx) lots(what, sql string, args ...any) ([]*engine.Lot, error) {
	var out []*engine.Lot
	err := t.query(what, sql, args, func(rows pgx.Rows) error {
		var l engine.Lot
		var exp *time.Time
		if err := rows.Scan(&l.MemberID, &l.ID, &l.Points, &l.Remaining, &l.EarnedAt, &l.AvailableAt, &exp, &l.Ref); err != nil {
			return err
		}
		l.EarnedAt, l.AvailableAt = l.EarnedAt.UTC(), l.AvailableAt.UTC()
		if exp != nil {
			l.ExpiresAt = exp.UTC()
		}
		out = append(out, &l)
		return nil
	})
	return out, err
}

// PutLot implements engine.Tx. The open and due indexes are partial
// indexes of the table, so the database keeps them in step.
func (t *tx) PutLot(l *engine.Lot) error {
	if l.MemberID == "" || l.ID == "" {
		return fmt.Errorf("postgres: put lot: %w", errEmptyID)
	}
	t.putLotAhead(l)
	return t.execOther(fmt.Sprintf("put lot %s/%s", l.MemberID, l.ID), `INSERT INTO lots (`+lotCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (member_id, id) DO UPDATE SET points = excluded.points, remaining = excluded.remaining,
			earned_at = excluded.earned_at, available_at = excluded.available_at, expires_at = excluded.expires_at,
			ref = excluded.ref`,
		l.MemberID, l.ID, l.Points, l.Remaining, l.EarnedAt, l.AvailableAt, expiresAt(l), l.Ref)
}

// Lot implements engine.Tx.
func (t *tx) Lot(memberID, lotID string) (*engine.Lot, error) {
	t.lockMember(memberID)
	ls, err := t.lots("lot "+memberID+"/"+lotID, `SELECT `+lotCols+` FROM lots WHERE member_id = $1 AND id = $2`, memberID, lotID)
	if err != nil || len(ls) == 0 {
		return nil, err
	}
	return ls[0], nil
}

// OpenLots implements engine.Tx.
func (t *tx) OpenLots(memberID string) ([]*engine.Lot, error) {
	t.lockMember(memberID)
	return t.lots("open lots of "+memberID, `SELECT `+lotCols+` FROM lots
		WHERE member_id = $1 AND remaining > 0 ORDER BY expires_at ASC NULLS LAST, id`, memberID)
}

// OpenLotBalances implements engine.LotBalancer: OpenLots, reading only
// what a balance needs.
func (t *tx) OpenLotBalances(memberID string) ([]engine.LotBalance, error) {
	if t.err != nil {
		return nil, t.err
	}
	if lots, ok := t.openLotsAhead(memberID); ok {
		return lots, nil
	}
	t.lockMember(memberID)
	var out []engine.LotBalance
	err := t.query("open lots of "+memberID, `SELECT remaining, available_at, expires_at FROM lots
		WHERE member_id = $1 AND remaining > 0 ORDER BY expires_at ASC NULLS LAST, id`, []any{memberID}, func(rows pgx.Rows) error {
		var b engine.LotBalance
		var exp *time.Time
		if err := rows.Scan(&b.Remaining, &b.AvailableAt, &exp); err != nil {
			return err
		}
		b.AvailableAt = b.AvailableAt.UTC()
		if exp != nil {
			b.ExpiresAt = exp.UTC()
		}
		out = append(out, b)
		return nil
	})
	return out, err
}

// Lots implements engine.Tx.
func (t *tx) Lots(memberID string) ([]*engine.Lot, error) {
	t.lockMember(memberID)
	return t.lots("lots of "+memberID, `SELECT `+lotCols+` FROM lots WHERE member_id = $1`, memberID)
}

// DueLots implements engine.Tx.
func (t *tx) DueLots(until time.Time, after *engine.Lot, limit int) ([]*engine.Lot, error) {
	const q = `SELECT ` + lotCols + ` FROM lots WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $1`
	const order = ` ORDER BY expires_at, member_id, id LIMIT $2`
	switch {
	case after == nil:
		return t.lots("due lots", q+order, floorMicro(until), limitOf(limit))
	case !ceilMicro(after.ExpiresAt).Equal(after.ExpiresAt):
		// No stored stamp equals a finer one: everything after it starts
		// at the next microsecond.
		return t.lots("due lots", q+` AND expires_at >= $3`+order, floorMicro(until), limitOf(limit), ceilMicro(after.ExpiresAt))
	}
	return t.lots("due lots", q+` AND (expires_at, member_id, id) > ($3, $4, $5)`+order,
		floorMicro(until), limitOf(limit), after.ExpiresAt, after.MemberID, after.ID)
}

// AddMetric implements engine.Tx.
func (t *tx) AddMetric(memberID string, e engine.MetricEntry) error {
	if memberID == "" {
		return fmt.Errorf("postgres: add metric: %w", errEmptyID)
	}
	if ra := t.aheadOf(memberID); ra != nil && t.err == nil && t.write {
		ra.added = append(ra.added, e)
	}
	return t.execOther("add metric for "+memberID, `INSERT INTO metrics (member_id, at, spend, points, visits) VALUES ($1, $2, $3, $4, $5)`,
		memberID, e.At, e.Spend, e.Points, e.Visits)
}

// Metrics implements engine.Tx.
func (t *tx) Metrics(memberID string, since time.Time) ([]engine.MetricEntry, error) {
	t.lockMember(memberID)
	var out []engine.MetricEntry
	err := t.query("metrics of "+memberID, `SELECT at, spend, points, visits FROM metrics
		WHERE member_id = $1 AND at >= $2 ORDER BY at, n`, []any{memberID, ceilMicro(since)}, func(rows pgx.Rows) error {
		var e engine.MetricEntry
		if err := rows.Scan(&e.At, &e.Spend, &e.Points, &e.Visits); err != nil {
			return err
		}
		e.At = e.At.UTC()
		out = append(out, e)
		return nil
	})
	return out, err
}

// MetricSum implements engine.MetricSummer: the database adds up the
// window's entries, so a purchase reads one row instead of the window.
func (t *tx) MetricSum(memberID string, from, to time.Time) (engine.MetricEntry, error) {
	if t.err != nil {
		return engine.MetricEntry{}, t.err
	}
	if sum, ok := t.metricAhead(memberID, from, to); ok {
		return sum, nil
	}
	t.lockMember(memberID)
	var s engine.MetricEntry
	err := t.query("metric sum of "+memberID, `SELECT coalesce(sum(spend), 0)::bigint, coalesce(sum(points), 0)::bigint,
		coalesce(sum(visits), 0)::bigint FROM metrics WHERE member_id = $1 AND at >= $2 AND at <= $3`,
		[]any{memberID, ceilMicro(from), floorMicro(to)}, func(rows pgx.Rows) error {
			return rows.Scan(&s.Spend, &s.Points, &s.Visits)
		})
	return s, err
}

var (
	_ engine.PeriodUses     = (*tx)(nil)
	_ engine.PurchaseFinder = (*tx)(nil)
)

// RuleUsesByPeriod implements engine.PeriodUses: one query for the
// periods a purchase falls in.
func (t *tx) RuleUsesByPeriod(memberID, rule string, periods []string) ([]int64, error) {
	if t.err != nil {
		return nil, t.err
	}
	out := make([]int64, len(periods))
	ahead := true
	for i, p := range periods {
		n, ok := t.usesAhead(memberID, rule, p)
		out[i], ahead = n, ahead && ok
	}
	if ahead {
		return out, nil
	}
	t.lockMember(memberID)
	err := t.query("uses of "+rule, `SELECT period, uses FROM rule_uses WHERE member_id = $1 AND rule = $2 AND period = ANY($3)`,
		[]any{memberID, rule, periods}, func(rows pgx.Rows) error {
			var period string
			var n int64
			if err := rows.Scan(&period, &n); err != nil {
				return err
			}
			for i, p := range periods {
				if p == period {
					out[i] = n
				}
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PurchaseAndMember implements engine.PurchaseFinder: the member (locked
// in an Update), the purchase, and, read ahead for the rest of the
// purchase, the member's open lots, tier metric and rule uses (next,
// prefetch.go), in one round trip.
func (t *tx) PurchaseAndMember(purchaseID, key, member string, next engine.PurchaseReads) (*engine.Purchase, *engine.Member, error) {
	where := "id = $1"
	switch col, ok := uniqueColumns[key]; {
	case key == "":
		if !t.locked[member] {
			t.turn(member)
		}
	case !ok:
		return nil, nil, fmt.Errorf("postgres: member by %q: not a unique key", key)
	case member == "":
		p, err := t.Purchase(purchaseID)
		return p, nil, err
	default:
		where = col + " = $1 AND " + col + " <> ''"
	}
	var m *engine.Member
	var p *engine.Purchase
	if t.write {
		defer func() { t.holdsLocks = true }()
	}
	reads := []read{
		{"member " + member, `SELECT ` + memberCols + ` FROM members WHERE ` + where + t.forUpdate(), []any{member}, func(rows pgx.Rows) error {
			var err error
			m, err = t.scanMember(rows)
			return err
		}},
		{"purchase " + purchaseID, `SELECT ` + purchaseCols + ` FROM purchases WHERE id = $1`, []any{purchaseID}, func(rows pgx.Rows) error {
			var err error
			p, err = scanPurchase(rows)
			return err
		}},
	}
	ahead, ra := t.prefetchReads(where, member, next)
	if err := t.queries(append(reads, ahead...)...); err != nil {
		return nil, nil, err
	}
	if p == nil {
		t.sawAbsent(purchaseID)
	}
	if m != nil {
		ra.member, t.ahead = m.ID, ra
	}
	return p, m, nil
}

// RuleUses implements engine.Tx.
func (t *tx) RuleUses(memberID, rule, period string) (int64, error) {
	if t.err != nil {
		return 0, t.err
	}
	if n, ok := t.usesAhead(memberID, rule, period); ok {
		return n, nil
	}
	t.lockMember(memberID)
	var n int64
	err := t.query("uses of "+rule, `SELECT uses FROM rule_uses WHERE member_id = $1 AND rule = $2 AND period = $3`,
		[]any{memberID, rule, period}, func(rows pgx.Rows) error { return rows.Scan(&n) })
	return n, err
}

// AddRuleUse implements engine.Tx.
func (t *tx) AddRuleUse(memberID, rule, period string, delta int64) error {
	if t.err == nil && t.write {
		t.addUseAhead(memberID, rule, period, delta)
	}
	return t.execOther("add use of "+rule+" by "+memberID, `INSERT INTO rule_uses (member_id, rule, period, uses) VALUES ($1, $2, $3, $4)
		ON CONFLICT (member_id, rule, period) DO UPDATE SET uses = rule_uses.uses + excluded.uses`, memberID, rule, period, delta)
}

// Marked implements engine.Tx.
func (t *tx) Marked(key string) (bool, error) {
	found := false
	err := t.query("marker", `SELECT true FROM markers WHERE key = $1`, []any{key}, func(pgx.Rows) error {
		found = true
		return nil
	})
	return found, err
}

// Mark implements engine.Tx.
func (t *tx) Mark(key string) error {
	return t.execOther(fmt.Sprintf("mark %q", key), `INSERT INTO markers (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`, key)
}

// Setting implements engine.Tx.
func (t *tx) Setting(name string) ([]byte, error) {
	var value []byte
	err := t.query("setting "+name, `SELECT value FROM settings WHERE name = $1`, []any{name},
		func(rows pgx.Rows) error { return rows.Scan(&value) })
	return value, err
}

// PutSetting implements engine.Tx.
func (t *tx) PutSetting(name string, value []byte) error {
	return t.execOther("put setting "+name, `INSERT INTO settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
}

const rulesCols = `version, hash, source, loaded_at, loaded_by`

func (t *tx) rules(what, sql string, args ...any) ([]*engine.RulesVersion, error) {
	var out []*engine.RulesVersion
	err := t.query(what, sql, args, func(rows pgx.Rows) error {
		var v engine.RulesVersion
		if err := rows.Scan(&v.Version, &v.Hash, &v.Source, &v.LoadedAt, &v.By); err != nil {
			return err
		}
		v.LoadedAt = v.LoadedAt.UTC()
		out = append(out, &v)
		return nil
	})
	return out, err
}

func first[T any](recs []*T, err error) (*T, error) {
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

// PutRules implements engine.Tx.
func (t *tx) PutRules(v *engine.RulesVersion) error {
	return t.execOther(fmt.Sprintf("put rules version %d", v.Version), `INSERT INTO rules_versions (`+rulesCols+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (version) DO UPDATE SET hash = excluded.hash, source = excluded.source, loaded_at = excluded.loaded_at,
			loaded_by = excluded.loaded_by`, v.Version, v.Hash, v.Source, v.LoadedAt, v.By)
}

// RulesVersion implements engine.Tx.
func (t *tx) RulesVersion(n int) (*engine.RulesVersion, error) {
	return first(t.rules(fmt.Sprintf("rules version %d", n), `SELECT `+rulesCols+` FROM rules_versions WHERE version = $1`, n))
}

// RulesVersions implements engine.Tx.
func (t *tx) RulesVersions() ([]*engine.RulesVersion, error) {
	return t.rules("rules versions", `SELECT `+rulesCols+` FROM rules_versions ORDER BY version`)
}

// LatestRules implements engine.Tx.
func (t *tx) LatestRules() (*engine.RulesVersion, error) {
	return first(t.rules("latest rules", `SELECT `+rulesCols+` FROM rules_versions ORDER BY version DESC LIMIT 1`))
}

const summaryCols = `computed_at, analytics_window, members, active, segments, lifecycles, churn_risk, revenue,
	top_members, top_revenue, points_outstanding, liability, expiring_30, expiring_90`

// PutAnalyticsSummary implements engine.Tx.
func (t *tx) PutAnalyticsSummary(s *engine.AnalyticsSummary) error {
	segments, err := jsonOf(s.Segments)
	if err != nil {
		return err
	}
	lifecycles, err := jsonOf(s.Lifecycles)
	if err != nil {
		return err
	}
	return t.execOther("put analytics summary", `INSERT INTO analytics_summaries (`+summaryCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (computed_at) DO UPDATE SET analytics_window = excluded.analytics_window, members = excluded.members,
			active = excluded.active, segments = excluded.segments, lifecycles = excluded.lifecycles,
			churn_risk = excluded.churn_risk, revenue = excluded.revenue, top_members = excluded.top_members,
			top_revenue = excluded.top_revenue, points_outstanding = excluded.points_outstanding,
			liability = excluded.liability, expiring_30 = excluded.expiring_30, expiring_90 = excluded.expiring_90`,
		s.ComputedAt, s.Window, s.Members, s.Active, segments, lifecycles, s.ChurnRisk, s.Revenue, s.TopMembers,
		s.TopRevenue, s.PointsOutstanding, s.Liability, s.Expiring30, s.Expiring90)
}

// LatestAnalyticsSummary implements engine.Tx.
func (t *tx) LatestAnalyticsSummary() (*engine.AnalyticsSummary, error) {
	var out *engine.AnalyticsSummary
	err := t.query("latest analytics summary", `SELECT `+summaryCols+` FROM analytics_summaries ORDER BY computed_at DESC LIMIT 1`, nil,
		func(rows pgx.Rows) error {
			var s engine.AnalyticsSummary
			var segments, lifecycles []byte
			if err := rows.Scan(&s.ComputedAt, &s.Window, &s.Members, &s.Active, &segments, &lifecycles, &s.ChurnRisk, &s.Revenue,
				&s.TopMembers, &s.TopRevenue, &s.PointsOutstanding, &s.Liability, &s.Expiring30, &s.Expiring90); err != nil {
				return err
			}
			s.ComputedAt = s.ComputedAt.UTC()
			if err := fromJSON(segments, &s.Segments); err != nil {
				return err
			}
			if err := fromJSON(lifecycles, &s.Lifecycles); err != nil {
				return err
			}
			out = &s
			return nil
		})
	return out, err
}

// PutJobRun implements engine.Tx.
func (t *tx) PutJobRun(r *engine.JobRun) error {
	return t.execOther("put run of "+r.Name, `INSERT INTO job_runs (name, started_at, finished_at, processed, error) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name, started_at) DO UPDATE SET finished_at = excluded.finished_at, processed = excluded.processed,
			error = excluded.error`, r.Name, r.StartedAt, r.FinishedAt, r.Processed, r.Error)
}

// JobRuns implements engine.Tx.
func (t *tx) JobRuns(name string, limit int) ([]*engine.JobRun, error) {
	var out []*engine.JobRun
	err := t.query("runs of "+name, `SELECT name, started_at, finished_at, processed, error FROM job_runs
		WHERE name = $1 ORDER BY started_at DESC LIMIT $2`, []any{name, limitOf(limit)}, func(rows pgx.Rows) error {
		var r engine.JobRun
		if err := rows.Scan(&r.Name, &r.StartedAt, &r.FinishedAt, &r.Processed, &r.Error); err != nil {
			return err
		}
		r.StartedAt, r.FinishedAt = r.StartedAt.UTC(), r.FinishedAt.UTC()
		out = append(out, &r)
		return nil
	})
	return out, err
}

// TakeLease implements engine.Tx, on the database's clock, in the lease
// table the migrations run under too.
func (t *tx) TakeLease(name, holder string, ttl time.Duration) (bool, error) {
	held := false
	err := t.query("take lease "+name, `INSERT INTO loyalty_leases (name, holder, expires_at)
		VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE loyalty_leases.expires_at <= now() OR loyalty_leases.holder = excluded.holder
		RETURNING true`, []any{name, holder, ttl.Microseconds()}, func(rows pgx.Rows) error {
		held = true
		return nil
	})
	t.holdsLocks = true
	return held, err
}

// ReleaseLease implements engine.Tx.
func (t *tx) ReleaseLease(name, holder string) error {
	return t.execOther("release lease "+name, `DELETE FROM loyalty_leases WHERE name = $1 AND holder = $2`, name, holder)
}
