package http_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// The HTTP benchmarks put the whole server (fiber, the middleware with its
// access log line and metrics, the strict decoder, the engine) between an
// in-memory connection and a bbolt file without fsync, so that what they
// measure is the CPU of a request, not the disk or the network: issue 18's
// "server CPU per purchase and per read".

const benchHTTPMembers = 1000

// benchHTTP serves a server over an in-memory listener and returns a client
// that dials it, with benchHTTPMembers members enrolled.
func benchHTTP(b *testing.B) (*fasthttp.Client, []string) {
	b.Helper()
	opts := store.DefaultOptions()
	opts.NoSync = true
	db, err := store.Open(b.TempDir()+"/bench.db", opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		b.Fatal(err)
	}
	// The access log is written as serve writes it (JSON), to nowhere.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	e := engine.New(db, engine.Options{Logger: log})
	ctx := context.Background()
	if _, err := e.LoadRules(ctx, prog, "bench"); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, benchHTTPMembers)
	for i := range ids {
		m, err := e.CreateMember(ctx, engine.MemberInput{ExternalID: fmt.Sprintf("card-%06d", i)})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = m.ID
	}
	srv := lhttp.NewServer(lhttp.Config{Engine: e, Logger: log})
	ln := fasthttputil.NewInmemoryListener()
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown(5 * time.Second) })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConnsPerHost: 1024}, ids
}

// benchRequests runs do from 32 goroutines per core and reports CPU time
// per request (server and client: one process), which holds still on a
// busy machine where wall time does not.
func benchRequests(b *testing.B, do func(req *fasthttp.Request, n int64)) {
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	cpu := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.Reset()
			do(req, next.Add(1))
			if err := benchClient.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
			if s := resp.StatusCode(); s != fasthttp.StatusOK && s != fasthttp.StatusCreated {
				b.Errorf("status %d: %s", s, resp.Body())
				return
			}
		}
	})
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

var benchClient *fasthttp.Client

// BenchmarkHTTPPurchase posts a till's purchase of three items, half by
// card, as the load tool does.
func BenchmarkHTTPPurchase(b *testing.B) {
	var ids []string
	benchClient, ids = benchHTTP(b)
	benchRequests(b, func(req *fasthttp.Request, n int64) {
		who := `"member_id":"` + ids[n%int64(len(ids))] + `"`
		if n%2 == 0 {
			who = `"member_external_id":"card-` + fmt.Sprintf("%06d", n%int64(len(ids))) + `"`
		}
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("http://localhost/v1/purchases")
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"id":"p-` + strconv.FormatInt(n, 10) + `",` + who + `,"store_id":"store-12","terminal_id":"till-3","currency":"USD","amount":"28.40",` +
			`"items":[{"sku":"LATTE-L","category":"coffee","quantity":2,"amount":"8.00"},{"sku":"BEANS-1KG","category":"beans","quantity":1,"amount":"15.40"},{"sku":"CROISSANT","category":"food","quantity":1,"amount":"5.00"}]}`)
	})
}

// BenchmarkHTTPBalance reads members' balances.
func BenchmarkHTTPBalance(b *testing.B) {
	var ids []string
	benchClient, ids = benchHTTP(b)
	benchRequests(b, func(req *fasthttp.Request, n int64) {
		req.SetRequestURI("http://localhost/v1/members/" + ids[n%int64(len(ids))] + "/balance")
	})
}

// processCPU is the CPU time this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
