package expand

import (
	"strconv"
	"strings"
	"sync"
)

// NextCandidate returns the k-th candidate for name: name itself for
// k <= 1, otherwise name with "-k" inserted before its extension
// ("cat.png", 3 → "cat-3.png"; "cat", 2 → "cat-2"). Only the last path
// segment is changed.
func NextCandidate(name string, k int) string {
	if k <= 1 {
		return name
	}
	base, ext := splitExt(name)
	return base + "-" + strconv.Itoa(k) + ext
}

// splitExt splits a short alphanumeric extension (".png", ".jpeg") off the
// last path segment. Longer or odd suffixes are not extensions: in
// "v1.5 portrait" the ".5 portrait" must stay before the counter.
func splitExt(name string) (base, ext string) {
	dot := strings.LastIndexByte(name, '.')
	if dot <= strings.LastIndexByte(name, '/')+1 || len(name)-dot-1 > 5 || dot == len(name)-1 {
		return name, ""
	}
	for _, c := range name[dot+1:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return name, ""
		}
	}
	return name[:dot], name[dot:]
}

// Unique is an in-memory, case-insensitive set of claimed names for one
// batch. The zero value is ready to use; it is safe for concurrent use.
type Unique struct {
	mu    sync.Mutex
	taken map[string]struct{}
	// next remembers, per requested name, the next counter to try, so that
	// thousands of rows with the same name cost one probe each rather than
	// a scan from 2 every time.
	next map[string]int
}

// Claim returns name if no name equal to it ignoring case was claimed
// before, otherwise the first free NextCandidate, and marks the result as
// taken.
func (u *Unique) Claim(name string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.taken == nil {
		u.taken = make(map[string]struct{})
		u.next = make(map[string]int)
	}
	key := foldKey(name)
	k := u.next[key]
	if k < 1 {
		k = 1
	}
	for ; ; k++ {
		c := NextCandidate(name, k)
		ck := key
		if k > 1 {
			ck = foldKey(c)
		}
		if _, used := u.taken[ck]; !used {
			u.taken[ck] = struct{}{}
			u.next[key] = k + 1
			return c
		}
	}
}

// foldKey is the comparison key for names. Full Unicode case folding
// differs between filesystems; lower-casing covers the cases that matter
// (ASCII and the common scripts) on all of them.
func foldKey(name string) string { return strings.ToLower(name) }
