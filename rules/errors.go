package rules

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a rules file, positioned so an editor can jump to it.
type Error struct {
	File    string
	Line    int // 1-based
	Column  int // 1-based, in characters
	Message string
	// Rule names the earn rule at fault, or "reward NAME" for a reward
	// whose when failed, for a problem found by running the rules (Trial)
	// rather than by reading them.
	Rule string
}

// Error formats the problem as FILE:LINE:COL: message, the form editors and
// CI logs recognise.
func (e Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Message)
}

// Errors is every problem found in a rules file, sorted by position. Parse
// returns it so a marketer fixes the whole file in one go.
type Errors []Error

// Error lists the problems one per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
}

// suggest returns the candidate closest to word, or "" when none is close
// enough to be a likely misspelling. Short words get a tighter limit so that
// "name" does not suggest "rank".
func suggest(word string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		limit := min(2, max(1, len(c)/3))
		d := editDistance(strings.ToLower(word), c)
		if d <= limit && d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// hint is suggest formatted as the tail of a message.
func hint(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}

// editDistance is the optimal string alignment distance: Levenshtein plus
// adjacent transpositions, the commonest typing slip ("mutliplier").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Long words are never misspellings of our short keys; this also keeps
		// the cost bounded on hostile input.
		if a == b {
			return 0
		}
		return 1 << 10
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// oneOf lists allowed values for a message: "floor, nearest or ceil".
func oneOf(values []string) string {
	switch len(values) {
	case 0:
		return ""
	case 1:
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// Hint is hint for other packages: "; did you mean "x"?" when one of
// candidates is a likely misspelling of word, else "".
func Hint(word string, candidates []string) string { return hint(word, candidates) }
