package expand

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestNextCandidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		k    int
		want string
	}{
		{"cat.png", 1, "cat.png"},
		{"cat.png", 0, "cat.png"},
		{"cat.png", 2, "cat-2.png"},
		{"cat.jpeg", 10, "cat-10.jpeg"},
		{"cat", 3, "cat-3"},
		{"a.b/cat", 2, "a.b/cat-2"},
		{"v1.5 portrait", 2, "v1.5 portrait-2"},
		{"archive.tar.gz", 2, "archive.tar-2.gz"},
		{"dir/.png", 2, "dir/.png-2"},
		{"end.", 2, "end.-2"},
	}
	for _, tt := range tests {
		if got := NextCandidate(tt.name, tt.k); got != tt.want {
			t.Errorf("NextCandidate(%q, %d) = %q, want %q", tt.name, tt.k, got, tt.want)
		}
	}
}

func TestUniqueClaim(t *testing.T) {
	t.Parallel()
	var u Unique
	in := []string{"cat.png", "Cat.png", "CAT.PNG", "cat-2.png", "dog.png", "a/cat.png", "A/Cat.png", "cat.png"}
	want := []string{"cat.png", "Cat-2.png", "CAT-3.PNG", "cat-2-2.png", "dog.png", "a/cat.png", "A/Cat-2.png", "cat-4.png"}
	var got []string
	for _, n := range in {
		got = append(got, u.Claim(n))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	seen := map[string]bool{}
	for _, g := range got {
		k := strings.ToLower(g)
		if seen[k] {
			t.Errorf("%q handed out twice (ignoring case)", g)
		}
		seen[k] = true
	}
}

func TestUniqueClaimSkipsNamesTakenLiterally(t *testing.T) {
	t.Parallel()
	var u Unique
	// "x-2.png" arrives first as a real name; the second "x.png" must skip it.
	for _, n := range []string{"x-2.png", "x.png"} {
		u.Claim(n)
	}
	if got := u.Claim("X.png"); got != "X-3.png" {
		t.Errorf("got %q, want X-3.png", got)
	}
}

func TestUniqueConcurrent(t *testing.T) {
	t.Parallel()
	var u Unique
	const workers, each = 8, 200
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				got := u.Claim("same.png")
				mu.Lock()
				if seen[got] {
					t.Errorf("%q handed out twice", got)
				}
				seen[got] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Errorf("%d names, want %d", len(seen), workers*each)
	}
}

func ExampleUnique() {
	var u Unique
	for _, name := range []string{"cat.png", "CAT.png", "cat.png"} {
		fmt.Println(u.Claim(name))
	}
	// Output:
	// cat.png
	// CAT-2.png
	// cat-3.png
}
