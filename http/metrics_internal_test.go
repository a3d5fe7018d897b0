package http

import (
	"strconv"
	"testing"
)

// BenchmarkRequestMetrics is what observe spends on the two series of
// every request, to weigh against a request's whole CPU
// (BenchmarkHTTPBalance).
func BenchmarkRequestMetrics(b *testing.B) {
	m := NewMetrics(nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.requests.WithLabelValues("GET", "/v1/members/:id/balance", strconv.Itoa(200)).Inc()
			m.latency.WithLabelValues("GET", "/v1/members/:id/balance").Observe(0.0002)
		}
	})
}
