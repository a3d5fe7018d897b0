package store

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loyaltyhq/loyalty/engine"
)

// legacyFiles are databases written by earlier versions of loyalty, each by
// its own server running the same café (testdata/legacy/gen says how).
var legacyFiles = []struct {
	name   string
	schema uint64
}{
	{"schema1", 1}, // JSON records, a bucket per kind of member record
	{"schema2", 2}, // binary records, the whole member in members
	{"schema3", 3}, // the account in member_data, a section per kind of record
}

// legacyCopy unpacks testdata/legacy/NAME.db.gz into a temporary file, so a
// test may open it for writing.
func legacyCopy(tb testing.TB, name string) string {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "legacy", name+".db.gz"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), name+".db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// legacyAnswers is what the old server answered about its file at the end.
type legacyAnswers struct {
	Commit  string
	Now     time.Time
	Members []string
	Answers map[string]json.RawMessage
}

func readLegacyAnswers(tb testing.TB, name string) legacyAnswers {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "legacy", name+".answers.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var a legacyAnswers
	if err := json.Unmarshal(data, &a); err != nil {
		tb.Fatal(err)
	}
	return a
}

// recordType is the type of the records in bucket at key k, nil for
// buckets of index entries and counters, by the layouts of every schema.
func recordType(bucket string, k []byte, members *bolt.Bucket) any {
	switch bucket {
	case "members":
		return new(engine.Member)
	case "purchases":
		return new(engine.Purchase)
	case "refunds":
		return new(engine.Refund)
	case "redemptions":
		return new(engine.Redemption)
	case "adjustments":
		return new(engine.Adjustment)
	case "rules":
		return new(engine.RulesVersion)
	case "job_runs":
		return new(engine.JobRun)
	case "events":
		return new(engine.Event)
	case "analytics_summaries":
		return new(engine.AnalyticsSummary)
	case "ledger": // schema 1
		return new(engine.LedgerEntry)
	case "lots": // schema 1
		return new(engine.Lot)
	case "metrics": // schema 1
		return new(engine.MetricEntry)
	case "member_data":
		mk := memberOf(members, k, isMigratingSection)
		if mk == nil {
			return fmt.Errorf("key %x has no member key", k)
		}
		switch s, rest := k[len(mk)], len(k)-len(mk)-1; {
		case s == v3Account, s == sectionAccount:
			return new(account)
		case s == v3Ledger:
			return new(engine.LedgerEntry)
		case s == v3Lots:
			return new(engine.Lot)
		case s == v3Metrics && rest == 0, s == sectionSum:
			return new(metricSum)
		case s == v3Metrics:
			return new(engine.MetricEntry)
		case s == sectionHistory:
			switch historyKind(k, sectionOf(mk, sectionHistory, 0)) {
			case historyLedger:
				return new(engine.LedgerEntry)
			case historyLot:
				return new(engine.Lot)
			case historyMetric:
				return new(engine.MetricEntry)
			}
			return fmt.Errorf("history record %x of no known kind", k)
		}
	}
	return nil
}

// decodeEveryRecord decodes every record of the file at path and returns
// how many of each encoding it holds, by bucket.
func decodeEveryRecord(tb testing.TB, path string) (jsonRecords, binRecords map[string]int) {
	tb.Helper()
	raw, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	jsonRecords, binRecords = map[string]int{}, map[string]int{}
	err = raw.View(func(btx *bolt.Tx) error {
		members := btx.Bucket(bucketMembers)
		return btx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				rec := recordType(string(name), k, members)
				if err, ok := rec.(error); ok {
					return fmt.Errorf("%s: %w", name, err)
				}
				if rec == nil {
					return nil
				}
				if err := decode(v, rec); err != nil {
					return fmt.Errorf("%s: %x: %w", name, k, err)
				}
				switch v[0] {
				case jsonV1:
					jsonRecords[string(name)]++
				case binV2:
					binRecords[string(name)]++
				}
				return nil
			})
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return jsonRecords, binRecords
}

