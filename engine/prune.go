package engine

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// WebhookCursorSetting is the setting under which the webhook worker
// keeps its fan-out cursor: the seq of the last event it has turned into
// deliveries. Pruning keeps every event after it.
const WebhookCursorSetting = "webhooks.cursor"

// pruneChunk is how many events one pruning transaction deletes.
const pruneChunk = 1000

// pruneEvents deletes the events older than the rules' retention, with
// their deliveries, up to the first event that an enabled webhook
// endpoint still has to get: the oldest of its pending deliveries, or
// any the worker has not yet made deliveries of. Seqs follow commit
// order, not time, so the events go oldest seq first up to the first one
// that is recent enough, which keeps the feed without holes.
func (e *Engine) pruneEvents(ctx context.Context, live *liveRules, now time.Time) (int64, error) {
	cutoff := live.prog.Events.Retention.SubtractFrom(now)
	var upTo uint64
	err := e.store.View(ctx, func(tx Tx) error {
		var after uint64
	scan:
		for {
			evs, err := tx.Events(after, pruneChunk)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if !ev.At.Before(cutoff) {
					break scan
				}
				upTo = ev.Seq
			}
			if len(evs) < pruneChunk {
				break
			}
			after = evs[len(evs)-1].Seq
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if upTo == 0 {
			return nil
		}
		hooks, err := tx.Webhooks()
		if err != nil {
			return err
		}
		enabled := false
		for _, w := range hooks {
			if w.Status != WebhookEnabled {
				continue
			}
			enabled = true
			pending, err := tx.Deliveries(w.ID, DeliveryPending, 0, 1)
			if err != nil {
				return err
			}
			if len(pending) == 1 && pending[0].Seq <= upTo {
				upTo = pending[0].Seq - 1
			}
		}
		if enabled {
			b, err := tx.Setting(WebhookCursorSetting)
			if err != nil {
				return err
			}
			cursor, _ := strconv.ParseUint(string(b), 10, 64)
			upTo = min(upTo, cursor)
		}
		return nil
	})
	if err != nil || upTo == 0 {
		return 0, err
	}
	var deleted int64
	for {
		var n int
		err := e.store.Update(ctx, func(tx Tx) error {
			var err error
			n, err = tx.DeleteEvents(upTo, pruneChunk)
			return err
		})
		if err != nil {
			return deleted, fmt.Errorf("prune events: %w", err)
		}
		deleted += int64(n)
		if n < pruneChunk {
			return deleted, nil
		}
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
	}
}
