package webhook_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/webhook"
)

// BenchmarkPurchases measures purchases (rate and p99 latency), from
// parallel tills, while the worker runs: with no endpoint, and with one subscribed to every event
// that never answers (each attempt waits out its timeout) or refuses
// connections.
//
//	go test ./webhook -run '^$' -bench Purchases -benchtime 10s
func BenchmarkPurchases(b *testing.B) {
	for _, endpoint := range []string{"none", "healthy", "hung", "refused"} {
		b.Run(endpoint, func(b *testing.B) {
			r := newRig(b)
			switch endpoint {
			case "hung":
				release := make(chan struct{})
				rc := newReceiver(b, func(_ int, _ http.ResponseWriter, req *http.Request) {
					select {
					case <-release:
					case <-req.Context().Done():
					}
				})
				b.Cleanup(func() { close(release) })
				r.hook(rc.URL, "*")
			case "healthy":
				r.hook(newReceiver(b, nil).URL, "*")
			case "refused":
				r.hook("http://127.0.0.1:1/", "*")
			}
			// serve's defaults.
			r.runWith(webhook.Options{Holder: "bench", Exclusive: storeKind == storetesting.Bolt})
			members := make([]string, 64)
			for i := range members {
				members[i] = r.member()
			}
			var n atomic.Int64
			var mu sync.Mutex
			var took []time.Duration
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					i := n.Add(1)
					start := time.Now()
					if _, _, err := r.e.Purchase(b.Context(), engine.PurchaseRequest{
						ID: fmt.Sprint("p", i), MemberID: members[i%int64(len(members))], Currency: "USD", Amount: "4.20",
					}); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				took = append(took, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(took)
			if len(took) > 0 {
				b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purchases/s")
		})
	}
}
