package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// client sends the bench's requests over keep-alive connections. fasthttp
// keeps the load generator's own CPU cost low: it shares the machine with
// the server. Given several servers, each worker sends its requests to
// them in turn, as a round-robin load balancer would.
type client struct {
	hcs     []*fasthttp.HostClient
	members []memberRef
	run     string // makes purchase ids unique across runs on one database
	tills   atomic.Int64
	// pid is the server's process, when known, to measure its CPU time;
	// pids are more servers' (all of whose CPU time counts), and dbPids a
	// function listing the database server's processes, when local.
	pid    int
	pids   []int
	dbPids func() []int
}

func newClient(addr string, members []memberRef, run string, more ...string) *client {
	c := &client{members: members, run: run}
	for _, a := range append([]string{addr}, more...) {
		c.hcs = append(c.hcs, &fasthttp.HostClient{
			Addr: a, MaxConns: 4096, WriteTimeout: time.Minute,
			// The expiry run answers when the job is done, which may take minutes.
			ReadTimeout:               30 * time.Minute,
			MaxIdemponentCallAttempts: 1,
		})
	}
	return c
}

// item is a line a till can ring up.
type item struct {
	sku, category string
	cents         int64
	maxQty        int
}

var catalog = []item{
	{"LATTE-M", "coffee", 420, 3}, {"CAPPUCCINO-L", "coffee", 460, 3}, {"ESPRESSO", "coffee", 280, 2},
	{"FILTER-M", "coffee", 310, 2}, {"BEANS-250G", "beans", 1250, 2}, {"BEANS-1KG", "beans", 3800, 1},
	{"CROISSANT", "food", 320, 3}, {"MUFFIN", "food", 350, 2}, {"BAGEL", "food", 290, 2},
	{"SANDWICH", "food", 780, 1}, {"MUG", "merch", 1400, 1}, {"TUMBLER", "merch", 2200, 1},
}

// worker is one simulated till or app: its own request buffers and random
// source, so workers share nothing but the connection pool.
type worker struct {
	c    *client
	rnd  *rand.Rand
	req  *fasthttp.Request
	resp *fasthttp.Response
	body []byte
	// A worker is one till of one store; it numbers its purchases as tills
	// do, so ids from many tills interleave in the store's id order.
	store, till int64
	receipt     int64
	// sent counts requests, to take the servers in turn.
	sent int
}

func (c *client) newWorker(seed uint64) *worker {
	n := c.tills.Add(1)
	return &worker{
		c: c, rnd: rand.New(rand.NewPCG(seed, 0x10ca1)), req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse(),
		store: n % 97, till: n / 97, sent: int(n),
	}
}

func (w *worker) release() {
	fasthttp.ReleaseRequest(w.req)
	fasthttp.ReleaseResponse(w.resp)
}

func appendMoney(b []byte, cents int64) []byte {
	b = strconv.AppendInt(b, cents/100, 10)
	b = append(b, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	return b
}

// purchaseBody builds a till's next purchase: 1–5 lines from the catalog,
// the member named by id or, half the time, by card number (external id).
func (w *worker) purchaseBody() []byte {
	c := w.c
	m := c.members[w.rnd.IntN(len(c.members))]
	w.receipt++
	b := strconv.AppendInt(append(w.body[:0], `{"id":"s`...), w.store, 10)
	b = strconv.AppendInt(append(b, "-t"...), w.till, 10)
	b = strconv.AppendInt(append(append(append(b, '-'), c.run...), '-'), w.receipt, 10)
	if w.rnd.IntN(2) == 0 {
		b = append(append(append(b, `","member_id":"`...), m.id...), '"')
	} else {
		b = append(append(append(b, `","member_external_id":"`...), m.externalID...), '"')
	}
	b = strconv.AppendInt(append(b, `,"store_id":"store-`...), w.store, 10)
	b = strconv.AppendInt(append(b, `","terminal_id":"till-`...), w.till, 10)
	b = append(b, `","currency":"USD","items":[`...)
	var total int64
	for i := range 1 + w.rnd.IntN(5) {
		it := catalog[w.rnd.IntN(len(catalog))]
		q := 1 + w.rnd.IntN(it.maxQty)
		amount := it.cents * int64(q)
		total += amount
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, `{"sku":"`...), it.sku...), `","category":"`...)
		b = append(append(b, it.category...), `","quantity":`...)
		b = strconv.AppendInt(b, int64(q), 10)
		b = appendMoney(append(b, `,"amount":"`...), amount)
		b = append(b, `"}`...)
	}
	b = appendMoney(append(b, `],"amount":"`...), total)
	b = append(b, `"}`...)
	w.body = b
	return b
}

