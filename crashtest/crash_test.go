package crashtest

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/internal/pgtest"
)

var (
	seedFlag = flag.Uint64("crash.seed", 0, "seed of the random schedule of a run, to replay it (0: a new seed)")
	longFlag = flag.Bool("crash.long", os.Getenv("LOYALTY_CRASH_LONG") != "", "run the long form: 20 runs of 10 kills each (or set LOYALTY_CRASH_LONG=1)")
	runsFlag = flag.Int("crash.runs", 0, "how many runs the long form makes (default 20)")
)

// scenario is the shape of one run.
type scenario struct {
	seed    uint64
	tills   int
	members int // per till
	kills   int
	// up is how long the server runs between kills, drawn from
	// [upMin, upMax); down is how long it stays dead, from [0, downMax).
	upMin, upMax, downMax time.Duration
	// termUnderLoad stops the server with SIGTERM while the tills are
	// busy, before the final start.
	termUnderLoad bool
	keepAlive     bool
	// servers is how many servers share the database (1 when 0); each
	// kill takes one at random. db is a PostgreSQL URL they share, or ""
	// for a bbolt file (one server).
	servers int
	db      string
	// replay is the flags that run this scenario again, given its seed.
	replay string
}

// TestCrash kills the server with SIGKILL at random moments under load
// and proves that nothing acknowledged is lost and nothing is applied
// twice. The long form (-crash.long) makes 20 runs.
func TestCrash(t *testing.T) {
	if !*longFlag {
		sc := scenario{seed: seed(), tills: 12, members: 4, kills: 5,
			upMin: 150 * time.Millisecond, upMax: 600 * time.Millisecond, downMax: 100 * time.Millisecond, keepAlive: true,
			replay: "-run 'TestCrash$' -crash.seed=%d"}
		if testing.Short() {
			sc.upMax = 400 * time.Millisecond
		}
		runScenario(t, sc)
		return
	}
	runs := 20
	if *runsFlag > 0 {
		runs = *runsFlag
	}
	first := seed()
	for i := range runs {
		sc := scenario{seed: first + uint64(i), tills: 24, members: 4, kills: 10,
			upMin: 200 * time.Millisecond, upMax: 1500 * time.Millisecond, downMax: 300 * time.Millisecond, keepAlive: i%2 == 0,
			replay: "-run 'TestCrash$' -crash.long -crash.runs=1 -crash.seed=%d"}
		t.Run(fmt.Sprintf("run%02d", i+1), func(t *testing.T) { runScenario(t, sc) })
	}
}

// TestGracefulShutdown sends SIGTERM while the tills are busy: the server
// must finish what it took in, exit 0 and leave a database that verifies
// and holds every acknowledged write.
func TestGracefulShutdown(t *testing.T) {
	runScenario(t, scenario{seed: seed(), tills: 12, members: 4, termUnderLoad: true,
		replay: "-run TestGracefulShutdown -crash.seed=%d"})
}

func seed() uint64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	return rand.Uint64()%1_000_000_000 + 1
}

func runScenario(t *testing.T, sc scenario) {
	t.Logf("seed %d (replay: go test ./crashtest -v "+sc.replay+")", sc.seed, sc.seed)
	rnd := rand.New(rand.NewPCG(sc.seed, 1))
	started := time.Now()
	ps := make([]*process, max(sc.servers, 1))
	var urls []string
	for i := range ps {
		ps[i] = newProcess(t, sc.db)
		ps[i].start()
		urls = append(urls, ps[i].url)
	}
	p := ps[0]
	fig := &figures{}

	tills := make([]*till, sc.tills)
	setup := newClient(true)
	for i := range tills {
		tl := &till{t: t, n: i + 1, urls: urls, sent: i, rnd: rand.New(rand.NewPCG(sc.seed, uint64(i)+2)),
			client: newClient(sc.keepAlive), fig: fig, giveUp: 0.3, drop: 0.05}
		for j := range sc.members {
			tl.members = append(tl.members, &member{id: enrol(t, setup, urls[j%len(urls)], fmt.Sprintf("card-%d-%d", i+1, j+1))})
		}
		tills[i] = tl
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, tl := range tills {
		wg.Add(1)
		go tl.run(stop, &wg)
	}
	stopTills := func() {
		close(stop)
		wg.Wait()
	}
	defer func() {
		select {
		case <-stop:
		default:
			stopTills()
		}
	}()

	kills := 0
	for range sc.kills {
		time.Sleep(between(rnd, sc.upMin, sc.upMax))
		victim := ps[rnd.IntN(len(ps))]
		victim.kill()
		kills++
		time.Sleep(between(rnd, 0, sc.downMax))
		victim.start()
	}
	var answeredAfterTerm int64
	if sc.termUnderLoad {
		time.Sleep(between(rnd, 500*time.Millisecond, time.Second))
		before := fig.acked.Load()
		if code := p.term(30 * time.Second); code != 0 {
			t.Fatalf("after SIGTERM loyalty serve exited %d, want 0", code)
		}
		answeredAfterTerm = fig.acked.Load() - before
		if !strings.Contains(readLog(t, p), "shutting down") {
			t.Errorf("the server did not log its shutdown")
		}
		// Closed cleanly, the file verifies as it is, before any start.
		p.verify()
		time.Sleep(between(rnd, 0, 100*time.Millisecond))
		p.start()
	}
	time.Sleep(300 * time.Millisecond)
	stopTills()
	if t.Failed() {
		return
	}

	settle(t, tills, p.url)
	checkModel(t, tills, p.url)
	starts := 0
	for _, x := range ps {
		if code := x.term(30 * time.Second); code != 0 {
			t.Errorf("after SIGTERM loyalty serve exited %d, want 0", code)
		}
		starts += x.starts
	}
	p.verify()
	for _, x := range ps {
		x.checkLog()
	}
	t.Logf("seed %d: %d servers, %d kills, %s, answered after SIGTERM %d, %d starts, took %s",
		sc.seed, len(ps), kills, fig, answeredAfterTerm, starts, time.Since(started).Round(time.Millisecond))
}

func between(rnd *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rnd.Int64N(int64(hi-lo)))
}

