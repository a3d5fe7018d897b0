package store

import (
	"fmt"

	"github.com/loyaltyhq/loyalty/engine"
)

// PutAnalyticsSummary implements engine.Tx. Summaries are kept by time, so
// the history of a program's segments stays readable.
func (t *tx) PutAnalyticsSummary(s *engine.AnalyticsSummary) error {
	t.writing()
	if err := put(t.bucket(bucketAnalytics), appendTime(nil, s.ComputedAt), s); err != nil {
		return fmt.Errorf("store: put analytics summary: %w", err)
	}
	return nil
}

// LatestAnalyticsSummary implements engine.Tx.
func (t *tx) LatestAnalyticsSummary() (*engine.AnalyticsSummary, error) {
	_, v := t.bucket(bucketAnalytics).Cursor().Last()
	if v == nil {
		return nil, nil
	}
	var s engine.AnalyticsSummary
	if err := decode(v, &s); err != nil {
		return nil, fmt.Errorf("store: latest analytics summary: %w", err)
	}
	return &s, nil
}