// errStatus is an answer the bench did not expect.
type errStatus struct {
	code int
	body string
}

func (e errStatus) Error() string { return fmt.Sprintf("status %d: %s", e.code, e.body) }

func (w *worker) do(method, uri string, body []byte, want int) error {
	w.req.Reset()
	w.resp.Reset()
	w.req.Header.SetMethod(method)
	w.req.SetRequestURI(uri)
	hc := w.c.hcs[w.sent%len(w.c.hcs)]
	w.sent++
	w.req.SetHost(hc.Addr)
	if body != nil {
		w.req.Header.SetContentType("application/json")
		w.req.SetBodyRaw(body)
	}
	if err := hc.Do(w.req, w.resp); err != nil {
		return err
	}
	if code := w.resp.StatusCode(); code != want {
		return errStatus{code, string(w.resp.Body())}
	}
	return nil
}

func (w *worker) purchase() error {
	return w.do(fasthttp.MethodPost, "/v1/purchases", w.purchaseBody(), fasthttp.StatusCreated)
}

// refusedPoints is more than any seeded member holds, so every redemption
// the bench asks for is refused (422 insufficient_points).
const refusedPoints = 1_000_000_000_000

// redemptionBody asks for refusedPoints of a random member, with a new id.
func (w *worker) redemptionBody() (member string, body []byte) {
	m := w.c.members[w.rnd.IntN(len(w.c.members))]
	w.receipt++
	b := strconv.AppendInt(append(w.body[:0], `{"id":"refused-s`...), w.store, 10)
	b = strconv.AppendInt(append(b, "-t"...), w.till, 10)
	b = strconv.AppendInt(append(append(append(b, '-'), w.c.run...), '-'), w.receipt, 10)
	b = strconv.AppendInt(append(b, `","points":`...), refusedPoints, 10)
	w.body = append(b, '}')
	return m.id, w.body
}

func (w *worker) refusedRedemption() error {
	member, body := w.redemptionBody()
	return w.do(fasthttp.MethodPost, "/v1/members/"+member+"/redemptions", body, fasthttp.StatusUnprocessableEntity)
}

func (w *worker) balance() error {
	m := w.c.members[w.rnd.IntN(len(w.c.members))]
	return w.do(fasthttp.MethodGet, "/v1/members/"+m.id+"/balance", nil, fasthttp.StatusOK)
}

// latencies is the outcome of one load: every request's latency, and the
// failures.
type latencies struct {
	took     []time.Duration
	errors   int
	firstErr error
	elapsed  time.Duration
	// server is what the server used over the measured part, when known,
	// and self the bench's own CPU time, which competes with it; db is
	// the CPU time of a local database server's processes.
	server procSample
	self   time.Duration
	db     time.Duration
}

func (l *latencies) merge(o *latencies) {
	l.took = append(l.took, o.took...)
	l.errors += o.errors
	if l.firstErr == nil {
		l.firstErr = o.firstErr
	}
}

// add counts o, a load measured after l, as part of l: its requests, its
// time and what the server used during it.
func (l *latencies) add(o *latencies) {
	l.merge(o)
	l.elapsed += o.elapsed
	l.server.cpu += o.server.cpu
	l.server.written += o.server.written
	l.self += o.self
	l.db += o.db
}

