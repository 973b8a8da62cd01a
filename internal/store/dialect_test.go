package store

import (
	"testing"
	"time"
)

func TestRebind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"none", "SELECT 1", "SELECT 1"},
		{"several", "SELECT a FROM t WHERE a = ? AND b IN (?, ?)", "SELECT a FROM t WHERE a = $1 AND b IN ($2, $3)"},
		{"literal kept", "SELECT '?' , x FROM t WHERE y = ?", "SELECT '?' , x FROM t WHERE y = $1"},
		{"escaped quote", "SELECT 'it''s ?' WHERE a = ?", "SELECT 'it''s ?' WHERE a = $1"},
		{"ten and more", "?,?,?,?,?,?,?,?,?,?,?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := rebind(tt.in); got != tt.want {
				t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTimeCol(t *testing.T) {
	t.Parallel()
	want := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
	tests := []struct {
		name string
		src  any
		want time.Time
	}{
		{"nil", nil, time.Time{}},
		{"time", want.In(time.FixedZone("x", 3600)), want},
		{"sqlite text", "2025-03-04 05:06:07.123456", want},
		{"bytes", []byte("2025-03-04 05:06:07.123456"), want},
		{"current_timestamp", "2025-03-04 05:06:07", want.Truncate(time.Second)},
		{"rfc3339", "2025-03-04T06:06:07.123456+01:00", want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got time.Time
			if err := (timeCol{&got}).Scan(tt.src); err != nil {
				t.Fatalf("Scan(%v): %v", tt.src, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("Scan(%v) = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
	var got time.Time
	if err := (timeCol{&got}).Scan("yesterday"); err == nil {
		t.Errorf("Scan(%q) succeeded, want an error", "yesterday")
	}
}

func TestSQLiteTimeTextSortsLikeTime(t *testing.T) {
	t.Parallel()
	// SQLite compares stored times as text, so the text form must sort in
	// time order, including across whole seconds.
	db := &DB{dialect: SQLite}
	a := time.Date(2025, 1, 1, 0, 0, 0, 999_999_000, time.UTC)
	b := a.Add(time.Microsecond)
	sa, sb := db.timeArg(a).(string), db.timeArg(b).(string)
	if !(sa < sb) {
		t.Errorf("text %q does not sort before %q", sa, sb)
	}
	if got := db.timeArg(time.Time{}); got != nil {
		t.Errorf("timeArg(zero) = %v, want nil", got)
	}
}
