package store

import (
	"bytes"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// memberData checks every member's sections of member_data (see keys.go).
// Problems name the kinds of record as the buckets they once were: ledger,
// lots, lots_open, metrics.
func (c *checker) memberData(btx *bolt.Tx) error {
	data, expiry, members := btx.Bucket(bucketMemberData), btx.Bucket(bucketExpiry), btx.Bucket(bucketMembers)
	cur := data.Cursor()
	for k, _ := cur.First(); k != nil; {
		mk := memberOf(members, k, isSection)
		if mk == nil {
			c.problemf("%s: %x starts with no member key and section", bucketMemberData, k)
			mk = k
		} else {
			mk = append([]byte(nil), mk...)
			c.accountIn(members, data, mk)
			for _, check := range []func(data, expiry *bolt.Bucket, mk []byte){c.historyOf, c.ledgerOf, c.lotsOf, c.openLotsOf, c.metricsOf} {
				check(data, expiry, mk)
			}
		}
		if c.err != nil {
			return c.err
		}
		// Section bytes are below 0xff: this is the next member's first key.
		k, _ = cur.Seek(append(mk[:len(mk):len(mk)], 0xff))
	}
	return nil
}

func isSection(b byte) bool {
	return b == sectionHistory || b == sectionOpen || b == sectionSum || b == sectionAccount
}

// memberOf returns the member key an entry of member_data starts with, or
// nil, given the section bytes of the file's layout. The entry does not say
// which member-key form it starts with: a form that a stored member has
// wins, then the length-prefixed one, whose length is unlikely to fit a
// UUID's first bytes by chance.
func memberOf(members *bolt.Bucket, k []byte, isSection func(byte) bool) []byte {
	var forms [][]byte
	if len(k) >= 2 {
		if n := 2 + int(binary.BigEndian.Uint16(k)); len(k) > n && isSection(k[n]) {
			forms = append(forms, k[:n])
		}
	}
	if len(k) > uuidLen && isSection(k[uuidLen]) {
		forms = append(forms, k[:uuidLen])
	}
	for _, f := range forms {
		if members.Get(f) != nil {
			return f
		}
	}
	if len(forms) > 0 {
		return forms[0]
	}
	return nil
}

// section iterates the entries of a member's section.
func section(data *bolt.Bucket, mk []byte, s byte, fn func(k, v []byte)) {
	p := append(mk[:len(mk):len(mk)], s)
	c := data.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		fn(k, v)
	}
}

// historyOfKind iterates the member's history records of one kind.
func historyOfKind(data *bolt.Bucket, mk []byte, kind byte, fn func(k, v []byte)) {
	_ = eachInHistory(data.Cursor(), sectionOf(mk, sectionHistory, 0), 0, kind, func(k, v []byte) error {
		fn(k, v)
		return nil
	})
}

// historyOf checks that every record of the member's history is of a
// known kind.
func (c *checker) historyOf(data, _ *bolt.Bucket, mk []byte) {
	p := sectionOf(mk, sectionHistory, 0)
	section(data, mk, sectionHistory, func(k, _ []byte) {
		if kind := historyKind(k, p); kind != historyLedger && kind != historyLot && kind != historyMetric {
			c.problemf("%s: history record %x is of no known kind", bucketMemberData, k)
		}
	})
}

// accountIn checks the member's account record, if it has one yet: one
// record, readable, and the member's record in members without an account
// of its own, which would otherwise be a second, stale copy.
func (c *checker) accountIn(members, data *bolt.Bucket, mk []byte) {
	section(data, mk, sectionAccount, func(k, v []byte) {
		var a account
		if !c.decodeAt(bucketMemberData, k, v, &a) {
			return
		}
		if len(k) != len(mk)+1 {
			c.problemf("account: key %x is not a member key and the section byte", k)
			return
		}
		var m engine.Member
		switch pv := members.Get(mk); {
		case pv == nil:
			c.problemf("account: %x belongs to no member", k)
		case c.decodeAt(bucketMembers, mk, pv, &m) && hasAccountFields(&m):
			c.problemf("member %s: has an account record and still an account in members", m.ID)
		}
	})
}

