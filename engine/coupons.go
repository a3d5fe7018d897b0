package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// couponData is the data of the coupon.* events.
type couponData struct {
	Code       string    `json:"code"`
	Reward     string    `json:"reward"`
	MemberID   string    `json:"member_id"`
	Source     string    `json:"source"`
	Points     int64     `json:"points"`
	ExpiresAt  time.Time `json:"expires_at"`
	StoreID    string    `json:"store_id,omitempty"`
	PurchaseID string    `json:"purchase_id,omitempty"`
	// Refunded tells, on coupon.cancelled and coupon.expired, whether the
	// points came back.
	Refunded bool `json:"refunded,omitempty"`
}

func (c *Coupon) data() couponData {
	return couponData{
		Code: FormatCode(c.Code), Reward: c.Reward, MemberID: c.MemberID, Source: c.Source, Points: c.Points,
		ExpiresAt: c.ExpiresAt, StoreID: c.StoreID, PurchaseID: c.PurchaseID, Refunded: c.Refunded,
	}
}

// bonusData is the data of a bonus.granted event: points, a reward's
// coupon, or both.
type bonusData struct {
	MemberID string `json:"member_id"`
	Kind     string `json:"kind"`
	Points   int64  `json:"points"`
	Reward   string `json:"reward,omitempty"`
	Code     string `json:"code,omitempty"`
}

// view shows a coupon.
func (c *Coupon) view() CouponView {
	v := CouponView{
		Code: FormatCode(c.Code), Reward: c.Reward, Title: c.Title, MemberID: c.MemberID, Status: c.Status,
		Source: c.Source, Points: c.Points, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt,
		UsedAt: c.UsedAt, StoreID: c.StoreID, PurchaseID: c.PurchaseID,
	}
	switch c.Status {
	case CouponCancelled:
		v.CancelledAt = c.EndedAt
	case CouponExpired:
		v.ExpiredAt = c.EndedAt
	}
	return v
}

// newCoupon makes a coupon of r for m, issued now, under the first of
// codes that no coupon has. It writes nothing: recordIssue does, once the
// caller has spent what it costs.
func (w writer) newCoupon(m *Member, r *rules.Reward, id, source string, codes []string) (*Coupon, error) {
	for _, code := range codes {
		taken, err := w.tx.Coupon(code)
		if err != nil {
			return nil, err
		}
		if taken != nil {
			continue
		}
		return &Coupon{
			Code: code, ID: id, MemberID: m.ID, Reward: r.Name, Title: r.Title, Source: source,
			Status: CouponIssued, IssuedAt: w.now, ExpiresAt: r.CouponLifetime.AddTo(w.now),
			RefundOnExpiry: r.RefundOnExpiry, RulesVersion: w.live.version.Version,
		}, nil
	}
	return nil, fmt.Errorf("issue a coupon: all %d codes drawn are taken", len(codes))
}

// recordIssue stores a new coupon, counts it in its reward's counts (as
// read by the caller, nil for none yet) and emits coupon.issued.
func (w writer) recordIssue(c *Coupon, count *RewardCount) error {
	if count == nil {
		count = &RewardCount{Reward: c.Reward}
	}
	count.Issued++
	count.Points += c.Points
	if err := w.tx.PutRewardCount(count); err != nil {
		return err
	}
	if err := w.tx.PutCoupon(c); err != nil {
		return err
	}
	return w.emit(EventCouponIssued, c.MemberID, c.data())
}

// bonusCoupon issues, as a bonus of kind (CouponBirthday, CouponTier), a
// coupon of the reward named to m, with no points spent; with announce
// (a bonus that is the coupon alone, no points) it emits bonus.granted. A bonus ignores the reward's cost, when and
// per-member limit, but not its validity window or its stock: outside the
// one or without the other no coupon is issued, and skipped says why.
// codes are candidate codes.
func (w writer) bonusCoupon(m *Member, name, id, kind string, codes []string, announce bool) (c *Coupon, skipped string, err error) {
	r := w.live.prog.Reward(name)
	if r == nil {
		// Parse checks that every reward named exists.
		return nil, "", fmt.Errorf("the rules name reward %q, which they do not have", name)
	}
	if !r.ValidAt(w.now) {
		return nil, ReasonNotInWindow, nil
	}
	count, err := w.tx.RewardCount(r.Name)
	if err != nil {
		return nil, "", err
	}
	if r.StockLimited && stockLeft(r, count) <= 0 {
		return nil, ReasonOutOfStock, nil
	}
	if c, err = w.newCoupon(m, r, id, kind, codes); err != nil {
		return nil, "", err
	}
	if err := w.recordIssue(c, count); err != nil {
		return nil, "", err
	}
	if !announce {
		return c, "", nil
	}
	err = w.emit(EventBonusGranted, m.ID, bonusData{MemberID: m.ID, Kind: kind, Reward: r.Name, Code: FormatCode(c.Code)})
	return c, "", err
}

