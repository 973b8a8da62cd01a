package catalog

import (
	"slices"
	"strings"
)

// suggest returns up to five model ids whose id or alias is close to the
// unknown query: by edit distance, or by containing it (a user typing
// "flux-schnell" should be offered every flux-schnell).
func suggest(query string, names []string, byKey map[string]keyEntry) []string {
	q := strings.ToLower(strings.TrimSpace(query))
	if q == "" {
		return nil
	}
	type scored struct {
		id   string
		dist int
	}
	best := map[string]int{}
	limit := max(2, len(q)/3)
	for _, name := range names {
		n := strings.ToLower(name)
		e := byKey[n]
		if e.model == nil {
			continue
		}
		d := levenshtein(q, n)
		// Compare with the part after the provider too: "gpt-image-3"
		// against "gpt-image-2" rather than "openai/gpt-image-2".
		if _, tail, ok := strings.Cut(n, "/"); ok {
			d = min(d, levenshtein(q, tail))
		}
		if len(q) >= 4 && strings.Contains(n, q) {
			d = min(d, 1)
		}
		if d > limit {
			continue
		}
		if prev, ok := best[e.model.ID]; !ok || d < prev {
			best[e.model.ID] = d
		}
	}
	out := make([]scored, 0, len(best))
	for id, d := range best {
		out = append(out, scored{id, d})
	}
	slices.SortFunc(out, func(a, b scored) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		return strings.Compare(a.id, b.id)
	})
	var ids []string
	for i := 0; i < len(out) && i < 5; i++ {
		ids = append(ids, out[i].id)
	}
	return ids
}

// levenshtein is the edit distance between a and b, by bytes (ids are
// ASCII).
func levenshtein(a, b string) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
