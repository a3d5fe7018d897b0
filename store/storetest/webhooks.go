package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

func deliverySeqs(ds []*engine.Delivery) []uint64 {
	out := []uint64{}
	for _, d := range ds {
		out = append(out, d.Seq)
	}
	return out
}

// testWebhooks: endpoints read back whole, list in id order and go with
// their deliveries; deliveries list in seq order, after a cursor, by
// status, the pending ones following each write.
func testWebhooks(t *testing.T, db engine.Store) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	a := &engine.Webhook{
		ID: "wh_a", URL: "https://crm.example/hook", Events: []string{"purchase.created", "tier.changed"},
		Description: "CRM", Status: engine.WebhookEnabled, Secret: "whsec_x", OldSecret: "whsec_y",
		OldSecretUntil: at.Add(24 * time.Hour), CreatedAt: at, UpdatedAt: at.Add(time.Minute),
	}
	b := &engine.Webhook{ID: "wh_ab", URL: "http://x/", Events: []string{"*"}, Status: engine.WebhookDisabled, Secret: "whsec_z", CreatedAt: at, UpdatedAt: at}
	delivery := func(hook string, seq uint64, status string) *engine.Delivery {
		return &engine.Delivery{
			WebhookID: hook, Seq: seq, EventID: "evt_" + string(rune('a'+seq)), Type: "purchase.created", Status: status,
			Attempts: int(seq), LastAttemptAt: at.Add(time.Duration(seq) * time.Second), LastStatusCode: 500,
			LastError: "boom", NextAttemptAt: at.Add(time.Hour), CreatedAt: at,
		}
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		for _, w := range []*engine.Webhook{b, a} {
			if err := tx.PutWebhook(w); err != nil {
				return err
			}
		}
		for _, d := range []*engine.Delivery{
			delivery("wh_a", 3, engine.DeliveryPending), delivery("wh_a", 1, engine.DeliverySucceeded),
			delivery("wh_a", 2, engine.DeliveryPending), delivery("wh_a", 300, engine.DeliveryFailed),
			delivery("wh_ab", 2, engine.DeliveryPending),
		} {
			if err := tx.PutDelivery(d); err != nil {
				return err
			}
		}
		return nil
	})
	mustView(t, db, func(tx engine.Tx) error {
		got, err := tx.Webhook("wh_a")
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("Webhook = %+v, %v; want %+v", got, err, a)
		}
		if none, err := tx.Webhook("wh_none"); none != nil || err != nil {
			t.Errorf("Webhook of nothing = %v, %v", none, err)
		}
		all, err := tx.Webhooks()
		if err != nil || len(all) != 2 || all[0].ID != "wh_a" || all[1].ID != "wh_ab" {
			t.Errorf("Webhooks = %v, %v", all, err)
		}
		d, err := tx.Delivery("wh_a", 2)
		if want := delivery("wh_a", 2, engine.DeliveryPending); err != nil || !reflect.DeepEqual(d, want) {
			t.Errorf("Delivery = %+v, %v; want %+v", d, err, want)
		}
		for _, c := range []struct {
			hook, status string
			after        uint64
			limit        int
			want         []uint64
		}{
			{"wh_a", "", 0, 0, []uint64{1, 2, 3, 300}},
			{"wh_a", "", 1, 2, []uint64{2, 3}},
			{"wh_a", engine.DeliveryPending, 0, 0, []uint64{2, 3}},
			{"wh_a", engine.DeliveryPending, 2, 0, []uint64{3}},
			{"wh_a", engine.DeliveryFailed, 0, 0, []uint64{300}},
			{"wh_ab", "", 0, 0, []uint64{2}},
			{"wh_none", "", 0, 0, []uint64{}},
		} {
			ds, err := tx.Deliveries(c.hook, c.status, c.after, c.limit)
			if got := deliverySeqs(ds); err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("Deliveries(%s, %q, %d, %d) = %v, %v; want %v", c.hook, c.status, c.after, c.limit, got, err, c.want)
			}
		}
		return nil
	})
	// A pending delivery that succeeds leaves the pending ones.
	mustUpdate(t, db, func(tx engine.Tx) error {
		return tx.PutDelivery(delivery("wh_a", 2, engine.DeliverySucceeded))
	})
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.DeleteWebhook("wh_ab") })
	mustView(t, db, func(tx engine.Tx) error {
		ds, err := tx.Deliveries("wh_a", engine.DeliveryPending, 0, 0)
		if got := deliverySeqs(ds); err != nil || !reflect.DeepEqual(got, []uint64{3}) {
			t.Errorf("pending after success = %v, %v", got, err)
		}
		if w, err := tx.Webhook("wh_ab"); w != nil || err != nil {
			t.Errorf("deleted webhook = %v, %v", w, err)
		}
		ds, err = tx.Deliveries("wh_ab", "", 0, 0)
		if err != nil || len(ds) != 0 {
			t.Errorf("a deleted webhook's deliveries = %v, %v", deliverySeqs(ds), err)
		}
		return nil
	})
}

// testDeleteEvents: old events go, oldest first, with their deliveries;
// the feed goes on with new seqs, never one given before.
func testDeleteEvents(t *testing.T, db engine.Store) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 5 {
		mustUpdate(t, db, func(tx engine.Tx) error {
			return tx.AppendEvent(&engine.Event{ID: "evt_" + string(rune('a'+i)), Type: "purchase.created", At: at, Payload: []byte(`{}`)})
		})
	}
	var seqs []uint64
	mustView(t, db, func(tx engine.Tx) error {
		evs, err := tx.Events(0, 0)
		for _, e := range evs {
			seqs = append(seqs, e.Seq)
		}
		return err
	})
	if len(seqs) != 5 {
		t.Fatalf("events = %v", seqs)
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutWebhook(&engine.Webhook{ID: "wh_a", Status: engine.WebhookEnabled, Events: []string{"*"}, CreatedAt: at, UpdatedAt: at}); err != nil {
			return err
		}
		for _, s := range seqs {
			if err := tx.PutDelivery(&engine.Delivery{WebhookID: "wh_a", Seq: s, Status: engine.DeliverySucceeded, CreatedAt: at}); err != nil {
				return err
			}
		}
		return nil
	})
	var n int
	mustUpdate(t, db, func(tx engine.Tx) error {
		var err error
		n, err = tx.DeleteEvents(seqs[3], 2)
		return err
	})
	if n != 2 {
		t.Errorf("deleted %d events with a limit of 2", n)
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		var err error
		n, err = tx.DeleteEvents(seqs[3], 0)
		return err
	})
	if n != 2 {
		t.Errorf("deleted %d events, want the 2 left up to the fourth", n)
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		return tx.AppendEvent(&engine.Event{ID: "evt_new", Type: "purchase.created", At: at, Payload: []byte(`{}`)})
	})
	mustView(t, db, func(tx engine.Tx) error {
		evs, err := tx.Events(0, 0)
		if err != nil {
			return err
		}
		if len(evs) != 2 || evs[0].Seq != seqs[4] || evs[1].Seq <= seqs[4] {
			t.Errorf("after deleting: %d events, first %+v", len(evs), evs)
		}
		ds, err := tx.Deliveries("wh_a", "", 0, 0)
		if got := deliverySeqs(ds); err != nil || !reflect.DeepEqual(got, seqs[4:]) {
			t.Errorf("deliveries after deleting = %v, %v; want %v", got, err, seqs[4:])
		}
		return nil
	})
}