// stats summarises a load for the table and the JSON.
type stats struct {
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	PerSec      float64 `json:"per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	MaxMs       float64 `json:"max_ms"`
	// ServerCores is the server's CPU time over the wall time: how many of
	// the machine's cores it kept busy (the load generator uses the rest).
	ServerCores float64 `json:"server_cores,omitempty"`
	// ServerCPUus is the server's CPU time per request of this load; for
	// loads that run side by side it covers all of them.
	ServerCPUus float64 `json:"server_cpu_us_per_request,omitempty"`
	// BenchCPUus is the load generator's own CPU time per request (for
	// loads side by side, of all of them).
	BenchCPUus float64 `json:"bench_cpu_us_per_request,omitempty"`
	// ServerWriteKiB is what the server wrote to storage per request.
	ServerWriteKiB float64 `json:"server_write_kib_per_request,omitempty"`
	// DBCores and DBCPUus are a local PostgreSQL's CPU time (all its
	// processes), over the wall time and per request.
	DBCores float64 `json:"db_cores,omitempty"`
	DBCPUus float64 `json:"db_cpu_us_per_request,omitempty"`
}

func (l *latencies) stats(conc int) stats {
	slices.Sort(l.took)
	q := func(p float64) float64 {
		if len(l.took) == 0 {
			return 0
		}
		return ms(l.took[int(p*float64(len(l.took)-1))])
	}
	s := stats{Concurrency: conc, Requests: len(l.took), Errors: l.errors, P50ms: q(0.5), P99ms: q(0.99), P999ms: q(0.999), MaxMs: q(1)}
	if l.elapsed > 0 {
		s.PerSec = float64(len(l.took)) / l.elapsed.Seconds()
		s.ServerCores = l.server.cpu.Seconds() / l.elapsed.Seconds()
		s.DBCores = l.db.Seconds() / l.elapsed.Seconds()
	}
	if len(l.took) > 0 {
		n := float64(len(l.took))
		s.ServerCPUus = float64(l.server.cpu.Microseconds()) / n
		s.BenchCPUus = float64(l.self.Microseconds()) / n
		s.ServerWriteKiB = float64(l.server.written) / 1024 / n
		s.DBCPUus = float64(l.db.Microseconds()) / n
	}
	return s
}

// selfCPU is the CPU time the bench process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// load runs conc workers calling op until stop is closed, recording only
// requests that start after warm is closed (a nil warm: all of them).
func (c *client) load(conc int, op func(*worker) error, warm, stop <-chan struct{}) *latencies {
	parts := make([]latencies, conc)
	var wg sync.WaitGroup
	var began time.Time
	var once sync.Once
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := c.newWorker(uint64(i)*7919 + uint64(time.Now().UnixNano()))
			defer w.release()
			l := &parts[i]
			for {
				select {
				case <-stop:
					return
				default:
				}
				counting := closed(warm)
				if counting {
					once.Do(func() { began = time.Now() })
				}
				t := time.Now()
				err := op(w)
				d := time.Since(t)
				if !counting {
					continue
				}
				if err != nil {
					l.errors++
					if l.firstErr == nil {
						l.firstErr = err
					}
					continue
				}
				l.took = append(l.took, d)
			}
		}()
	}
	server0, self0, db0 := make(chan procSample, 1), make(chan time.Duration, 1), make(chan time.Duration, 1)
	go func() {
		if warm != nil {
			<-warm
		}
		self0 <- selfCPU()
		server0 <- c.sampleServers()
		db0 <- c.sampleDB()
	}()
	wg.Wait()
	out := &latencies{}
	for i := range parts {
		out.merge(&parts[i])
	}
	if !began.IsZero() {
		out.elapsed = time.Since(began)
	}
	out.self = selfCPU() - <-self0
	if start := <-server0; start.cpu > 0 {
		end := c.sampleServers()
		out.server = procSample{cpu: end.cpu - start.cpu, written: end.written - start.written}
	}
	if start := <-db0; start > 0 {
		out.db = c.sampleDB() - start
	}
	return out
}

// sampleServers adds up what the servers have used so far.
func (c *client) sampleServers() procSample {
	var sum procSample
	for _, pid := range append([]int{c.pid}, c.pids...) {
		if pid <= 0 {
			continue
		}
		if s, err := sampleProc(pid); err == nil {
			sum.cpu += s.cpu
			sum.written += s.written
		}
	}
	return sum
}

// sampleDB is the CPU time a local database server has used so far.
func (c *client) sampleDB() time.Duration {
	if c.dbPids == nil {
		return 0
	}
	var sum time.Duration
	for _, pid := range c.dbPids() {
		if d, err := cpuTime(pid); err == nil {
			sum += d
		}
	}
	return sum
}

func closed(c <-chan struct{}) bool {
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// timed runs a load for warmup then measures it for d.
func (c *client) timed(ctx context.Context, conc int, op func(*worker) error, warmup, d time.Duration) (*latencies, error) {
	warm, stop := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-time.After(warmup):
			close(warm)
		case <-ctx.Done():
			close(warm)
			close(stop)
			return
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		close(stop)
	}()
	l := c.load(conc, op, warm, stop)
	return l, ctx.Err()
}

// seedOverHTTP enrols n members through POST /v1/members, for a server the
// bench did not start.
func (c *client) seedOverHTTP(ctx context.Context, n, conc int, prefix string) ([]memberRef, error) {
	out := make([]memberRef, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := c.newWorker(uint64(time.Now().UnixNano()))
			defer w.release()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ext := fmt.Sprintf("%s%07d", prefix, i)
				err := w.do(fasthttp.MethodPost, "/v1/members", []byte(`{"external_id":"`+ext+`"}`), fasthttp.StatusCreated)
				var id string
				if err == nil {
					id, err = jsonString(w.resp.Body(), "id")
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("enrol %s: %w", ext, err)
					}
					mu.Unlock()
					return
				}
				out[i] = memberRef{id: id, externalID: ext}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, ctx.Err()
}
