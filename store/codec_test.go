package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestEveryRecordIsBinary fails when a record type gains a field the binary
// encoding cannot express: encode would refuse every such record.
func TestEveryRecordIsBinary(t *testing.T) {
	for _, typ := range storedTypes {
		if _, err := binaryPlan(typ); err != nil {
			t.Errorf("%s cannot be stored: %v (extend codec_bin.go or change the field's type)", typ, err)
		}
	}
}

// fill sets every exported field reachable from v to a non-zero value that
// differs from field to field, with non-nil empty slices and maps where
// empty is true, so a round trip shows any field that is lost.
func fill(v reflect.Value, n *int, empty bool) {
	*n++
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(time.Unix(1_700_000_000+int64(*n)*86_400, int64(*n)*1001).UTC()))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + strings.Repeat("x", *n%7) + string(rune('a'+*n%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(*n) * 37)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n) * 41)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.25)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n, empty)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n, empty)
	case reflect.Slice:
		size := 2
		if empty {
			size = 0
		}
		s := reflect.MakeSlice(v.Type(), size, size)
		for i := range size {
			fill(s.Index(i), n, empty)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		if !empty {
			for range 2 {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				fill(k, n, empty)
				fill(e, n, empty)
				m.SetMapIndex(k, e)
			}
		}
		v.Set(m)
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	for _, empty := range []bool{false, true} {
		for _, typ := range storedTypes {
			rec := reflect.New(typ)
			n := 0
			fill(rec.Elem(), &n, empty)
			v, err := encode(rec.Interface())
			if err != nil {
				t.Fatal(err)
			}
			if v[0] != binV2 {
				t.Errorf("%s: encoded with version %d", typ, v[0])
				continue
			}
			got := reflect.New(typ)
			if err := decode(v, got.Interface()); err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			if !reflect.DeepEqual(got.Interface(), rec.Interface()) {
				t.Errorf("%s (empty %v) changed in a round trip:\n got %+v\nwant %+v", typ, empty, got.Elem(), rec.Elem())
			}
			j, err := json.Marshal(rec.Interface())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d bytes binary, %d JSON", typ, len(v), len(j)+1)
		}
	}
}