// promotionCoupons issues the coupons of the tier levels an active member
// was just promoted through: every level above from (the index of the
// tier they held) up to the one they hold now that names a reward. A
// member whose old tier the rules no longer have was placed, not
// promoted, and gets none. The codes are drawn here, in the write: a
// promotion is decided inside it, and a write run again draws new ones,
// which nothing outside the transaction has seen.
func (w writer) promotionCoupons(m *Member, from int, log func(msg string, args ...any)) ([]CouponView, error) {
	prog := w.live.prog
	to := prog.Tiers.Index(m.Tier)
	if from < 0 || to <= from || m.Status != StatusActive {
		return nil, nil
	}
	var out []CouponView
	for i := from + 1; i <= to; i++ {
		level := prog.Tiers.Levels[i]
		if level.Reward == "" {
			continue
		}
		id := fmt.Sprintf("tier:%s:%s:%d", m.ID, level.Name, w.now.UnixMicro())
		c, skipped, err := w.bonusCoupon(m, level.Reward, id, CouponTier, newCouponCodes(couponCodeTries), true)
		if err != nil {
			return nil, err
		}
		if skipped != "" {
			log("a promotion's reward was not issued", "member", m.ID, "tier", level.Name, "reward", level.Reward, "reason", skipped)
			continue
		}
		out = append(out, c.view())
	}
	return out, nil
}

// findCoupon reads a coupon by a code as a client sent it; a code that
// cannot be one is as unknown as one nobody has.
func findCoupon(tx Tx, code string) (*Coupon, error) {
	canon, ok := CanonicalCode(code)
	if ok {
		c, err := tx.Coupon(canon)
		if err != nil || c != nil {
			return c, err
		}
	}
	return nil, Errorf(ENOTFOUND, "no coupon %q", code)
}

