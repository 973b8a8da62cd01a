package expand

import "testing"

func TestDeriveSeed(t *testing.T) {
	t.Parallel()
	a := DeriveSeed("rows.csv", "12", "0")
	if b := DeriveSeed("rows.csv", "12", "0"); a != b {
		t.Fatalf("same parts gave %d then %d", a, b)
	}
	distinct := [][]string{
		{"rows.csv", "12", "1"},
		{"rows.csv", "13", "0"},
		{"rows.csv1", "2", "0"}, // same bytes, different split
		{"rows.csv", "120"},
		{},
	}
	for _, parts := range distinct {
		if got := DeriveSeed(parts...); got == a {
			t.Errorf("DeriveSeed(%q) = %d, same as for rows.csv/12/0", parts, got)
		}
	}
	seen := map[int64]bool{}
	for i := range 10_000 {
		s := DeriveSeed("row", string(rune('a'+i%26)), string(rune(i)))
		if s < 1 || s > MaxSeed {
			t.Fatalf("seed %d outside [1, %d]", s, MaxSeed)
		}
		seen[s] = true
	}
	if len(seen) < 9_990 {
		t.Errorf("only %d distinct seeds out of 10000", len(seen))
	}
}