// TestZeroValuesStayZero checks that a record decoded over a used variable
// keeps nothing of the old value, and that nil stays nil.
func TestZeroValuesStayZero(t *testing.T) {
	v, err := encode(&engine.Purchase{ID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	var p engine.Purchase
	n := 0
	fill(reflect.ValueOf(&p).Elem(), &n, false)
	if err := decode(v, &p); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, engine.Purchase{ID: "p1"}) {
		t.Fatalf("got %+v", p)
	}
}

func TestJSONStillDecodes(t *testing.T) {
	at := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	want := engine.Lot{ID: "l1", MemberID: "m1", Points: 10, Remaining: 4, EarnedAt: at, AvailableAt: at, ExpiresAt: at.AddDate(1, 0, 0), Ref: "p1"}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got engine.Lot
	if err := decode(append([]byte{jsonV1}, b...), &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestTimeKeepsInstantAndOffset(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 30, 0, 123456789, time.FixedZone("EST", -5*3600))
	v, err := encode(&engine.JobRun{Name: "x", StartedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	var r engine.JobRun
	if err := decode(v, &r); err != nil {
		t.Fatal(err)
	}
	if !r.StartedAt.Equal(at) || r.StartedAt.Format(time.RFC3339Nano) != at.Format(time.RFC3339Nano) {
		t.Fatalf("got %s, want %s", r.StartedAt.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
	}
}

// newer and older are one record as two versions of the program see it.
type newer struct {
	A     string
	Added []map[string]int64
	B     int64
	Extra *struct{ X time.Time }
}

type older struct {
	A string
	B int64
}

func TestUnknownFieldsAreSkipped(t *testing.T) {
	v, err := encode(&newer{A: "a", Added: []map[string]int64{{"k": 1}, nil}, B: -7, Extra: &struct{ X time.Time }{time.Unix(5, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	var o older
	if err := decode(v, &o); err != nil {
		t.Fatal(err)
	}
	if o != (older{A: "a", B: -7}) {
		t.Fatalf("got %+v", o)
	}
}

// TestUnsupportedTypesAreRefused: a type the binary plan cannot express is
// not written at all, rather than in a form the manifest does not hold.
func TestUnsupportedTypesAreRefused(t *testing.T) {
	type withAny struct{ V any }
	if v, err := encode(&withAny{V: 1.5}); err == nil || !strings.Contains(err.Error(), "withAny.V: kind interface has no binary form") {
		t.Fatalf("encode = %x, %v; want the reason it cannot be stored", v, err)
	}
	var w withAny
	if err := decode([]byte("\x01{\"V\": 1.5}"), &w); err == nil || !strings.Contains(err.Error(), "no binary form") {
		t.Fatalf("decoded %+v from JSON without a plan: %v", w, err)
	}
}

func TestBadBinaryIsAnError(t *testing.T) {
	v, err := encode(&engine.Member{ID: "m1", Name: "Ana", Points: 5, Attributes: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	// A cut between two fields is a shorter valid record; what matters is
	// that no cut panics and that a cut inside the last field fails.
	for i := 1; i < len(v); i++ {
		var m engine.Member
		_ = decode(v[:i], &m)
	}
	var m engine.Member
	if err := decode(v[:len(v)-1], &m); err == nil {
		t.Fatal("a record cut inside its last field decoded")
	}
	for _, bad := range [][]byte{{binV2, 0xff}, {binV2, 0x80, 0x80}, {9, 1, 2}} {
		if err := decode(bad, &m); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
}

// FuzzDecodeBinary feeds both encodings, binary and the JSON of old files,
// to the decoders of Member and Purchase.
func FuzzDecodeBinary(f *testing.F) {
	for _, typ := range storedTypes[:3] {
		rec := reflect.New(typ).Interface()
		n := 0
		fill(reflect.ValueOf(rec).Elem(), &n, false)
		v, err := encode(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
		j, err := json.Marshal(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{jsonV1}, j...))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		var m engine.Member
		_ = decode(v, &m)
		var p engine.Purchase
		_ = decode(v, &p)
	})
}

func BenchmarkCodec(b *testing.B) {
	at := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)
	recs := map[string]any{
		"member": &engine.Member{ID: newID(), ExternalID: "card-000123", Email: "ana@example.com", Status: engine.StatusActive,
			EnrolledAt: at, Tier: "gold", TierSince: at, Points: 1234, LifetimeEarned: 5000, LifetimeSpend: 123456,
			PurchaseCount: 42, LastPurchaseAt: at, LedgerSeq: 43},
		"lot":      &engine.Lot{ID: newID(), MemberID: newID(), Points: 47, Remaining: 47, EarnedAt: at, AvailableAt: at, ExpiresAt: at.AddDate(1, 0, 0), Ref: "store7-till2-000981"},
		"purchase": benchPurchase(newID(), newID(), at),
	}
	for name, rec := range recs {
		b.Run(name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encode(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
		v, err := encode(rec)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out := reflect.New(reflect.TypeOf(rec).Elem()).Interface()
				if err := decode(v, out); err != nil {
					b.Fatal(err)
				}
			}
		})
		j, err := json.Marshal(rec)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/decode-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out := reflect.New(reflect.TypeOf(rec).Elem()).Interface()
				if err := json.Unmarshal(j, out); err != nil {
					b.Fatal(err)
				}
			}
		})
		// What a record of a schema-1 file costs to read: JSON through the
		// plan, so that store tags hold.
		v1 := append([]byte{jsonV1}, j...)
		b.Run(name+"/decode-v1", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out := reflect.New(reflect.TypeOf(rec).Elem()).Interface()
				if err := decode(v1, out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/encode-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
