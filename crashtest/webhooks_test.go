package crashtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/internal/pgtest"
)

// hookReceiver is a webhook endpoint written from the Standard Webhooks
// specification: it verifies each signature, dedupes by webhook-id, and
// can be down (503) for a while.
type hookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	secret   string
	down     bool
	bodies   map[string][]byte // first body of each webhook-id
	requests int
	bad      []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	rc := &hookReceiver{bodies: map[string][]byte{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.requests++
		if rc.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(rc.secret, "whsec_"))
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") {
			rc.bad = append(rc.bad, "signature of "+id)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if first, seen := rc.bodies[id]; seen && !bytes.Equal(first, body) {
			rc.bad = append(rc.bad, "webhook-id "+id+" came with two bodies")
		} else if !seen {
			rc.bodies[id] = body
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *hookReceiver) setDown(down bool) {
	rc.mu.Lock()
	rc.down = down
	rc.mu.Unlock()
}

// TestWebhooksSurviveKills kills the server with SIGKILL under load while
// deliveries are pending and while the receiver is down: after the last
// restart every event of the feed reaches the receiver, signed, each id
// with one body however often it came.
func TestWebhooksSurviveKills(t *testing.T) {
	webhookCrash(t, "", 1, "TestWebhooksSurviveKills")
}

// TestWebhooksSurviveKillsPostgres does it with two servers on one
// PostgreSQL database, each kill taking either: an endpoint's deliveries
// move to the other server once the dead one's lease runs out.
func TestWebhooksSurviveKillsPostgres(t *testing.T) {
	webhookCrash(t, pgtest.URL(t), 2, "TestWebhooksSurviveKillsPostgres")
}

func webhookCrash(t *testing.T, db string, servers int, name string) {
	sd := seed()
	t.Logf("seed %d (replay: go test ./crashtest -v -run %s -crash.seed=%d)", sd, name, sd)
	rnd := rand.New(rand.NewPCG(sd, 7))
	rc := newHookReceiver(t)
	ps := make([]*process, servers)
	var urls []string
	for i := range ps {
		ps[i] = newProcess(t, db)
		// Retries short and many, so that no delivery runs out of them
		// while the receiver is down for a moment.
		ps[i].extra = []string{"--webhook-retries", strings.TrimSuffix(strings.Repeat("100ms,", 300), ","), "--webhook-timeout", "2s"}
		ps[i].start()
		urls = append(urls, ps[i].url)
	}
	p := ps[0]
	setup := newClient(true)
	// The endpoint gets the events after its creation: those after this
	// cursor.
	var before struct {
		NextCursor string `json:"next_cursor"`
	}
	getJSON(t, setup, p.url+"/v1/events?limit=500", &before)
	res, err := setup.Post(p.url+"/v1/webhooks", "application/json", strings.NewReader(fmt.Sprintf(`{"url": %q, "events": ["*"]}`, rc.URL)))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Secret string }
	err = json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("create webhook: %d %v", res.StatusCode, err)
	}
	rc.mu.Lock()
	rc.secret = created.Secret
	rc.mu.Unlock()

	fig := &figures{}
	tills := make([]*till, 6)
	for i := range tills {
		tl := &till{t: t, n: i + 1, urls: urls, rnd: rand.New(rand.NewPCG(sd, uint64(i)+2)),
			client: newClient(true), fig: fig, giveUp: 0.3, drop: 0.05}
		for j := range 3 {
			tl.members = append(tl.members, &member{id: enrol(t, setup, p.url, fmt.Sprintf("card-%d-%d", i+1, j+1))})
		}
		tills[i] = tl
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, tl := range tills {
		wg.Add(1)
		go tl.run(stop, &wg)
	}
	for i := range 4 {
		time.Sleep(between(rnd, 200*time.Millisecond, 700*time.Millisecond))
		rc.setDown(i%2 == 0)
		victim := ps[rnd.IntN(len(ps))]
		victim.kill()
		time.Sleep(between(rnd, 0, 100*time.Millisecond))
		victim.start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	rc.setDown(false)

	feed := func(cursor string) []string {
		var ids []string
		for {
			var page struct {
				Events []struct {
					ID string `json:"id"`
				} `json:"events"`
				NextCursor string `json:"next_cursor"`
			}
			getJSON(t, setup, p.url+"/v1/events?limit=500&cursor="+cursor, &page)
			for _, e := range page.Events {
				ids = append(ids, e.ID)
			}
			if len(page.Events) == 0 {
				return ids
			}
			cursor = page.NextCursor
		}
	}
	ids := feed(before.NextCursor)
	missing := func() []string {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		var out []string
		for _, id := range ids {
			if _, ok := rc.bodies[id]; !ok {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		t.Errorf("%d of %d events never arrived, the first %s", len(m), len(ids), m[0])
	}
	// The jobs went on writing events meanwhile: the whole feed now.
	all := feed(before.NextCursor)
	rc.mu.Lock()
	for _, b := range rc.bad {
		t.Error(b)
	}
	known := map[string]bool{}
	for _, id := range all {
		known[id] = true
	}
	for id := range rc.bodies {
		if !known[id] {
			t.Errorf("webhook-id %s is no event of the feed", id)
		}
	}
	t.Logf("%d events, %d requests (%d duplicates or refused while down), %s", len(all), rc.requests, rc.requests-len(rc.bodies), fig)
	rc.mu.Unlock()
	for _, x := range ps {
		if code := x.term(30 * time.Second); code != 0 {
			t.Errorf("after SIGTERM loyalty serve exited %d", code)
		}
	}
	p.verify()
	for _, x := range ps {
		x.checkLog()
	}
}
