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

func TestImageSeed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		explicit int64
		has      bool
		index    int
		want     int64
	}{
		{name: "explicit first", explicit: 42, has: true, index: 0, want: 42},
		{name: "explicit counts up", explicit: 42, has: true, index: 3, want: 45},
		{name: "explicit zero", explicit: 0, has: true, index: 1, want: 1},
		{name: "wraps past max", explicit: MaxSeed, has: true, index: 1, want: 0},
		{name: "random marker kept", explicit: -1, has: true, index: 5, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ImageSeed(tt.explicit, tt.has, tt.index, "f.csv", "3"); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	s0 := ImageSeed(0, false, 0, "f.csv", "3")
	s1 := ImageSeed(0, false, 1, "f.csv", "3")
	if s0 == s1 {
		t.Errorf("images 0 and 1 share seed %d", s0)
	}
	if again := ImageSeed(0, false, 0, "f.csv", "3"); again != s0 {
		t.Errorf("re-run gave %d, want %d", again, s0)
	}
	if other := ImageSeed(0, false, 0, "f.csv", "4"); other == s0 {
		t.Errorf("rows 3 and 4 share seed %d", s0)
	}
}
