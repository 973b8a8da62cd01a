package runstate

import (
	"context"
	"fmt"
	"testing"
)

func candidate(name string, k int) string { return fmt.Sprintf("%s-%d", name, k) }

func claimAll(t *testing.T, s *State, claims [][2]string) []Row {
	t.Helper()
	ctx := context.Background()
	c, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rows []Row
	for _, kv := range claims {
		r, err := c.Claim(ctx, kv[0], kv[1], []byte(`{}`), candidate)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestClaimNamesAndResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()

	s1, err := Open(ctx, dir, "first")
	if err != nil {
		t.Fatal(err)
	}
	rows := claimAll(t, s1, [][2]string{{"k1", "cat"}, {"k2", "Cat"}, {"k3", "cat"}, {"k4", "dog"}})
	want := []string{"cat", "Cat-2", "cat-3", "dog"}
	for i, r := range rows {
		if r.Name != want[i] {
			t.Errorf("claim %d: name %q, want %q (names are unique ignoring case)", i, r.Name, want[i])
		}
	}
	if err := s1.Finish(ctx, Outcome{Key: "k1", Status: "succeeded", File: "cat.png", SHA256: "aa", Record: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	s1.Close()

	// A second run: k1 unchanged keeps its name and status; k5 is new and
	// takes over "dog", which this run no longer asks for.
	s2, err := Open(ctx, dir, "second")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rows = claimAll(t, s2, [][2]string{{"k1", "cat"}, {"k5", "dog"}})
	if rows[0].Name != "cat" || rows[0].Status != "succeeded" || rows[0].SHA256 != "aa" {
		t.Errorf("resumed row %+v", rows[0])
	}
	if rows[1].Name != "dog" || rows[1].Status != "pending" {
		t.Errorf("new row %+v", rows[1])
	}
	page, err := s2.Page(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Key != "k1" || page[1].Key != "k5" {
		t.Fatalf("page of run 2: %+v", page)
	}
	// Paging continues after a sequence number.
	rest, err := s2.Page(ctx, page[0].Seq, 10)
	if err != nil || len(rest) != 1 || rest[0].Key != "k5" {
		t.Fatalf("second page: %+v %v", rest, err)
	}
}