// Coupon returns a coupon by its code, matched ignoring case, dashes and
// spaces.
func (e *Engine) Coupon(ctx context.Context, code string) (*CouponView, error) {
	var v CouponView
	err := e.store.View(ctx, func(tx Tx) error {
		c, err := findCoupon(tx, code)
		if err == nil {
			v = c.view()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// MemberCoupons lists a member's coupons, newest first.
func (e *Engine) MemberCoupons(ctx context.Context, memberID string) ([]CouponView, error) {
	out := []CouponView{}
	err := e.store.View(ctx, func(tx Tx) error {
		if _, err := getMember(tx, memberID); err != nil {
			return err
		}
		cs, err := tx.MemberCoupons(memberID)
		for i := len(cs) - 1; i >= 0; i-- {
			out = append(out, cs[i].view())
		}
		return err
	})
	return out, err
}

// CouponUse is a till's use of a coupon.
type CouponUse struct {
	ID         string `json:"id"`
	StoreID    string `json:"store_id"`
	PurchaseID string `json:"purchase_id,omitempty"`
}

// refuseCoupon says why a coupon cannot be used or cancelled.
func refuseCoupon(c *Coupon, reason string) error {
	return ReasonErrorf(EUNPROCESSABLE, reason, "coupon %s is %s", FormatCode(c.Code), reason)
}

// UseCoupon burns a coupon at a till, once: the same request again (its
// id) gets the first answer, any other use of a used, expired or
// cancelled coupon is refused with the reason. A coupon past its expiry
// is expired even before the expire-coupons job has marked it; a blocked
// member's coupons are refused too.
func (e *Engine) UseCoupon(ctx context.Context, code string, req CouponUse) (res *CouponView, replayed bool, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, false, err
	}
	if err := checkRecordID(req.ID); err != nil {
		return nil, false, err
	}
	if req.StoreID == "" {
		return nil, false, FieldErrorf(EINVALID, "store_id", "is required: the store the coupon is used at")
	}
	for _, f := range []struct{ name, value string }{{"store_id", req.StoreID}, {"purchase_id", req.PurchaseID}} {
		if err := checkText(f.name, f.value, MaxIDLen); err != nil {
			return nil, false, err
		}
	}
	err = e.store.Update(ctx, func(tx Tx) error {
		res, replayed = nil, false
		c, err := findCoupon(tx, code)
		if err != nil {
			return err
		}
		hash := hashRequest(struct {
			Code string
			Req  CouponUse
		}{c.Code, req})
		if c.UseID == req.ID {
			res, err = replay("coupon use", req.ID, hash, c.UseHash, c.UseResult)
			replayed = err == nil
			return err
		}
		switch {
		case c.Status != CouponIssued:
			return refuseCoupon(c, c.Status)
		case !now.Before(c.ExpiresAt):
			return refuseCoupon(c, ReasonExpired)
		}
		m, err := getMember(tx, c.MemberID)
		if err != nil {
			return err
		}
		if m.Status == StatusBlocked {
			return ReasonErrorf(EUNPROCESSABLE, ReasonBlocked, "member %q is blocked: their coupons cannot be used", m.ID)
		}
		count, err := mustCount(tx, c.Reward)
		if err != nil {
			return err
		}
		count.Used++
		if err := tx.PutRewardCount(count); err != nil {
			return err
		}
		c.Status, c.UsedAt, c.UseID, c.UseHash = CouponUsed, now, req.ID, hash
		c.StoreID, c.PurchaseID = req.StoreID, req.PurchaseID
		c.UseResult = c.view()
		if err := tx.PutCoupon(c); err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		if err := w.emit(EventCouponUsed, c.MemberID, c.data()); err != nil {
			return err
		}
		res = &c.UseResult
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}

// mustCount reads the counts of a reward that has issued a coupon.
func mustCount(tx Tx, reward string) (*RewardCount, error) {
	count, err := tx.RewardCount(reward)
	if err == nil && count == nil {
		err = fmt.Errorf("reward %q has coupons but no counts", reward)
	}
	return count, err
}

// CancelCoupon cancels a coupon: its points go back to the lots they came
// from (as a cancelled redemption's do) and its reward's stock gets it
// back. An issued coupon may be cancelled by a till; a used one only when
// admin is set (the good was returned, say). An expired coupon is over and
// is refused; cancelling twice answers the cancelled coupon again.
func (e *Engine) CancelCoupon(ctx context.Context, code string, admin bool) (*CouponView, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	entryID := newIDs(now, 1)[0]
	var v CouponView
	err = e.store.Update(ctx, func(tx Tx) error {
		c, err := findCoupon(tx, code)
		if err != nil {
			return err
		}
		switch {
		case c.Status == CouponCancelled:
			v = c.view()
			return nil
		case c.Status == CouponExpired:
			return refuseCoupon(c, ReasonExpired)
		case c.Status == CouponUsed && !admin:
			return ReasonErrorf(EUNPROCESSABLE, ReasonUsed, "coupon %s is used: only an admin may cancel it now", FormatCode(c.Code))
		}
		m, err := getMember(tx, c.MemberID)
		if err != nil {
			return err
		}
		if err := checkGiveBack(m, c.Points); err != nil {
			return err
		}
		count, err := mustCount(tx, c.Reward)
		if err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		if err := w.refund(m, c, entryID, "coupon cancelled: "+c.Reward); err != nil {
			return err
		}
		if c.Status == CouponUsed {
			count.Used--
		}
		count.Cancelled++
		count.Points -= c.Points
		if err := tx.PutRewardCount(count); err != nil {
			return err
		}
		c.Status, c.EndedAt = CouponCancelled, now
		if err := tx.PutCoupon(c); err != nil {
			return err
		}
		v = c.view()
		return w.emit(EventCouponCancelled, c.MemberID, c.data())
	})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// refund gives a coupon's points back to m, who the caller writes, with
// a reward_refund ledger entry; nothing for a coupon that cost none.
// Callers check checkGiveBack first.
func (w writer) refund(m *Member, c *Coupon, entryID, note string) error {
	if c.Points == 0 {
		return nil
	}
	if err := w.giveBack(m, c.Points, c.Draws, "coupon "+FormatCode(c.Code)); err != nil {
		return err
	}
	c.Refunded = true
	if err := w.appendEntry(m, entryID, LedgerRewardRefund, c.Points, FormatCode(c.Code), note); err != nil {
		return err
	}
	return w.tx.PutMember(m)
}

// expireCoupons marks every issued coupon past its expiry as expired, a
// chunk per transaction, reading only due coupons from the expiry index;
// a coupon of a reward with refund_on_expiry gives its points back.
func (e *Engine) expireCoupons(ctx context.Context, live *liveRules, now time.Time) (int64, error) {
	return e.drainDue(ctx, now, "expire coupons", func(tx Tx, ids []string) (int, error) {
		due, err := tx.DueCoupons(now, nil, e.jobChunk)
		if err != nil {
			return 0, err
		}
		members := map[string]*Member{}
		counts := map[string]*RewardCount{}
		w := writer{tx: tx, now: now, live: live}
		for i, c := range due {
			if err := expireCoupon(w, c, members, counts, ids[i]); err != nil {
				return 0, err
			}
		}
		for _, count := range counts {
			if err := tx.PutRewardCount(count); err != nil {
				return 0, err
			}
		}
		return len(due), nil
	})
}

// expireCoupon expires one coupon, with the members and counts of the
// chunk read once each.
func expireCoupon(w writer, c *Coupon, members map[string]*Member, counts map[string]*RewardCount, entryID string) error {
	count := counts[c.Reward]
	if count == nil {
		var err error
		if count, err = mustCount(w.tx, c.Reward); err != nil {
			return err
		}
		counts[c.Reward] = count
	}
	if c.RefundOnExpiry && c.Points > 0 {
		m := members[c.MemberID]
		if m == nil {
			var err error
			if m, err = getMember(w.tx, c.MemberID); err != nil {
				return err
			}
			members[c.MemberID] = m
		}
		// A balance at the largest total keeps its coupon's points
		// rather than failing every run of the job.
		if checkGiveBack(m, c.Points) == nil {
			if err := w.refund(m, c, entryID, "coupon expired: "+c.Reward); err != nil {
				return err
			}
			count.Points -= c.Points
		}
	}
	count.Expired++
	c.Status, c.EndedAt = CouponExpired, w.now
	if err := w.tx.PutCoupon(c); err != nil {
		return err
	}
	return w.emit(EventCouponExpired, c.MemberID, c.data())
}

// couponNoticeData is the data of a coupon.expiring event.
type couponNoticeData struct {
	Code      string    `json:"code"`
	Reward    string    `json:"reward"`
	MemberID  string    `json:"member_id"`
	ExpiresAt time.Time `json:"expires_at"`
	ExpiresOn string    `json:"expires_on"`
}

// notifyCoupons records one coupon.expiring event per issued coupon that
// expires within the notice period, once per coupon (a marker).
func (e *Engine) notifyCoupons(ctx context.Context, live *liveRules, now, until time.Time) (int64, error) {
	var processed int64
	var after *Coupon
	for {
		if err := ctx.Err(); err != nil {
			return processed, err
		}
		var notices []*Coupon
		var n int
		err := e.store.View(ctx, func(tx Tx) error {
			due, err := tx.DueCoupons(until, after, e.jobChunk)
			n = len(due)
			for _, c := range due {
				after = c
				if now.Before(c.ExpiresAt) {
					notices = append(notices, c)
				}
			}
			return err
		})
		if err != nil {
			return processed, fmt.Errorf("find expiring coupons: %w", err)
		}
		if len(notices) > 0 {
			err = e.store.Update(ctx, func(tx Tx) error {
				for _, c := range notices {
					key := "notice:coupon:" + c.Code
					if done, err := tx.Marked(key); err != nil || done {
						if err != nil {
							return err
						}
						continue
					}
					on := c.ExpiresAt.Add(-time.Nanosecond).In(live.prog.Location).Format(dateLayout)
					data := couponNoticeData{Code: FormatCode(c.Code), Reward: c.Reward, MemberID: c.MemberID, ExpiresAt: c.ExpiresAt, ExpiresOn: on}
					if err := emit(tx, now, EventCouponExpiring, c.MemberID, data); err != nil {
						return err
					}
					if err := tx.Mark(key); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return processed, fmt.Errorf("record coupon notices: %w", err)
			}
		}
		processed += int64(len(notices))
		if n < e.jobChunk {
			return processed, nil
		}
	}
}
