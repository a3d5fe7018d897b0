package store

import (
	"bytes"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// account is the part of a member that purchases, refunds, redemptions and
// expiry change. It lives in member_data (section 'z'), just after the
// history where the same write adds its ledger entry, lot and metric entry,
// so a purchase rewrites a page of member_data and none of members; the
// record in members keeps the rest, with these fields zero.
//
// A member written before schema 3 has no account record yet and the whole
// member in members; it is read as it is and split when next written.
//
// Its fields are stored by name, like the engine's (testdata/format.golden):
// a rename keeps the old stored name with `store:"name=OldName"`.
type account struct {
	Points         int64
	Debt           int64
	LifetimeEarned int64
	LifetimeSpend  int64
	PurchaseCount  int64
	LastPurchaseAt time.Time
	LedgerSeq      uint64
	PointsRedeemed int64
	RefundedSpend  int64
}

func accountOf(m *engine.Member) account {
	return account{
		Points: m.Points, Debt: m.Debt, LifetimeEarned: m.LifetimeEarned, LifetimeSpend: m.LifetimeSpend,
		PurchaseCount: m.PurchaseCount, LastPurchaseAt: m.LastPurchaseAt, LedgerSeq: m.LedgerSeq,
		PointsRedeemed: m.PointsRedeemed, RefundedSpend: m.RefundedSpend,
	}
}

func (a account) applyTo(m *engine.Member) {
	m.Points, m.Debt, m.LifetimeEarned, m.LifetimeSpend = a.Points, a.Debt, a.LifetimeEarned, a.LifetimeSpend
	m.PurchaseCount, m.LastPurchaseAt, m.LedgerSeq = a.PurchaseCount, a.LastPurchaseAt, a.LedgerSeq
	m.PointsRedeemed, m.RefundedSpend = a.PointsRedeemed, a.RefundedSpend
}

// profileOf is m as the members bucket holds it: without its account.
func profileOf(m *engine.Member) *engine.Member {
	p := *m
	account{}.applyTo(&p)
	return &p
}

// hasAccountFields tells whether a record of the members bucket still holds
// an account, which it must not once the member has an account record.
func hasAccountFields(m *engine.Member) bool {
	return accountOf(m) != account{}
}

func accountKey(memberID string) []byte {
	return memberSection(memberID, sectionAccount, 0)
}

// withAccount completes m, read from members, with its account record.
func withAccount(data *bolt.Bucket, m *engine.Member) error {
	v := data.Get(accountKey(m.ID))
	if v == nil {
		return nil
	}
	var a account
	if err := decode(v, &a); err != nil {
		return err
	}
	a.applyTo(m)
	return nil
}

// putIfChanged writes v under k unless k already holds exactly v: an
// unchanged record must not dirty its page.
func putIfChanged(b *bolt.Bucket, k, v []byte) error {
	if old := b.Get(k); old != nil && bytes.Equal(old, v) {
		return nil
	}
	return b.Put(k, v)
}
