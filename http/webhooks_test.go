package http_test

import (
	"encoding/base64"
	"strings"
	"testing"

	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/rules"
)

// The endpoints API as docs/API.md gives it, admin only; the secret is
// shown at creation and rotation alone.
func TestWebhookEndpointsAPI(t *testing.T) {
	s := newRewardServer(t, storeKind, string(rules.Example), lhttp.GuessLimit{})
	admin := s.as(adminKey)
	created := admin.do("POST", "/v1/webhooks", `{"url": "https://crm.example/hooks/loyalty", "events": ["purchase.created", "tier.changed"], "description": "CRM"}`)
	if created.status != 201 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	h := created.json(t)
	id, secret := h["id"].(string), h["secret"].(string)
	if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_")); !strings.HasPrefix(secret, "whsec_") || err != nil || len(key) != 32 {
		t.Errorf("secret %q", secret)
	}
	if h["status"] != "enabled" || h["url"] != "https://crm.example/hooks/loyalty" || h["description"] != "CRM" || h["created_at"] == nil || len(h["events"].([]any)) != 2 {
		t.Errorf("created: %s", created.body)
	}
	for _, c := range []struct{ body, field string }{
		{`{"url": "ftp://x/y", "events": ["*"]}`, "url"},
		{`{"url": "/relative", "events": ["*"]}`, "url"},
		{`{"events": ["*"]}`, "url"},
		{`{"url": "https://x/", "events": ["purchase.made"]}`, "events[0]"},
		{`{"url": "https://x/", "events": []}`, "events"},
		{`{"url": "https://x/"}`, "events"},
		{`{"url": "https://x/", "events": ["*"], "status": "paused"}`, "status"},
	} {
		r := admin.do("POST", "/v1/webhooks", c.body)
		if code, field := r.errorCode(t); r.status != 400 || code != "invalid" || field != c.field {
			t.Errorf("%s: %d %s %s, want 400 invalid %s", c.body, r.status, code, field, c.field)
		}
	}
	list := admin.do("GET", "/v1/webhooks", "")
	if ws := list.json(t)["webhooks"].([]any); list.status != 200 || len(ws) != 1 || strings.Contains(string(list.body), secret) {
		t.Errorf("list: %d %s", list.status, list.body)
	}
	if got := admin.do("GET", "/v1/webhooks/"+id, ""); got.status != 200 || strings.Contains(string(got.body), "whsec_") || got.json(t)["id"] != id {
		t.Errorf("get: %d %s", got.status, got.body)
	}
	if r := admin.do("GET", "/v1/webhooks/wh_none", ""); r.status != 404 {
		t.Errorf("get nothing: %d", r.status)
	}
	patched := admin.do("PATCH", "/v1/webhooks/"+id, `{"events": ["*"], "status": "disabled"}`)
	if p := patched.json(t); patched.status != 200 || p["status"] != "disabled" || p["events"].([]any)[0] != "*" || p["url"] != "https://crm.example/hooks/loyalty" {
		t.Errorf("patch: %d %s", patched.status, patched.body)
	}
	if r := admin.do("PATCH", "/v1/webhooks/"+id, `{"url": "mailto:x@y"}`); r.status != 400 {
		t.Errorf("patch a bad url: %d", r.status)
	}
	admin.do("PATCH", "/v1/webhooks/"+id, `{"status": "enabled"}`)
	rotated := admin.do("POST", "/v1/webhooks/"+id+"/rotate", "")
	if fresh, _ := rotated.json(t)["secret"].(string); rotated.status != 200 || !strings.HasPrefix(fresh, "whsec_") || fresh == secret {
		t.Errorf("rotate: %d %s", rotated.status, rotated.body)
	}
	if r := admin.do("POST", "/v1/webhooks/"+id+"/test", ""); r.status != 202 {
		t.Errorf("test: %d %s", r.status, r.body)
	}
	evs := s.allEvents("&type=webhook.test")
	if len(evs) != 1 || evs[0]["data"].(map[string]any)["webhook_id"] != id {
		t.Errorf("webhook.test events: %v", evs)
	}

	// Deliveries and replay: without a worker (this server runs none),
	// a replay leaves pending deliveries that the list shows.
	m := s.enrol(`{}`)
	s.buy("wh-p1", m, "5.00")
	if r := admin.do("GET", "/v1/webhooks/"+id+"/deliveries", ""); r.status != 200 || len(r.json(t)["deliveries"].([]any)) != 0 || r.json(t)["next_cursor"] == nil {
		t.Errorf("deliveries before: %d %s", r.status, r.body)
	}
	replay := admin.do("POST", "/v1/webhooks/"+id+"/replay", `{"since": "2000-01-01T00:00:00Z"}`)
	if replay.status != 202 {
		t.Fatalf("replay: %d %s", replay.status, replay.body)
	}
	n := int(replay.json(t)["deliveries"].(float64))
	if all := len(s.allEvents("")); n != all {
		t.Errorf("replay of everything made %d deliveries for %d events", n, all)
	}
	page := admin.do("GET", "/v1/webhooks/"+id+"/deliveries?status=pending&limit=2", "").json(t)
	ds := page["deliveries"].([]any)
	if len(ds) != 2 {
		t.Fatalf("pending deliveries: %v", page)
	}
	d := ds[0].(map[string]any)
	for _, f := range []string{"event_id", "type", "status", "attempts", "last_attempt_at", "last_status_code", "last_error", "next_attempt_at"} {
		if _, ok := d[f]; !ok {
			t.Errorf("delivery lacks %s: %v", f, d)
		}
	}
	next := admin.do("GET", "/v1/webhooks/"+id+"/deliveries?status=pending&limit=2&cursor="+page["next_cursor"].(string), "").json(t)
	if ds2 := next["deliveries"].([]any); len(ds2) == 0 || ds2[0].(map[string]any)["event_id"] == d["event_id"] {
		t.Errorf("the next page: %v", next)
	}
	if r := admin.do("GET", "/v1/webhooks/"+id+"/deliveries?status=succeeded", ""); len(r.json(t)["deliveries"].([]any)) != 0 {
		t.Errorf("succeeded: %s", r.body)
	}
	for _, bad := range []string{"?status=done", "?cursor=x"} {
		if r := admin.do("GET", "/v1/webhooks/"+id+"/deliveries"+bad, ""); r.status != 400 {
			t.Errorf("deliveries%s: %d", bad, r.status)
		}
	}
	for _, bad := range []string{`{}`, `{"since": "yesterday"}`} {
		if code, field := admin.do("POST", "/v1/webhooks/"+id+"/replay", bad).errorCode(t); code != "invalid" || field != "since" {
			t.Errorf("replay %s: %s %s", bad, code, field)
		}
	}

	for _, key := range []string{posKey, marketerKey} {
		if r := s.as(key).do("GET", "/v1/webhooks", ""); r.status != 403 {
			t.Errorf("key %s lists webhooks: %d", key, r.status)
		}
	}
	if r := s.as(marketerKey).do("GET", "/v1/events", ""); r.status != 200 {
		t.Errorf("a marketer reads the feed: %d", r.status)
	}
	if r := admin.do("DELETE", "/v1/webhooks/"+id, ""); r.status != 204 {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r := admin.do("GET", "/v1/webhooks/"+id+"/deliveries", ""); r.status != 404 {
		t.Errorf("deliveries of a deleted webhook: %d", r.status)
	}
	if r := admin.do("DELETE", "/v1/webhooks/"+id, ""); r.status != 404 {
		t.Errorf("delete again: %d", r.status)
	}
}
