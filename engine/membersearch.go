package engine

import (
	"context"
	"strings"
	"unicode/utf8"
)

// MemberPage is a page of members found by name, in id order.
type MemberPage struct {
	Members    []*MemberView `json:"members"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// SearchMembers finds the members whose name holds name, ignoring case,
// in id order after cursor. Names have no index, so a page reads at most
// analyticsScan members: with a rare name over many members it may be
// short or empty and still carry a cursor to go on.
func (e *Engine) SearchMembers(ctx context.Context, name, cursor string, limit int) (*MemberPage, error) {
	limit, err := PageSize(limit)
	if err != nil {
		return nil, err
	}
	want := strings.ToLower(strings.TrimSpace(name))
	if utf8.RuneCountInString(want) < 2 {
		return nil, FieldErrorf(EINVALID, "name", "give at least 2 characters of the name")
	}
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	page := &MemberPage{Members: []*MemberView{}}
	after, read := cursor, 0
	for read < analyticsScan && len(page.Members) <= limit {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var n int
		err := e.store.View(ctx, func(tx Tx) error {
			ms, err := tx.Members(after, analyticsRead)
			if err != nil {
				return err
			}
			n = len(ms)
			for _, m := range ms {
				after = m.ID
				read++
				if !strings.Contains(strings.ToLower(m.Name), want) {
					continue
				}
				v, err := memberView(tx, live, m, now)
				if err != nil {
					return err
				}
				// One match past the page tells whether another page exists.
				if page.Members = append(page.Members, v); len(page.Members) > limit {
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if n < analyticsRead && len(page.Members) <= limit {
			return page, nil // the end of the members
		}
	}
	if len(page.Members) > limit {
		page.Members = page.Members[:limit]
		page.NextCursor = page.Members[limit-1].ID
	} else {
		page.NextCursor = after
	}
	return page, nil
}