func fileSchema(tb testing.TB, path string) uint64 {
	tb.Helper()
	raw, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	var n uint64
	if err := raw.View(func(btx *bolt.Tx) error {
		n = binary.BigEndian.Uint64(btx.Bucket(bucketMeta).Get(schemaKey))
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return n
}

// verifyClean runs the checks loyalty verify runs and fails on any problem.
func verifyClean(tb testing.TB, db *DB) {
	tb.Helper()
	mustCheck(tb, db)
	var out strings.Builder
	n, err := engine.New(db, engine.Options{}).Verify(context.Background(), &out)
	if err != nil || n > 0 {
		tb.Fatalf("engine verify: %d problems, %v\n%s", n, err, out.String())
	}
}

// TestLegacyFiles opens the files older versions wrote: every record
// decodes, each is migrated by a writable open (a read-only one refuses
// it), verifies clean after it and after a write, and every member's
// account reads as the old server answered it.
func TestLegacyFiles(t *testing.T) {
	for _, lf := range legacyFiles {
		t.Run(lf.name, func(t *testing.T) {
			path := legacyCopy(t, lf.name)
			want := readLegacyAnswers(t, lf.name)
			if got := fileSchema(t, path); got != lf.schema {
				t.Fatalf("the file has schema %d, want %d", got, lf.schema)
			}
			jsonRecords, binRecords := decodeEveryRecord(t, path)
			t.Logf("JSON records %v, binary records %v", jsonRecords, binRecords)
			switch lf.schema {
			case 1:
				if len(binRecords) > 0 || jsonRecords["members"] == 0 || jsonRecords["purchases"] == 0 || jsonRecords["ledger"] == 0 {
					t.Fatalf("a schema-1 file holds JSON records only, of every kind: %v, %v", jsonRecords, binRecords)
				}
			default:
				if binRecords["members"] == 0 || binRecords["member_data"] == 0 {
					t.Fatalf("a schema-%d file holds binary records: %v", lf.schema, binRecords)
				}
			}

			ro := testOptions()
			ro.ReadOnly = true
			if _, err := Open(path, ro); err == nil || !strings.Contains(err.Error(), "open it once for writing") {
				t.Fatalf("read-only open of a schema-%d file: %v, want a refusal that says how to migrate it", lf.schema, err)
			}

			db, err := Open(path, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			verifyClean(t, db)
			checkAccounts(t, db, want)
			if t.Failed() {
				return
			}
			// Writing each member back splits off its account, if it was
			// written before schema 3.
			mustUpdate(t, db, func(tx engine.Tx) error {
				for _, id := range want.Members {
					m, err := tx.Member(id)
					if err != nil {
						return err
					}
					if err := tx.PutMember(m); err != nil {
						return err
					}
				}
				return nil
			})
			verifyClean(t, db)
			checkAccounts(t, db, want)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if got := fileSchema(t, path); got != schemaVersion {
				t.Errorf("after a writable open the file has schema %d, want %d", got, schemaVersion)
			}
			if _, binRecords := decodeEveryRecord(t, path); binRecords["member_data"] == 0 {
				t.Errorf("no binary account records after writing the members back: %v", binRecords)
			}
			db = mustOpenPath(t, path, ro)
			verifyClean(t, db)
		})
	}
}

// checkAccounts compares each member's balance, lifetime figures and ledger
// with what the old server answered: fields lost in decoding would read as
// zero here.
func checkAccounts(t *testing.T, db *DB, want legacyAnswers) {
	t.Helper()
	if len(want.Members) != 3 {
		t.Fatalf("the answers name %d members, want the café's 3", len(want.Members))
	}
	err := db.View(t.Context(), func(tx engine.Tx) error {
		for _, id := range want.Members {
			var bal struct {
				Available      int64 `json:"available"`
				Pending        int64 `json:"pending"`
				LifetimeEarned int64 `json:"lifetime_earned"`
				Tier           struct{ Name string }
			}
			if err := json.Unmarshal(want.Answers["/v1/members/"+id+"/balance"], &bal); err != nil {
				return err
			}
			var ledger struct{ Entries []json.RawMessage }
			if err := json.Unmarshal(want.Answers["/v1/members/"+id+"/ledger?limit=100"], &ledger); err != nil {
				return err
			}
			m, err := tx.Member(id)
			if err != nil {
				return err
			}
			if m == nil {
				t.Errorf("member %s is gone", id)
				continue
			}
			for _, c := range []struct {
				field     string
				got, want any
			}{
				{"Points", m.Points, bal.Available + bal.Pending},
				{"LifetimeEarned", m.LifetimeEarned, bal.LifetimeEarned},
				{"Tier", m.Tier, bal.Tier.Name},
				{"LedgerSeq", m.LedgerSeq, uint64(len(ledger.Entries))},
			} {
				if c.got != c.want {
					t.Errorf("member %s: %s reads as %v; the old server answered %v", id, c.field, c.got, c.want)
				}
			}
			// The answers do not show these; every member of the café bought.
			if m.LifetimeSpend == 0 || m.PurchaseCount == 0 || m.LastPurchaseAt.IsZero() || m.EnrolledAt.IsZero() {
				t.Errorf("member %s: LifetimeSpend %d, PurchaseCount %d, LastPurchaseAt %s, EnrolledAt %s: lost in reading",
					id, m.LifetimeSpend, m.PurchaseCount, m.LastPurchaseAt, m.EnrolledAt)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
