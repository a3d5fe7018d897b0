package engine

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// MemberExport is everything stored about a member, for a subject access
// request.
type MemberExport struct {
	Member      *MemberView        `json:"member"`
	Ledger      []LedgerView       `json:"ledger"`
	Purchases   []*PurchaseView    `json:"purchases"`
	Refunds     []RefundResult     `json:"refunds"`
	Redemptions []RedemptionResult `json:"redemptions"`
	Adjustments []AdjustmentResult `json:"adjustments"`
	Transfers   []ExportedTransfer `json:"transfers"`
	Coupons     []CouponView       `json:"coupons"`
	Analytics   *AnalyticsView     `json:"analytics"`
	Events      []EventView        `json:"events"`
}

// exportPage is how many purchases ExportMember reads at a time while it
// looks for the member's: purchases have no index by member.
const exportPage = 1000

// ExportMember gathers everything stored about a member: the profile,
// the ledger oldest first, the purchases, refunds, redemptions,
// adjustments and transfers the ledger and the purchases name, the
// coupons, the analytics and the events about them. Purchases are found by
// reading them all, as nothing else needs them by member; an export is
// rare.
func (e *Engine) ExportMember(ctx context.Context, id string) (*MemberExport, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	out := &MemberExport{
		Ledger: []LedgerView{}, Purchases: []*PurchaseView{}, Refunds: []RefundResult{},
		Redemptions: []RedemptionResult{}, Adjustments: []AdjustmentResult{}, Transfers: []ExportedTransfer{},
		Coupons: []CouponView{}, Events: []EventView{},
	}
	err = e.store.View(ctx, func(tx Tx) error {
		m, err := getMember(tx, id)
		if err != nil {
			return err
		}
		if out.Member, err = memberView(tx, live, m, now); err != nil {
			return err
		}
		out.Analytics = out.Member.Analytics
		entries, err := tx.Ledger(m.ID, 0, 0)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for i := len(entries) - 1; i >= 0; i-- {
			en := entries[i]
			out.Ledger = append(out.Ledger, LedgerView{
				ID: en.ID, Type: en.Type, Points: en.Points, BalanceAfter: en.BalanceAfter,
				At: en.At, Ref: en.Ref, RulesVersion: en.RulesVersion, Note: en.Note,
			})
			if seen[en.Type+"\x00"+en.Ref] {
				continue
			}
			seen[en.Type+"\x00"+en.Ref] = true
			if err := out.addRecord(tx, m.ID, en); err != nil {
				return err
			}
		}
		if err := out.addPurchases(ctx, tx, live, m.ID); err != nil {
			return err
		}
		coupons, err := tx.MemberCoupons(m.ID)
		if err != nil {
			return err
		}
		for _, c := range coupons {
			out.Coupons = append(out.Coupons, c.view())
		}
		events, err := tx.MemberEvents(m.ID)
		if err != nil {
			return err
		}
		for _, ev := range events {
			out.Events = append(out.Events, ViewEvent(ev))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ExportedTransfer is a transfer as one side's export shows it: the points
// signed for this member (negative when given), this member's balance
// after it and the other member's id.
type ExportedTransfer struct {
	ID        string    `json:"id"`
	Direction string    `json:"direction"`
	Other     string    `json:"other_member_id"`
	Points    int64     `json:"points"`
	Balance   int64     `json:"balance"`
	CreatedAt time.Time `json:"created_at"`
}

// addRecord adds the record a ledger entry names, if it is one the
// export lists and the member's.
func (out *MemberExport) addRecord(tx Tx, memberID string, en *LedgerEntry) error {
	switch en.Type {
	case LedgerRedeem:
		r, err := tx.Redemption(en.Ref)
		if err == nil && r != nil && r.MemberID == memberID {
			res := r.Result
			res.Cancelled = r.Cancelled
			out.Redemptions = append(out.Redemptions, res)
		}
		return err
	case LedgerAdjust:
		a, err := tx.Adjustment(en.Ref)
		if err == nil && a != nil && a.MemberID == memberID {
			out.Adjustments = append(out.Adjustments, a.Result)
		}
		return err
	case LedgerTransferOut, LedgerTransferIn:
		t, err := tx.Transfer(en.Ref)
		if err == nil && t != nil {
			// The member's own side only: the other party's balance is
			// theirs, not this member's data.
			x := ExportedTransfer{ID: t.Result.ID, Points: t.Result.Points, Balance: t.Result.ToBalance, CreatedAt: t.Result.CreatedAt}
			x.Direction, x.Other = "in", t.FromMemberID
			if en.Type == LedgerTransferOut {
				x.Direction, x.Other, x.Points, x.Balance = "out", t.ToMemberID, -t.Result.Points, t.Result.FromBalance
			}
			out.Transfers = append(out.Transfers, x)
		}
		return err
	}
	return nil
}

// addPurchases adds the member's purchases and their refunds, reading
// every purchase in time order a page at a time.
func (out *MemberExport) addPurchases(ctx context.Context, tx Tx, live *liveRules, memberID string) error {
	from, to := time.Time{}, LatestTime.Add(time.Hour)
	// seen holds the purchases of the instant a page ended on, which the
	// next page, starting at that instant, lists again.
	seen := map[string]bool{}
	page := exportPage
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ps, err := tx.PurchasesBetween(from, to, page)
		if err != nil {
			return err
		}
		fresh := 0
		for _, p := range ps {
			if seen[p.ID] {
				continue
			}
			fresh++
			if p.MemberID != memberID {
				continue
			}
			out.Purchases = append(out.Purchases, purchaseView(live.prog, p))
			for _, rid := range p.Refunds {
				r, err := tx.Refund(rid)
				if err != nil {
					return err
				}
				if r != nil {
					out.Refunds = append(out.Refunds, r.Result)
				}
			}
		}
		if len(ps) < page {
			return nil
		}
		last := ps[len(ps)-1].OccurredAt
		if fresh == 0 {
			// A whole page of one instant, seen: read more of it at once.
			page *= 2
		}
		if !last.Equal(from) {
			seen = map[string]bool{}
		}
		for _, p := range ps {
			if p.OccurredAt.Equal(last) {
				seen[p.ID] = true
			}
		}
		from = last
	}
}

// erasedData is the data of a member.erased event.
type erasedData struct {
	MemberID  string `json:"member_id"`
	Forfeited int64  `json:"forfeited"`
}

// Erase removes a member's personal data: name, email, phone, birthday,
// attributes, external id and analytics. The member stays, as erased, so
// that the books add up: the ledger and the purchases keep their amounts,
// the balance is forfeited with an erase entry, coupons still issued are
// cancelled (their points are part of what is forfeited), and the events
// about the member lose the personal data their payloads carried. Nothing
// finds the member by an old identifier afterwards, and purchases for them
// are refused. Erasing an erased member answers it as it is.
func (e *Engine) Erase(ctx context.Context, id string) (*MemberView, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	entryIDs := newIDs(now, 1)
	// What the write needs is found in a read first: the events of the
	// member and of those merged into it (finding them reads the whole
	// feed, which in the write would hold up every till: bbolt has one
	// writer), and the feed's head then, so that the write looks only at
	// the events that came since.
	var (
		merged []string
		found  = map[string][]*Event{}
		head   uint64
	)
	err = e.store.View(ctx, func(tx Tx) error {
		m, err := getMember(tx, id)
		if err != nil {
			return err
		}
		if m.Status == StatusMerged {
			refusal := Errorf(EUNPROCESSABLE, "member %s was merged into %s: erase that member, which erases both", m.ID, m.MergedInto)
			refusal.Info = map[string]string{"merged_into": m.MergedInto}
			return refusal
		}
		byRoot, err := mergedMembers(ctx, tx)
		if err != nil {
			return err
		}
		merged = byRoot[id]
		for _, mid := range append([]string{id}, merged...) {
			if found[mid], err = tx.MemberEvents(mid); err != nil {
				return err
			}
		}
		head, err = feedHead(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	var view *MemberView
	err = e.store.Update(ctx, func(tx Tx) error {
		m, err := getMember(tx, id)
		if err != nil {
			return err
		}
		if m.Status == StatusErased {
			view, err = memberView(tx, live, m, now)
			return err
		}
		if m.Status == StatusMerged {
			return Errorf(ECONFLICT, "member %s was merged while being erased; erase %s", m.ID, m.MergedInto)
		}
		// Members merged into this one are the same person: their records
		// keep no balance, but they keep their identifiers, which would
		// still lead to this member. Before this write's own events,
		// which carry no personal data.
		for _, mid := range merged {
			mm, err := getMember(tx, mid)
			if err != nil {
				return err
			}
			if err := redactEvents(tx, mm.ID, found[mm.ID], head, personalData(mm)); err != nil {
				return err
			}
			clearPersonal(mm)
			if err := tx.PutMember(mm); err != nil {
				return err
			}
		}
		if err := redactEvents(tx, m.ID, found[m.ID], head, personalData(m)); err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		if err := w.cancelForErasure(m); err != nil {
			return err
		}
		forfeited := m.Points
		if err := w.forfeit(m, entryIDs[0]); err != nil {
			return err
		}
		clearPersonal(m)
		m.Status = StatusErased
		if err := tx.PutMember(m); err != nil {
			return err
		}
		if err := w.emit(EventMemberErased, m.ID, erasedData{MemberID: m.ID, Forfeited: forfeited}); err != nil {
			return err
		}
		view, err = memberView(tx, live, m, now)
		return err
	})
	return view, err
}

// clearPersonal removes a member's personal data from its record.
func clearPersonal(m *Member) {
	m.ExternalID, m.Email, m.Phone, m.Name, m.Birthday = "", "", "", "", ""
	m.Attributes, m.Analytics = nil, nil
}

// feedHead returns the seq of the newest event in the feed.
func feedHead(tx Tx) (uint64, error) {
	var head uint64
	for {
		evs, err := tx.Events(head, 1000)
		if err != nil || len(evs) == 0 {
			return head, err
		}
		head = evs[len(evs)-1].Seq
	}
}

// cancelForErasure cancels m's coupons still issued, without giving
// their points back: the balance is forfeited anyway, and the points
// stay spent on the coupon in the books.
func (w writer) cancelForErasure(m *Member) error {
	coupons, err := w.tx.MemberCoupons(m.ID)
	if err != nil {
		return err
	}
	for _, c := range coupons {
		if c.Status != CouponIssued {
			continue
		}
		count, err := mustCount(w.tx, c.Reward)
		if err != nil {
			return err
		}
		count.Cancelled++
		if err := w.tx.PutRewardCount(count); err != nil {
			return err
		}
		c.Status, c.EndedAt = CouponCancelled, w.now
		if err := w.tx.PutCoupon(c); err != nil {
			return err
		}
		if err := w.emit(EventCouponCancelled, c.MemberID, c.data()); err != nil {
			return err
		}
	}
	return nil
}

// forfeit empties m's lots and debt, with an erase entry for the balance
// that goes.
func (w writer) forfeit(m *Member, entryID string) error {
	lots, err := w.tx.OpenLots(m.ID)
	if err != nil {
		return err
	}
	for _, l := range lots {
		l.Remaining = 0
		if err := w.tx.PutLot(l); err != nil {
			return err
		}
	}
	if m.Points == 0 && m.Debt == 0 {
		return nil
	}
	points := m.Points
	m.Points, m.Debt = 0, 0
	return w.appendEntry(m, entryID, LedgerErase, -points, "", "balance forfeited: member erased")
}

// personalData lists m's personal values, as they may appear in what
// other records copied.
func personalData(m *Member) []string {
	var out []string
	for _, v := range []string{m.ExternalID, m.Email, m.Phone, m.Name, m.Birthday} {
		if v != "" {
			out = append(out, v)
		}
	}
	for _, v := range m.Attributes {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// personalKeys are the keys of event data that carry a member's
// personal data, whatever the event (member.enrolled, member.updated…).
var personalKeys = map[string]bool{
	"external_id": true, "email": true, "phone": true, "name": true, "birthday": true, "attributes": true,
}

// redactEvents rewrites the stored events about a member so that their
// data no longer carries the member's personal data: keys that hold it
// are dropped, and any other string equal to one of pii is emptied. found
// are the member's events as a read before saw them, when the feed's
// newest event was last; the feed after it is read again for those that
// came since.
func redactEvents(tx Tx, memberID string, found []*Event, last uint64, pii []string) error {
	since, err := tx.Events(last, 0)
	if err != nil {
		return err
	}
	events := make([]*Event, 0, len(found)+len(since))
	for _, ev := range found {
		events = append(events, cloneEvent(ev))
	}
	for _, ev := range since {
		if ev.MemberID == memberID {
			events = append(events, ev)
		}
	}
	for _, ev := range events {
		changed := false
		if ev.Payload != nil {
			var data any
			if err := json.Unmarshal(ev.Payload, &data); err != nil {
				return Errorf(EINTERNAL, "event %s: payload: %v", ev.ID, err)
			}
			if data, changed = redact(data, pii); changed {
				if ev.Payload, err = json.Marshal(data); err != nil {
					return err
				}
			}
		}
		for k, v := range ev.Notice {
			if personalKeys[k] || isPersonal(v, pii) {
				delete(ev.Notice, k)
				changed = true
			}
		}
		if changed {
			if err := tx.RewriteEvent(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// cloneEvent copies an event read outside the write, so that a write run
// again starts from the event as it was read.
func cloneEvent(ev *Event) *Event {
	c := *ev
	c.Payload = append([]byte(nil), ev.Payload...)
	if ev.Payload == nil {
		c.Payload = nil
	}
	if ev.Notice != nil {
		c.Notice = make(map[string]string, len(ev.Notice))
		for k, v := range ev.Notice {
			c.Notice[k] = v
		}
	}
	return &c
}

// redact returns v without personal data, and whether it took any out.
func redact(v any, pii []string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		changed := false
		for k, e := range x {
			if personalKeys[k] {
				delete(x, k)
				changed = true
				continue
			}
			var c bool
			if x[k], c = redact(e, pii); c {
				changed = true
			}
		}
		return x, changed
	case []any:
		changed := false
		for i, e := range x {
			var c bool
			if x[i], c = redact(e, pii); c {
				changed = true
			}
		}
		return x, changed
	case string:
		if isPersonal(x, pii) {
			return "", true
		}
	}
	return v, false
}

func isPersonal(s string, pii []string) bool {
	for _, p := range pii {
		if s == p || len(p) >= 4 && strings.Contains(s, p) {
			return true
		}
	}
	return false
}