func readLog(t *testing.T, p *process) string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func enrol(t *testing.T, c *http.Client, base, card string) string {
	t.Helper()
	res, err := c.Post(base+"/v1/members", "application/json", strings.NewReader(fmt.Sprintf(`{"external_id": %q}`, card)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("enrol: %d %v", res.StatusCode, err)
	}
	return m.ID
}

// settle first checks that each write a till gave up on was applied at
// most once, then sends it again, as a till coming back online would: the
// retry must be accepted, from the first answer if it had been applied.
func settle(t *testing.T, tills []*till, base string) {
	t.Helper()
	c := newClient(true)
	for _, tl := range tills {
		for _, m := range tl.members {
			counts := ledgerRefs(t, c, base, m.id)
			for _, o := range m.ops {
				if o.abandoned && counts[o.ledgerType+" "+o.ledgerRef] > o.entries {
					t.Errorf("%s %s, given up on, is in the ledger %d times", o.kind, o.id, counts[o.ledgerType+" "+o.ledgerRef])
				}
			}
		}
		stop := make(chan struct{})
		close(stop)
		for _, m := range tl.members {
			for len(m.pending) > 0 && !tl.failed {
				tl.send(m.pending[0], stop)
			}
		}
	}
}

// checkModel compares the server's state with the model: every balance,
// every ledger entry once and only once, and each purchase's refunds.
func checkModel(t *testing.T, tills []*till, base string) {
	t.Helper()
	c := newClient(true)
	for _, tl := range tills {
		for _, m := range tl.members {
			var bal struct {
				Available int64 `json:"available"`
			}
			getJSON(t, c, base+"/v1/members/"+m.id+"/balance", &bal)
			if bal.Available != m.balance {
				t.Errorf("member %s: balance %d, the model %d", m.id, bal.Available, m.balance)
			}
			want := map[string]int{}
			for _, o := range m.ops {
				if !o.acked {
					t.Errorf("%s %s was never acknowledged", o.kind, o.id)
				}
				want[o.ledgerType+" "+o.ledgerRef] += o.entries
			}
			got := ledgerRefs(t, c, base, m.id)
			for k, n := range got {
				if want[k] != n {
					t.Errorf("member %s: ledger has %q %d times, the model %d", m.id, k, n, want[k])
				}
			}
			for k, n := range want {
				if n > 0 && got[k] == 0 {
					t.Errorf("member %s: ledger lacks %q", m.id, k)
				}
			}
			for _, p := range m.purchases {
				var view struct {
					Points         int64    `json:"points"`
					RefundedAmount string   `json:"refunded_amount"`
					RefundedPoints int64    `json:"refunded_points"`
					Refunds        []string `json:"refunds"`
				}
				getJSON(t, c, base+"/v1/purchases/"+url.PathEscape(p.op.id), &view)
				if view.Points != p.points || view.RefundedAmount != money(p.refundedCents) || view.RefundedPoints != p.takenPoints {
					t.Errorf("purchase %s: %+v, the model %d points, %s and %d points refunded", p.op.id, view, p.points, money(p.refundedCents), p.takenPoints)
				}
			}
		}
	}
}

// ledgerRefs counts a member's ledger entries by type and reference.
func ledgerRefs(t *testing.T, c *http.Client, base, member string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	cursor := ""
	for {
		var page struct {
			Entries []struct {
				Type string `json:"type"`
				Ref  string `json:"ref"`
			} `json:"entries"`
			NextCursor string `json:"next_cursor"`
		}
		getJSON(t, c, base+"/v1/members/"+member+"/ledger?limit=500&cursor="+url.QueryEscape(cursor), &page)
		for _, e := range page.Entries {
			counts[e.Type+" "+e.Ref]++
		}
		if page.NextCursor == "" {
			return counts
		}
		cursor = page.NextCursor
	}
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestCrashPostgres runs two servers on one PostgreSQL database, kills
// either with SIGKILL at random moments while the tills post through both
// in turn (a retry usually goes to the other), and proves the same: every
// acknowledged write applied exactly once, balances as the model says,
// verify clean. The long form (-crash.long) makes 20 runs, each on a
// database of its own.
func TestCrashPostgres(t *testing.T) {
	if !*longFlag {
		runScenario(t, scenario{seed: seed(), tills: 12, members: 4, kills: 5, servers: 2, db: pgtest.URL(t),
			upMin: 150 * time.Millisecond, upMax: 600 * time.Millisecond, downMax: 100 * time.Millisecond, keepAlive: true,
			replay: "-run 'TestCrashPostgres$' -crash.seed=%d"})
		return
	}
	runs := 20
	if *runsFlag > 0 {
		runs = *runsFlag
	}
	first := seed()
	for i := range runs {
		t.Run(fmt.Sprintf("run%02d", i+1), func(t *testing.T) {
			runScenario(t, scenario{seed: first + uint64(i), tills: 24, members: 4, kills: 10, servers: 2, db: pgtest.URL(t),
				upMin: 200 * time.Millisecond, upMax: 1500 * time.Millisecond, downMax: 300 * time.Millisecond, keepAlive: i%2 == 0,
				replay: "-run 'TestCrashPostgres$' -crash.long -crash.runs=1 -crash.seed=%d"})
		})
	}
}
