package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// membersRoot is the page the members bucket starts at: a commit that
// rewrites any of its pages gives it a new one.
func membersRoot(t *testing.T, db *DB) uint64 {
	t.Helper()
	var root uint64
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucketMembers).RootPage())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPurchaseLikeChangeLeavesMembersUntouched(t *testing.T) {
	db := MustOpenDB(t)
	ms := make([]*engine.Member, 200)
	mustUpdate(t, db, func(tx engine.Tx) error {
		for i := range ms {
			ms[i] = &engine.Member{ID: newID(), Email: fmt.Sprintf("m%d@x", i), Status: engine.StatusActive, EnrolledAt: t0}
			if err := tx.PutMember(ms[i]); err != nil {
				return err
			}
		}
		return nil
	})
	m := ms[17]
	before := membersRoot(t, db)
	m.Points, m.LifetimeEarned, m.LifetimeSpend, m.PurchaseCount, m.LedgerSeq = 25, 25, 2500, 1, 1
	m.LastPurchaseAt = t0
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutMember(m) })
	if after := membersRoot(t, db); after != before {
		t.Errorf("an account-only change rewrote the members bucket (root page %d → %d)", before, after)
	}
	mustView(t, db, func(tx engine.Tx) error {
		got, err := tx.Member(m.ID)
		if err != nil {
			return err
		}
		if accountOf(got) != accountOf(m) {
			t.Errorf("account read back %+v, want %+v", accountOf(got), accountOf(m))
		}
		byEmail, err := tx.MemberByKey(engine.KeyEmail, m.Email)
		if err != nil {
			return err
		}
		if byEmail == nil || byEmail.Points != 25 {
			t.Errorf("member by email = %+v, want its account with 25 points", byEmail)
		}
		listed, err := tx.Members("", 0)
		if err != nil {
			return err
		}
		for _, l := range listed {
			if l.ID == m.ID && l.Points != 25 {
				t.Errorf("listed member has %d points, want 25", l.Points)
			}
		}
		return nil
	})

	m.Tier = "gold"
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutMember(m) })
	if after := membersRoot(t, db); after == before {
		t.Error("a tier change left the members bucket as it was")
	}
}

// A member as schema 2 stored it, whole in members with no account record,
// is read as it is, and split when it is next written.
func TestMemberWrittenBeforeSchema3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loyalty.db")
	db := mustOpenPath(t, path, testOptions())
	legacy := &engine.Member{ID: newID(), ExternalID: "card-1", Status: engine.StatusActive, EnrolledAt: t0, Points: 40, LifetimeEarned: 90, PointsRedeemed: 50, LedgerSeq: 3, LastPurchaseAt: t0}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		v, err := encode(legacy)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketMembers).Put(memberKey(legacy.ID), v); err != nil {
			return err
		}
		if err := tx.Bucket(bucketByExternalID).Put([]byte("card-1"), memberKey(legacy.ID)); err != nil {
			return err
		}
		for i, p := range []int64{90, -50} {
			v, err := encode(&engine.LedgerEntry{MemberID: legacy.ID, Seq: uint64(i + 1), Points: p, BalanceAfter: []int64{90, 40}[i]})
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketMemberData).Put(ledgerKey(memberSection(legacy.ID, sectionHistory, 0), 0, uint64(i+1)), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, db)
	read := func() *engine.Member {
		var m *engine.Member
		mustView(t, db, func(tx engine.Tx) error {
			var err error
			m, err = tx.MemberByKey(engine.KeyExternalID, "card-1")
			return err
		})
		return m
	}
	if got := read(); accountOf(got) != accountOf(legacy) {
		t.Fatalf("legacy member read as %+v, want %+v", accountOf(got), accountOf(legacy))
	}

	legacy.Points, legacy.LedgerSeq = 45, 4
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutMember(legacy) })
	if got := read(); accountOf(got) != accountOf(legacy) {
		t.Errorf("after a write, read as %+v, want %+v", accountOf(got), accountOf(legacy))
	}
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		var profile engine.Member
		if err := decode(tx.Bucket(bucketMembers).Get(memberKey(legacy.ID)), &profile); err != nil {
			return err
		}
		if hasAccountFields(&profile) {
			t.Errorf("members still holds an account after the write: %+v", accountOf(&profile))
		}
		if tx.Bucket(bucketMemberData).Get(accountKey(legacy.ID)) == nil {
			t.Error("no account record after the write")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, db)
}

func TestOpenMovesSchemas2And3(t *testing.T) {
	for _, old := range []byte{2, 3} {
		path := filepath.Join(t.TempDir(), "loyalty.db")
		db, err := Open(path, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		if err := db.bolt.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(schemaKey, []byte{0, 0, 0, 0, 0, 0, 0, old})
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		ro := testOptions()
		ro.ReadOnly = true
		if _, err := Open(path, ro); err == nil || !strings.Contains(err.Error(), "open it once for writing") {
			t.Fatalf("read-only open of a schema-%d file: %v, want a refusal that says how to migrate it", old, err)
		}
		db = mustOpenPath(t, path, testOptions())
		if err := db.bolt.View(func(tx *bolt.Tx) error {
			if v := tx.Bucket(bucketMeta).Get(schemaKey); !bytes.Equal(v, []byte{0, 0, 0, 0, 0, 0, 0, schemaVersion}) {
				t.Errorf("schema %d: version after a writable open = %x, want %d", old, v, schemaVersion)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}
