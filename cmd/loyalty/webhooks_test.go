package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// serve runs the webhook worker: an endpoint created through the API
// gets the events, and /metrics counts the deliveries and the queue.
func TestServeDeliversWebhooks(t *testing.T) {
	var got atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("webhook-id") != "" && strings.HasPrefix(r.Header.Get("webhook-signature"), "v1,") {
			got.Add(1)
		}
	}))
	defer rc.Close()
	m, _ := startMain(t)
	base := "http://" + m.Addr()
	res, err := http.Post(base+"/v1/webhooks", "application/json", strings.NewReader(fmt.Sprintf(`{"url": %q, "events": ["member.enrolled"]}`, rc.URL)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("create: %d", res.StatusCode)
	}
	for range 3 {
		res, err := http.Post(base+"/v1/members", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	eventually(t, "three deliveries", func() bool { return got.Load() == 3 })
	metric := func(re string) string {
		res, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if m := regexp.MustCompile(`(?m)^` + re + ` (\S+)$`).FindSubmatch(text); m != nil {
			return string(m[1])
		}
		return ""
	}
	eventually(t, "the deliveries counted", func() bool {
		return metric(`loyalty_webhook_deliveries_total\{outcome="succeeded",webhook="wh_\w+"\}`) == "3"
	})
	if p := metric(`loyalty_webhook_pending_deliveries\{webhook="wh_\w+"\}`); p != "0" {
		t.Errorf("pending deliveries %q, want 0", p)
	}
	if a := metric(`loyalty_webhook_oldest_pending_seconds\{webhook="wh_\w+"\}`); a != "0" {
		t.Errorf("oldest pending %q, want 0", a)
	}
}
