package webhook_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/webhook"
)

// BenchmarkPurchases measures purchases, from parallel tills, while the
// worker runs: with no endpoint, and with one subscribed to every event
// that never answers (each attempt waits out its timeout) or refuses
// connections. docs/PERFORMANCE.md has the figures.
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
			r.runWith(webhook.Options{Holder: "bench"})
			members := make([]string, 64)
			for i := range members {
				members[i] = r.member()
			}
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if _, _, err := r.e.Purchase(b.Context(), engine.PurchaseRequest{
						ID: fmt.Sprint("p", i), MemberID: members[i%int64(len(members))], Currency: "USD", Amount: "4.20",
					}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purchases/s")
		})
	}
}
