package server

import (
	"strconv"
	"strings"

	"bulkgen/internal/store"
)

// dialectSQL rewrites a test's query written with "?" placeholders for d:
// PostgreSQL wants $1, $2, … The tests' own queries contain no "?" inside
// literals. (The server itself has no SQL: it is all in store.)
func dialectSQL(d store.Dialect, query string) string {
	if d != store.Postgres {
		return query
	}
	var sb strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
			continue
		}
		sb.WriteByte(query[i])
	}
	return sb.String()
}
