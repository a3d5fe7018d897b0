// Package storetest is the conformance suite of engine.Store: every store
// (bbolt in package store, PostgreSQL in store/postgres) runs the same
// tests, in the spirit of testing/fstest.TestFS, so that the engine can
// rely on the contract written in engine/store.go and nothing more.
//
// A store's own test calls Run with a function that opens a fresh, empty
// store for one test and closes it (and checks it) on the test's cleanup.
package storetest

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// Open returns a fresh, empty store for one test. It registers the store's
// Close (and any consistency check) with t.Cleanup.
type Open func(t *testing.T) engine.Store

type test struct {
	name string
	fn   func(t *testing.T, s engine.Store)
}

// tests lists the suite; each runs on a store of its own.
var tests = []test{
	{"MemberRoundTrip", testMemberRoundTrip},
	{"PopulatedRecordsRoundTrip", testPopulatedRecordsRoundTrip},
	{"MemberUniqueIndexes", testMemberUniqueIndexes},
	{"PutMemberEmptyID", testPutMemberEmptyID},
	{"MembersPaging", testMembersPaging},
	{"Purchases", testPurchases},
	{"IdempotentRecords", testIdempotentRecords},
	{"Ledger", testLedger},
	{"LotIndexMaintenance", testLotIndexMaintenance},
	{"OpenLotsOrder", testOpenLotsOrder},
	{"DueLots", testDueLots},
	{"Metrics", testMetrics},
	{"RuleUses", testRuleUses},
	{"Markers", testMarkers},
	{"Settings", testSettings},
	{"Leases", testLeases},
	{"RulesVersions", testRulesVersions},
	{"JobRuns", testJobRuns},
	{"Events", testEvents},
	{"NonUUIDMemberIDs", testNonUUIDMemberIDs},
	{"AnalyticsSummaries", testAnalyticsSummaries},
	{"Coupons", testCoupons},
	{"DueCoupons", testDueCoupons},
	{"RewardCounts", testRewardCounts},
	{"Webhooks", testWebhooks},
	{"DeleteEvents", testDeleteEvents},
	{"StockRace", testStockRace},
	{"MissingRecords", testMissingRecords},
	{"TimePrecision", testTimePrecision},
	{"ReadYourWrites", testReadYourWrites},
	{"ShortcutsAgree", testShortcutsAgree},
	{"ViewIsReadOnly", testViewIsReadOnly},
	{"FailedUpdateRollsBack", testFailedUpdateRollsBack},
	{"ConcurrentUpdatesOfOneMember", testConcurrentUpdatesOfOneMember},
	{"InterleavedUpdateIsNotLost", testInterleavedUpdateIsNotLost},
	{"EventFeedWaitsForLateCommit", testEventFeedWaitsForLateCommit},
	{"EventWritersRunSideBySide", testEventWritersRunSideBySide},
	{"EventFeedUnderLoad", testEventFeedUnderLoad},
	{"MembersBefore", testMembersBefore},
	{"CheckFindsAmountsOutOfRange", testCheckFindsAmountsOutOfRange},
	{"Transfers", testTransfers},
	{"MemberEventsRewrite", testMemberEventsRewrite},
	{"MergedIntoRoundTrip", testMergedIntoRoundTrip},
	{"MembersByKeys", testMembersByKeys},
}

// Run runs the whole suite, each test as a subtest on a store from open.
func Run(t *testing.T, open Open) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

func mustUpdate(tb testing.TB, s engine.Store, fn func(engine.Tx) error) {
	tb.Helper()
	if err := s.Update(tb.Context(), fn); err != nil {
		tb.Fatal(err)
	}
}

func mustView(tb testing.TB, s engine.Store, fn func(engine.Tx) error) {
	tb.Helper()
	if err := s.View(tb.Context(), fn); err != nil {
		tb.Fatal(err)
	}
}

// putMembers creates bare members: records that belong to a member need it
// to exist first (PostgreSQL enforces that with foreign keys).
func putMembers(tb testing.TB, s engine.Store, ids ...string) {
	tb.Helper()
	mustUpdate(tb, s, func(tx engine.Tx) error {
		for _, id := range ids {
			if err := tx.PutMember(&engine.Member{ID: id, Status: engine.StatusActive}); err != nil {
				return err
			}
		}
		return nil
	})
}

// NewID returns a random UUID in the engine's canonical form.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ids returns the ids of records, in their order.
func ids[T any](recs []*T, id func(*T) string) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = id(r)
	}
	return out
}

func lotIDs(ls []*engine.Lot) []string { return ids(ls, func(l *engine.Lot) string { return l.ID }) }