// ledgerOf checks that the member's ledger is numbered 1..N with a
// consistent BalanceAfter chain, each entry's time key no earlier than its
// time.
func (c *checker) ledgerOf(data, _ *bolt.Bucket, mk []byte) {
	p := sectionOf(mk, sectionHistory, 0)
	var prevSeq uint64
	var prevBal int64
	historyOfKind(data, mk, historyLedger, func(k, v []byte) {
		var e engine.LedgerEntry
		if !c.decodeAt(bucketMemberData, k, v, &e) {
			return
		}
		if at := historyTime(k, p); !bytes.Equal(k, ledgerKey(memberSection(e.MemberID, sectionHistory, 0), at, e.Seq)) || at < timeKey(e.At) {
			c.problemf("ledger: key %x holds entry %d of member %s at %s", k, e.Seq, e.MemberID, e.At)
		}
		if e.Seq != prevSeq+1 {
			c.problemf("ledger of %s: entry %d follows entry %d", e.MemberID, e.Seq, prevSeq)
		}
		if want := prevBal + e.Points; e.BalanceAfter != want {
			c.problemf("ledger of %s: entry %d has balance after %d, want %d + %d = %d", e.MemberID, e.Seq, e.BalanceAfter, prevBal, e.Points, want)
		}
		prevSeq, prevBal = e.Seq, e.BalanceAfter
	})
}

// lotsOf checks that each of the member's lots is in lots_open, with what
// it holds, while it has points left, and in expiry while those expire.
func (c *checker) lotsOf(data, expiry *bolt.Bucket, mk []byte) {
	historyOfKind(data, mk, historyLot, func(k, v []byte) {
		var l engine.Lot
		if !c.decodeAt(bucketMemberData, k, v, &l) {
			return
		}
		if !bytes.Equal(k, lotKey(l.MemberID, l.ID)) {
			c.problemf("lots: key %x holds lot %s/%s", k, l.MemberID, l.ID)
		}
		if ok := openLotKey(&l); ok != nil {
			switch ov := data.Get(ok); {
			case !has(data, ok):
				c.problemf("lot %s/%s: has %d remaining but is missing from lots_open", l.MemberID, l.ID, l.Remaining)
			case !bytes.Equal(ov, openLotValue(&l)):
				got, err := parseOpenLotValue(ov)
				c.problemf("lots_open: %x says %+v (%v), but lot %s/%s has %d remaining, available %s, expiring %s",
					ok, got, err, l.MemberID, l.ID, l.Remaining, l.AvailableAt, l.ExpiresAt)
			}
		}
		if ek := expiryKey(&l); ek != nil && !has(expiry, ek) {
			c.problemf("lot %s/%s: expires at %s but is missing from expiry", l.MemberID, l.ID, l.ExpiresAt)
		}
	})
}

// openLotsOf checks that each lots_open entry of the member stands for one
// of its open lots with that expiry.
func (c *checker) openLotsOf(data, _ *bolt.Bucket, mk []byte) {
	p := sectionOf(mk, sectionHistory, 0)
	section(data, mk, sectionOpen, func(k, _ []byte) {
		if !lotIndexed(data, k, openLotKey, len(mk)+1+8, p) {
			c.problemf("lots_open: %x points at no open lot with that expiry", k)
		}
	})
}

// lotIndexed tells whether the lot whose ID follows entry's first skip
// bytes, in the history under p, has entry as its index key.
func lotIndexed(data *bolt.Bucket, entry []byte, indexKey func(*engine.Lot) []byte, skip int, p []byte) bool {
	if len(entry) <= skip {
		return false
	}
	v := data.Get(lotKeyIn(p, string(entry[skip:])))
	if v == nil {
		return false
	}
	var l engine.Lot
	return decode(v, &l) == nil && bytes.Equal(indexKey(&l), entry)
}

// metricsOf checks the member's running metric sum against the entries it
// stands for.
func (c *checker) metricsOf(data, _ *bolt.Bucket, mk []byte) {
	sk := sectionOf(mk, sectionSum, 0)
	v := data.Get(sk)
	if v == nil {
		return
	}
	var s metricSum
	if !c.decodeAt(bucketMemberData, sk, v, &s) {
		return
	}
	sum, latest, err := metricRange(data.Cursor(), sectionOf(mk, sectionHistory, 0), s.From, 0)
	switch {
	case err != nil:
		c.problemf("metrics: entries of %x: %v", mk, err)
	case sum != s.Sum:
		c.problemf("metrics: sum of %x from %d is %+v, but the entries add up to %+v", mk, s.From, s.Sum, sum)
	case latest > s.Latest:
		c.problemf("metrics: sum of %x says its latest entry is at %d, but one is at %d", mk, s.Latest, latest)
	}
}

// expiry checks that every expiry entry leads to an open lot expiring then.
func (c *checker) expiry(btx *bolt.Tx) error {
	data := btx.Bucket(bucketMemberData)
	return btx.Bucket(bucketExpiry).ForEach(func(k, _ []byte) error {
		ok := false
		if len(k) > 8 {
			if v := data.Get(k[8:]); v != nil {
				var l engine.Lot
				ok = decode(v, &l) == nil && bytes.Equal(expiryKey(&l), k)
			}
		}
		if !ok {
			c.problemf("%s: %x points at no open lot expiring then", bucketExpiry, k)
		}
		return c.err
	})
}
