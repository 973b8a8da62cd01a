package store_test

import (
	"slices"
	"strings"
	"testing"

	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// insertJob writes a River job row directly, as River's insert would, with
// only the columns that have no default.
func insertJob(t *testing.T, db *store.DB, queue string, state store.JobState) {
	t.Helper()
	query := `INSERT INTO river_job (args, kind, max_attempts, queue, state) VALUES (?, ?, ?, ?, ?)`
	if storetest.Dialect() == store.Postgres {
		query = `INSERT INTO river_job (args, kind, max_attempts, queue, state) VALUES ($1, $2, $3, $4, $5)`
	}
	if _, err := db.Writer().ExecContext(t.Context(), query, `{"item_id": 1}`, "image", 5, queue, string(state)); err != nil {
		t.Fatalf("insert job: %v", err)
	}
}

func TestCountJobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		jobs []store.JobCount // each Count is how many rows to insert
	}{
		{"no jobs", nil},
		{"by state and queue", []store.JobCount{
			{State: store.JobAvailable, Queue: "provider_openai", Count: 3},
			{State: store.JobRunning, Queue: "provider_openai", Count: 1},
			{State: store.JobAvailable, Queue: "provider_preview", Count: 2},
			{State: store.JobScheduled, Queue: "provider_preview", Count: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.New(t)
			for _, jc := range tt.jobs {
				for range jc.Count {
					insertJob(t, db, jc.Queue, jc.State)
				}
			}
			got, err := db.CountJobs(t.Context(), db.Reader())
			if err != nil {
				t.Fatalf("CountJobs: %v", err)
			}
			byKey := func(a, b store.JobCount) int {
				return strings.Compare(string(a.State)+"/"+a.Queue, string(b.State)+"/"+b.Queue)
			}
			slices.SortFunc(got, byKey)
			want := slices.SortedFunc(slices.Values(tt.jobs), byKey)
			if !slices.Equal(got, want) {
				t.Errorf("CountJobs = %+v, want %+v", got, want)
			}
		})
	}
}

func TestPingJobTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		jobs    int
		drop    bool
		wantErr bool
	}{
		{"empty queue", 0, false, false},
		{"some jobs", 3, false, false},
		{"table gone", 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.New(t)
			for range tt.jobs {
				insertJob(t, db, "provider_preview", store.JobAvailable)
			}
			if tt.drop {
				if _, err := db.Writer().ExecContext(t.Context(), `DROP TABLE river_job`); err != nil {
					t.Fatalf("drop river_job: %v", err)
				}
			}
			err := db.PingJobTable(t.Context(), db.Reader())
			if (err != nil) != tt.wantErr {
				t.Errorf("PingJobTable error = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}
